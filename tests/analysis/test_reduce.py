"""MDS of distance matrices, PCA/UMAP views of embeddings (docs/spec.md §13.3)."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import xarray as xr
from scipy.spatial.distance import pdist, squareform

from marble_widgets.analysis import mds, pca, umap


def _dist(points: np.ndarray, names: list[str] | None = None) -> xr.DataArray:
    d = squareform(pdist(points))
    names = names or [f"c{i}" for i in range(len(points))]
    return xr.DataArray(d, dims=("condition", "condition_other"),
                        coords={"condition": names, "condition_other": names})


def test_mds_recovers_points_on_a_line():
    x = np.array([0.0, 1.0, 3.0, 6.0, 10.0])
    dist = _dist(x[:, None])
    out = mds(dist, n_components=2, seed=0)
    assert out.dims == ("condition", "component") and out.shape == (5, 2)
    assert list(out.condition.values) == list(dist.condition.values)
    np.testing.assert_allclose(squareform(pdist(out.values)), dist.values, atol=1e-6)
    assert out.attrs["stress"] < 1e-10
    # order along the main axis is the line's order (or its reverse)
    centred = out.values - out.values.mean(0)
    axis = np.linalg.svd(centred)[2][0]
    proj = centred @ axis
    assert np.all(np.diff(proj) > 0) or np.all(np.diff(proj) < 0)


def test_mds_of_a_circle_is_a_ring_in_order():
    angles = np.arange(8) * 2 * np.pi / 8
    out = mds(_dist(np.c_[np.cos(angles), np.sin(angles)]), seed=0).values
    centred = out - out.mean(0)
    radii = np.linalg.norm(centred, axis=1)
    np.testing.assert_allclose(radii, 1.0, atol=0.02)
    order = np.argsort(np.arctan2(centred[:, 1], centred[:, 0]))
    shift = list(np.roll(order, -int(np.flatnonzero(order == 0)[0])))
    assert shift in (list(range(8)), [0] + list(range(7, 0, -1)))


def test_mds_is_seeded_and_handles_one_group():
    dist = _dist(np.random.default_rng(1).normal(size=(6, 3)))
    np.testing.assert_array_equal(mds(dist, seed=4, n_init=4).values, mds(dist, seed=4, n_init=4).values)
    one = mds(_dist(np.zeros((1, 2)), ["only"]), n_components=3)
    assert one.shape == (1, 3) and np.all(one.values == 0)


def test_mds_rejects_bad_matrices():
    d = _dist(np.random.default_rng(0).normal(size=(4, 2)))
    bad = d.copy(data=d.values + np.triu(np.ones((4, 4)), 1))
    with pytest.raises(ValueError, match="symmetric"):
        mds(bad)
    with pytest.raises(ValueError, match="square"):
        mds(d.isel(condition_other=slice(0, 3)))
    with pytest.raises(TypeError, match="xarray.DataArray"):
        mds(d.values)
    with pytest.raises(ValueError, match="n_components must be a positive integer"):
        mds(d, n_components=0)


def _embedding(rng: np.random.Generator) -> xr.DataArray:
    x = rng.normal(size=(200, 4)) * np.array([5.0, 2.0, 1.0, 0.1])
    return xr.DataArray(x, dims=("sample", "latent"), name="embedding",
                        coords={"condition": ("sample", np.repeat(["a", "b"], 100)),
                                "trial": ("sample", np.arange(200)), "latent": np.arange(4)})


def test_pca_matches_covariance_eigenvalues(rng):
    emb = _embedding(rng)
    out = pca(emb, n_components=2)
    assert out.dims == ("sample", "component") and out.shape == (200, 2)
    np.testing.assert_array_equal(out.condition.values, emb.condition.values)
    eig = np.sort(np.linalg.eigvalsh(np.cov(emb.values.T)))[::-1]
    np.testing.assert_allclose(out.values.var(axis=0, ddof=1), eig[:2], rtol=1e-10)
    np.testing.assert_allclose(out.attrs["explained_variance_ratio"], eig[:2] / eig.sum(), rtol=1e-10)
    with pytest.raises(ValueError, match="exceeds"):
        pca(emb, n_components=5)


def test_umap_missing_names_the_extra(monkeypatch, rng):
    monkeypatch.setitem(sys.modules, "umap", None)  # make `import umap` fail
    with pytest.raises(ImportError, match=r"pip install marble_widgets\[umap\]"):
        umap(_embedding(rng))


def test_umap_when_installed(rng):
    pytest.importorskip("umap")
    emb = _embedding(rng)
    out = umap(emb, seed=0, n_neighbors=10)
    assert out.dims == ("sample", "component") and out.shape == (200, 2)
    np.testing.assert_array_equal(out.trial.values, emb.trial.values)
