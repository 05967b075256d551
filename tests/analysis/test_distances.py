"""Optimal-transport distances between groups of embedded samples (docs/spec.md §13.2, §15.1 item 10)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import xarray as xr

from marble_widgets.analysis import distances, transport_plan


def _emb(groups: dict[str, np.ndarray], by: str = "condition") -> xr.DataArray:
    """Stack point clouds into one (sample, latent) embedding with a group coordinate."""
    values = np.concatenate([np.atleast_2d(np.asarray(v, float).reshape(len(v), -1)) for v in groups.values()])
    labels = np.concatenate([[k] * len(v) for k, v in groups.items()])
    n = len(values)
    return xr.DataArray(
        values, dims=("sample", "latent"), name="embedding",
        coords={by: ("sample", labels), "trial": ("sample", np.arange(n)), "time": ("sample", np.zeros(n)),
                "latent": np.arange(values.shape[1])},
    )


def test_identical_clouds_zero_and_matrix_is_symmetric(rng):
    a = rng.normal(size=(40, 3))
    emb = _emb({"a": a, "b": a[::-1].copy(), "c": a + 1.0})
    d = distances(emb)
    assert d.dims == ("condition", "condition_other")
    assert list(d.condition.values) == ["a", "b", "c"]
    assert abs(float(d.sel(condition="a", condition_other="b"))) < 1e-12
    np.testing.assert_array_equal(d.values, d.values.T)
    np.testing.assert_array_equal(np.diag(d.values), 0.0)
    assert float(d.sel(condition="a", condition_other="c")) > 1.0


def test_translation_gives_norm_of_shift(rng):
    a = rng.normal(size=(60, 4))
    tau = np.array([0.3, -1.2, 2.0, 0.5])
    d = distances(_emb({"a": a, "shifted": a + tau}))
    assert float(d[0, 1]) == pytest.approx(np.linalg.norm(tau), abs=1e-9)


def test_matches_scipy_in_1d_and_gaussian_shift(rng):
    x, y = rng.normal(0.0, 1.0, 400), rng.normal(2.0, 1.0, 500)
    d = float(distances(_emb({"x": x, "y": y}))[0, 1])
    assert d == pytest.approx(scipy.stats.wasserstein_distance(x, y), abs=1e-9)
    assert d == pytest.approx(2.0, abs=0.2)


def test_2d_gaussians_with_different_means(rng):
    m1, m2 = np.array([0.0, 0.0]), np.array([3.0, 4.0])
    p, q = rng.normal(size=(300, 2)) + m1, rng.normal(size=(300, 2)) + m2
    d = float(distances(_emb({"p": p, "q": q}))[0, 1])
    assert d >= np.linalg.norm(p.mean(0) - q.mean(0)) - 1e-9  # Jensen lower bound, exact
    assert d == pytest.approx(5.0, abs=0.35)


def test_kmeans_variant_close_to_exact_on_separated_blobs(rng):
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    blob = lambda c, n: c + 0.05 * rng.normal(size=(n, 2))  # noqa: E731
    emb = _emb({"A": np.vstack([blob(centres[0], 50), blob(centres[1], 50)]),
                "B": blob(centres[2], 100), "C": blob(centres[1], 100)})
    exact = distances(emb).values
    km = distances(emb, method="kmeans", n_clusters=3, seed=0)
    assert km.attrs["method"] == "kmeans"
    np.testing.assert_allclose(km.values, exact, rtol=0.02, atol=0.05)
    # A->C moves half of the mass from blob 0 to blob 1 (distance 10): 5
    assert km.sel(condition="A", condition_other="C") == pytest.approx(5.0, abs=0.05)


def test_max_points_subsample_is_seeded_and_close(rng):
    emb = _emb({"a": rng.normal(size=(300, 2)), "b": rng.normal(size=(300, 2)) + [2.0, 0.0]})
    full = float(distances(emb)[0, 1])
    d1 = distances(emb, max_points=100, seed=3)
    d2 = distances(emb, max_points=100, seed=3)
    np.testing.assert_array_equal(d1.values, d2.values)
    assert float(d1[0, 1]) == pytest.approx(full, abs=0.3)
    assert float(distances(emb, max_points=300)[0, 1]) == pytest.approx(full, abs=1e-12)


def test_single_group_and_by_other_coordinate(rng):
    emb = _emb({"rat1": rng.normal(size=(10, 2))}, by="animal")
    d = distances(emb, by="animal")
    assert d.dims == ("animal", "animal_other") and d.shape == (1, 1)
    assert float(d[0, 0]) == 0.0


def test_input_not_mutated_and_errors(rng):
    emb = _emb({"a": rng.normal(size=(10, 2)), "b": rng.normal(size=(12, 2))})
    before = emb.copy(deep=True)
    distances(emb, method="kmeans", n_clusters=4)
    xr.testing.assert_identical(emb, before)
    with pytest.raises(ValueError, match="method must be one of"):
        distances(emb, method="sinkhorn")
    with pytest.raises(ValueError, match="by='animal' is not a coordinate"):
        distances(emb, by="animal")
    with pytest.raises(TypeError, match="must be an xarray.DataArray"):
        distances(emb.values)
    with pytest.raises(ValueError, match="max_points must be a positive integer"):
        distances(emb, max_points=0)


def test_transport_plan_marginals_and_cost(rng):
    emb = _emb({"a": rng.normal(size=(20, 2)), "b": rng.normal(size=(30, 2)) + 1.0})
    out = transport_plan(emb, "a", "b")
    plan = out.plan
    assert plan.dims == ("source_sample", "target_sample") and plan.shape == (20, 30)
    np.testing.assert_allclose(plan.sum("target_sample"), 1 / 20, atol=1e-12)
    np.testing.assert_allclose(plan.sum("source_sample"), 1 / 30, atol=1e-12)
    assert out.attrs["distance"] == pytest.approx(float(distances(emb)[0, 1]), abs=1e-12)
    assert float((out.plan * out.cost).sum()) == pytest.approx(out.attrs["distance"])
    np.testing.assert_array_equal(plan.target_sample, np.arange(20, 50))
    km = transport_plan(emb, "a", "b", method="kmeans", n_clusters=5)
    assert km.plan.dims == ("source_cluster", "target_cluster") and km.centroid.shape == (5, 2)
    assert float(km.plan.sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="target='z' is not a value"):
        transport_plan(emb, "a", "z")
