"""Cross-animal alignment (Procrustes, OT + Procrustes) and consistency (docs/spec.md §13.5)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.stats import special_ortho_group

from marble_widgets.analysis import binned_means, consistency, ot_align, procrustes_align


def _emb(values: np.ndarray, position: np.ndarray | None = None, **coords) -> xr.DataArray:
    n = len(values)
    c = {"condition": ("sample", np.repeat("run", n)), "trial": ("sample", np.zeros(n, int)),
         "time": ("sample", np.arange(n) * 0.02), "latent": np.arange(values.shape[1])}
    if position is not None:
        c["position"] = ("sample", position)
    c.update({k: ("sample", v) for k, v in coords.items()})
    return xr.DataArray(values, dims=("sample", "latent"), coords=c, name="embedding")


def _track_cloud(rng: np.random.Generator, n: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """A 3-D helix-like embedding of track position plus noise."""
    p = rng.uniform(0, 1, n)
    x = np.c_[np.cos(3 * p), np.sin(3 * p), 2 * p] + 0.05 * rng.normal(size=(n, 3))
    return p, x


def test_binned_means_fill_empty_bins_from_neighbours():
    # bins of width 1 on [0, 10]: samples only in bins 0, 1 and 5
    pos = np.array([0.5, 0.5, 1.5, 5.5])
    x = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 4.0], [0.0, -2.0]])
    b = binned_means(_emb(x, pos), "position", bins=10, range=(0, 10), normalize=False)
    assert b.dims == ("bin", "latent") and b.shape == (10, 2)
    np.testing.assert_allclose(b.bin, np.arange(10) + 0.5)
    np.testing.assert_array_equal(b["count"], [2, 1, 0, 0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(b.fill_width, [0, 0, 1, 2, 1, 0, 1, 2, -1, -1])
    np.testing.assert_allclose(b[0], [2.0, 0.0])
    np.testing.assert_allclose(b[2], [0.0, 4.0])  # borrows bin 1 (+/-1)
    np.testing.assert_allclose(b[3], [0.0, 1.0])  # +/-1 empty; +/-2 = bins 1 and 5
    np.testing.assert_allclose(b[7], [0.0, -2.0])  # +/-2 reaches bin 5
    assert np.isnan(b[8]).all() and np.isnan(b[9]).all()
    unit = binned_means(_emb(x, pos), "position", bins=10, range=(0, 10))
    np.testing.assert_allclose(np.linalg.norm(unit[:8], axis=1), 1.0)
    np.testing.assert_allclose(unit[0], [1.0, 0.0])


def test_binned_means_by_direction_and_errors():
    pos = np.array([0.1, 0.2, 0.8, 0.9])
    x = np.arange(8.0).reshape(4, 2)
    emb = _emb(x, pos, direction=np.array(["L", "L", "R", "R"]))
    b = binned_means(emb, "position", bins=2, by="direction", normalize=False)
    assert b.dims == ("direction", "bin", "latent") and list(b.direction.values) == ["L", "R"]
    np.testing.assert_allclose(b.sel(direction="L")[0], x[:2].mean(0))
    np.testing.assert_allclose(b.sel(direction="R")[1], x[2:].mean(0))
    with pytest.raises(ValueError, match="label must be one numeric value per sample"):
        binned_means(emb, "direction")
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        binned_means(emb, "position", bins=0)


def _loop_binned_means(x, label, bins, lo, hi):
    """Independent reference: loops over samples, bin floor((v - lo) / (hi - lo) * bins), +/-1 then +/-2."""
    members = [[] for _ in range(bins)]
    for row, value in zip(x, label):
        if not lo <= value <= hi:  # NaN fails both comparisons
            continue
        members[min(int(np.floor((value - lo) / (hi - lo) * bins)), bins - 1)].append(row)
    out, fill = np.full((bins, x.shape[1]), np.nan), np.full(bins, -1)
    for b in range(bins):
        for w in (0, 1, 2):
            rows = [r for j in range(max(0, b - w), min(bins, b + w + 1)) for r in members[j]]
            if rows:
                out[b], fill[b] = np.mean(rows, axis=0), w
                break
    return out, np.array([len(m) for m in members]), fill


@pytest.mark.parametrize("bins", [7, 100])
def test_binned_means_equal_a_plain_loop_on_quantised_labels(bins):
    # labels on a 0.01 grid hit interior bin edges (0.3, 0.6, 0.7 for 10 bins) and the top edge
    rng = np.random.default_rng(5)
    label = np.round(rng.uniform(0, 1, 700), 2)
    label[3] = np.nan
    x = rng.normal(size=(700, 4))
    side = rng.choice(["L", "R"], 700)
    emb = _emb(x, label, direction=side)
    lo, hi = np.nanmin(label), np.nanmax(label)
    expected, count, fill = _loop_binned_means(x, label, bins, lo, hi)
    got = binned_means(emb, "position", bins=bins, normalize=False)
    np.testing.assert_allclose(got.values, expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(got["count"], count)
    np.testing.assert_array_equal(got["fill_width"], fill)
    unit = binned_means(emb, "position", bins=bins)
    np.testing.assert_allclose(unit.values, expected / np.linalg.norm(expected, axis=1, keepdims=True),
                               rtol=1e-13)
    by = binned_means(emb, "position", bins=bins, by="direction", normalize=False)
    for g in ("L", "R"):
        np.testing.assert_allclose(by.sel(direction=g).values, _loop_binned_means(
            x[side == g], label[side == g], bins, lo, hi)[0], rtol=1e-13, atol=1e-15)


def test_binned_means_edges_follow_floor_of_the_scaled_label():
    # 0.3 lies on an interior edge of 10 bins on [0, 1]: floor(0.3 * 10) = 3 puts it in bin 3
    # (pandas.cut / groupby_bins and scipy's binned_statistic would put it in bin 2)
    label = np.array([0.0, 0.3, 0.6, 0.7, 1.0])
    got = binned_means(_emb(np.ones((5, 1)), label), "position", bins=10, normalize=False)
    np.testing.assert_array_equal(got["count"], [1, 0, 0, 1, 0, 0, 1, 1, 0, 1])


def test_procrustes_recovers_rotation_and_translation(rng):
    p, x = _track_cloud(rng)
    q = special_ortho_group.rvs(3, random_state=1)
    t = np.array([1.0, -2.0, 0.5])
    source, target = _emb(x, p), _emb(x @ q + t, p)
    before = source.copy(deep=True)
    res = procrustes_align(source, target, "position")
    np.testing.assert_allclose(res.rotation.values, q, atol=1e-8)
    np.testing.assert_allclose(res.translation.values, t, atol=1e-8)
    assert res.scale == 1.0
    np.testing.assert_allclose(res.aligned.values, target.values, atol=1e-8)
    np.testing.assert_array_equal(res.aligned.position, source.position)
    xr.testing.assert_identical(source, before)
    np.testing.assert_allclose(res.apply(source).values, target.values, atol=1e-8)
    # row-paired variant with a scale factor
    paired = procrustes_align(source, _emb(2.5 * x @ q + t), scale=True)
    assert paired.scale == pytest.approx(2.5, abs=1e-10)
    np.testing.assert_allclose(paired.rotation.values, q, atol=1e-8)


def test_procrustes_reflection_flag_and_errors(rng):
    _, x = _track_cloud(rng, 300)
    mirror = np.diag([1.0, 1.0, -1.0])
    assert np.linalg.det(procrustes_align(_emb(x), _emb(x @ mirror)).rotation.values) == pytest.approx(-1)
    assert np.linalg.det(procrustes_align(_emb(x), _emb(x @ mirror), reflection=False).rotation.values) == \
        pytest.approx(1)
    with pytest.raises(ValueError, match="pairs samples row by row"):
        procrustes_align(_emb(x), _emb(x[:10]))
    with pytest.raises(ValueError, match="latent dims"):
        procrustes_align(_emb(x), _emb(x[:, :2]))


def _skewed_cloud(rng: np.random.Generator, n: int) -> np.ndarray:
    """Asymmetric cloud: skewed (gamma) marginals with distinct scales, so no symmetry is exact."""
    return rng.gamma(2.0, 1.0, size=(n, 3)) * np.array([3.0, 1.5, 0.7])


def test_ot_align_recovers_rotation_without_labels(rng):
    q = special_ortho_group.rvs(3, random_state=7)
    t = np.array([4.0, 0.0, -1.0])
    x = _skewed_cloud(rng, 300)
    perm = rng.permutation(300)
    exact = ot_align(_emb(x), _emb((x @ q + t)[perm]), seed=0)  # same points, shuffled
    np.testing.assert_allclose(exact.rotation.values, q, atol=1e-8)
    np.testing.assert_allclose(exact.translation.values, t, atol=1e-8)
    other = ot_align(_emb(x), _emb(_skewed_cloud(rng, 300) @ q + t), seed=0)  # a fresh sample
    assert np.linalg.norm(other.rotation.values - q) < 0.2
    assert np.linalg.norm(other.translation.values - t) < 0.8


def test_consistency_rotated_copy_high_random_low(rng):
    p, x = _track_cloud(rng)
    q = special_ortho_group.rvs(3, random_state=2)
    embs = {"rat1": _emb(x, p), "rat2": _emb(x @ q, p), "noise": _emb(rng.normal(size=x.shape), p)}
    c = consistency(embs, "position", bins=50)
    assert c.dims == ("source", "target") and list(c.source.values) == ["rat1", "rat2", "noise"]
    assert np.isnan(np.diag(c.values)).all()
    assert c.sel(source="rat1", target="rat2") > 0.999
    assert c.sel(source="rat2", target="rat1") > 0.999
    assert c.sel(source="rat1", target="noise") < 0.3
    assert c.sel(source="noise", target="rat2") < 0.3
    # one embedding with an animal coordinate gives the same matrix
    stacked = xr.concat([embs["rat1"].assign_coords(animal=("sample", np.repeat("rat1", len(p)))),
                         embs["rat2"].assign_coords(animal=("sample", np.repeat("rat2", len(p))))], "sample")
    c2 = consistency(stacked, "position", bins=50)
    np.testing.assert_allclose(c2.values, c.values[:2, :2])
    with pytest.raises(ValueError, match="at least 2 embeddings"):
        consistency({"rat1": embs["rat1"]})


def test_consistency_by_direction_matches_groups_by_label(rng):
    p, x = _track_cloud(rng, 2000)
    direction = np.where(np.arange(2000) % 2 == 0, "L", "R")
    x = x + np.where(direction == "L", 1.0, -1.0)[:, None] * np.array([0.0, 0.0, 3.0])
    q = special_ortho_group.rvs(3, random_state=4)
    a = _emb(x, p, direction=direction)
    b = _emb(x @ q, p, direction=direction).isel(sample=np.arange(2000)[::-1])  # "R" comes first
    assert list(binned_means(b, bins=20, by="direction").direction.values) == ["R", "L"]
    c = consistency({"a": a, "b": b}, bins=20, by="direction")
    assert c.sel(source="a", target="b") > 0.999
    res = procrustes_align(a, b, "position", bins=20, by="direction")
    np.testing.assert_allclose(res.rotation.values, q, atol=1e-8)
