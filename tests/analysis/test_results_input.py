"""Every analysis function takes the results Dataset plus variable names (behaviour of any shape)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.stats import special_ortho_group
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.neighbors import KNeighborsRegressor

from marble_widgets.analysis import (
    binned_means,
    choose_k,
    consistency,
    cross_decode,
    decode,
    distances,
    fold_assignment,
    pca,
    procrustes_align,
    train_test_decode,
)

N_TRIALS, PER_TRIAL = 12, 40


def results(seed: int = 0, rotation: np.ndarray | None = None) -> xr.Dataset:
    """A results-shaped Dataset: embedding + 1-D and 2-D behaviour as data variables, labels as coords."""
    rng = np.random.default_rng(seed)
    n = N_TRIALS * PER_TRIAL
    position = rng.uniform(0, 1, n)
    z = np.c_[np.cos(3 * position), np.sin(3 * position), position, np.cos(7 * position)]
    z = z + 0.02 * rng.normal(size=z.shape)
    velocity = z[:, :2] @ np.array([[1.0, -0.5], [0.3, 2.0]]) + 0.05 * rng.normal(size=(n, 2))
    z = z if rotation is None else z @ rotation
    return xr.Dataset(
        {"embedding": (("sample", "latent"), z), "position": ("sample", position),
         "hand_velocity": (("sample", "axis"), velocity),
         "direction": ("sample", np.where(np.arange(n) % 2, "L", "R")),
         "x": (("sample", "dim"), rng.normal(size=(n, 3)))},
        coords={"sample": np.arange(n), "latent": np.arange(4), "axis": ["x", "y"], "dim": ["a", "b", "c"],
                "condition": ("sample", np.repeat(["c1", "c2", "c3"], n // 3)),
                "trial": ("sample", np.repeat(np.arange(N_TRIALS), PER_TRIAL)),
                "time": ("sample", np.tile(np.arange(PER_TRIAL) * 0.02, N_TRIALS))},
    )


def as_embedding(ds: xr.Dataset) -> xr.DataArray:
    """The same data the old way: the embedding DataArray with the 1-D behaviour as coords."""
    return ds["embedding"].assign_coords(position=ds["position"], direction=ds["direction"])


def test_decode_a_2d_variable_by_name_equals_sklearn_cross_val_predict():
    ds = results()
    out = decode(ds, "hand_velocity", kind="linear", cv=4, seed=3)
    x, y = ds["embedding"].values, ds["hand_velocity"].values
    folds = GroupKFold(n_splits=4, shuffle=True, random_state=3)
    expected = cross_val_predict(Ridge(alpha=1e-6), x, y, groups=ds["trial"].values, cv=folds)
    np.testing.assert_allclose(out["prediction"].values, expected, rtol=1e-10, atol=1e-12)
    assert out["prediction"].dims == ("sample", "axis") and list(out["axis"].values) == ["x", "y"]
    assert float(out["r2_pooled"]) == pytest.approx(r2_score(y, expected), rel=1e-12)
    err = np.median(np.linalg.norm(y - expected, axis=1))
    assert float(out["median_abs_error_pooled"]) == pytest.approx(err, rel=1e-12)
    for f in range(4):  # per-fold scores are sklearn's on that fold's rows
        held = out["test_fold"].values == f
        assert float(out["r2"][f]) == pytest.approx(r2_score(y[held], expected[held]), rel=1e-12)
    np.testing.assert_array_equal(fold_assignment(ds, 4, seed=3), out["test_fold"])


def test_train_test_decode_and_choose_k_read_the_named_variable():
    ds = results(1).isel(sample=np.random.default_rng(2).permutation(N_TRIALS * PER_TRIAL))  # shuffled rows
    order = np.lexsort((ds["time"].values, ds["trial"].values))
    x, y = ds["embedding"].values[order], ds["hand_velocity"].values[order]
    cut = int(round(0.8 * len(order)))
    out = train_test_decode(ds, "hand_velocity", kind="knn", k=7, metric="euclidean")
    expected = KNeighborsRegressor(n_neighbors=7).fit(x[:cut], y[:cut]).predict(x[cut:])
    test_rows = np.sort(order[cut:])
    np.testing.assert_array_equal(out["sample"].values, ds["sample"].values[test_rows])
    by_sample = dict(zip(ds["sample"].values[order[cut:]], expected))
    np.testing.assert_allclose(out["prediction"].values, [by_sample[s] for s in out["sample"].values])
    assert choose_k(ds, "hand_velocity", metric="euclidean") == choose_k(x, y, metric="euclidean")


def test_group_comparisons_accept_the_dataset():
    ds = results(2)
    emb = as_embedding(ds)
    xr.testing.assert_identical(distances(ds, "condition"), distances(emb, "condition"))
    xr.testing.assert_identical(distances(ds, "direction"), distances(emb, "direction"))
    xr.testing.assert_identical(binned_means(ds, "position", bins=10, by="direction"),
                                binned_means(emb, "position", bins=10, by="direction"))
    np.testing.assert_array_equal(pca(ds).values, pca(emb).values)


def test_alignment_and_consistency_accept_datasets_and_2d_targets():
    rot = special_ortho_group.rvs(4, random_state=5)
    a, b = results(3), results(4, rot)
    res = procrustes_align(b, a, "position", bins=20)
    old = procrustes_align(as_embedding(b), as_embedding(a), "position", bins=20)
    np.testing.assert_array_equal(res.rotation.values, old.rotation.values)
    np.testing.assert_allclose(res.rotation.values, rot.T, atol=0.05)
    joint = xr.concat([a.assign(animal=("sample", np.repeat("a", a.sizes["sample"]))),
                       b.assign(animal=("sample", np.repeat("b", b.sizes["sample"])))], dim="sample")
    c = consistency(joint, "position", bins=20)
    np.testing.assert_allclose(c.values, consistency({"a": as_embedding(a), "b": as_embedding(b)}, bins=20).values)
    assert float(c.sel(source="a", target="b")) > 0.98
    by_position = cross_decode(a, b, "position", kind="knn", k=5, metric="euclidean")
    same = cross_decode(as_embedding(a), as_embedding(b), "position", kind="knn", k=5, metric="euclidean")
    np.testing.assert_array_equal(by_position["prediction"].values, same["prediction"].values)
    shared = b.assign(embedding=(("sample", "latent"), b["embedding"].values @ rot.T))  # one joint space
    velocity = cross_decode(a, shared, "hand_velocity", align="none", kind="knn", k=5, metric="euclidean")
    assert velocity["prediction"].dims == ("sample", "axis") and float(velocity["r2_pooled"]) > 0.9


def test_a_missing_name_lists_the_per_sample_variables():
    ds = results()
    with pytest.raises(ValueError, match=r"target='speed' is not a variable or coordinate .*'hand_velocity'"):
        decode(ds, "speed")
    with pytest.raises(TypeError, match="without an 'embedding' variable; pass MARBLE.results"):
        decode(ds.drop_vars("embedding"), "position")
    with pytest.raises(ValueError, match="test_emb has no per-sample variable 'direction'"):
        cross_decode(ds, ds.drop_vars("direction"), "direction")
    with pytest.raises(ValueError, match="label must be one numeric value per sample"):
        binned_means(ds, "hand_velocity")
