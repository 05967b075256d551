"""Tests of the Geometry builder (docs/spec.md §2-§7 assembled, §14, §15.1.9)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from marble_widgets.engine.features import derivative_features
from marble_widgets.engine.geometry import Geometry, build_geometry
from marble_widgets.engine.laplacian import laplacian_spectrum


def _two_conditions(rng, n=150):
    x = rng.normal(size=(2 * n, 3))
    v = rng.normal(size=(2 * n, 3))
    cond = np.array(["b"] * n + ["a"] * n)
    return x, v, cond


def test_fields_and_invariants(rng):
    x, v, cond = _two_conditions(rng)
    x0, v0 = x.copy(), v.copy()
    g = build_geometry(x, v, cond, k=10)
    assert isinstance(g, Geometry) and g.condition_labels == ("a", "b")
    np.testing.assert_array_equal(x, x0)  # inputs untouched
    np.testing.assert_array_equal(v, v0)
    np.testing.assert_array_equal(g.pos, x[g.sample_index])
    np.testing.assert_array_equal(g.signal, v[g.sample_index])
    np.testing.assert_array_equal(g.condition, (cond[g.sample_index] == "b").astype(int))
    i, j = g.edge_index
    assert g.edge_index.dtype == np.int64 and not np.any(i == j)
    assert np.all(g.condition[i] == g.condition[j])
    assert set(zip(i, j)) == set(zip(j, i))
    np.testing.assert_allclose(g.edge_weight, 1 / np.linalg.norm(g.pos[i] - g.pos[j], axis=1))
    np.testing.assert_allclose(g.degree, np.bincount(i, weights=g.edge_weight))
    assert g.frames.shape == (300, 3, 3) and g.n_directions == 3 and g.connections is None
    assert len(g.kernels) == 3 and g.kernels[0].shape == (300, 300)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.k = 3


def test_laplacian_psd_with_zero_mode(rng):
    x, v, cond = _two_conditions(rng)
    g = build_geometry(x, v, cond, k=10)
    lap = g.laplacian
    assert abs(lap - lap.T).max() < 1e-14
    evals, _ = laplacian_spectrum(lap, 3)
    assert evals[0] == pytest.approx(0.0, abs=1e-10) and evals[1] == pytest.approx(0.0, abs=1e-10)  # 2 conditions


def test_local_gauges_sphere_and_circle(rng):
    x = rng.normal(size=(600, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    v = np.cross(x, [0.0, 0.0, 1.0])
    g = build_geometry(x, v, k=20, local_gauges=True)
    assert g.manifold_dim == 2 and g.frames.shape == (600, 3, 2)
    assert g.connections.shape == (g.edge_index.shape[1], 2, 2)
    assert g.laplacian.shape == (1200, 1200) and g.kernels[0].shape == (1200, 1200)
    phi = np.sort(rng.uniform(0, 2 * np.pi, 300))
    circle = np.stack([np.cos(phi), np.sin(phi), 0.1 * np.cos(3 * phi)], 1)
    g1 = build_geometry(circle, np.gradient(circle, axis=0), k=10, local_gauges=True)
    assert g1.n_directions == 1
    f = derivative_features(g1, order=2)
    assert f.shape == (300, 3) and np.all(np.isfinite(f))


def test_local_gauges_disabled_or_refused(rng):
    x2 = rng.normal(size=(100, 2))
    with pytest.warns(UserWarning, match="local_gauges disabled"):
        g = build_geometry(x2, x2, k=5, local_gauges=True)
    assert not g.local_gauges and g.n_directions == 2
    x3 = rng.normal(size=(100, 3))
    with pytest.warns(UserWarning, match="local_gauges disabled"):
        build_geometry(x3, x3[:, 0], k=5, local_gauges=True)
    with pytest.raises(ValueError, match="s=2"):
        build_geometry(x3, x3[:, :2], k=5, local_gauges=True)


def test_input_errors(rng):
    x = rng.normal(size=(50, 2))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        build_geometry(bad, x, k=5)
    with pytest.raises(ValueError, match="v has 49 rows"):
        build_geometry(x, x[:-1], k=5)
    cond = np.array(["left"] * 45 + ["right"] * 5)
    with pytest.raises(ValueError, match="condition 'right' has 5 samples but k=5"):
        build_geometry(x, x, cond, k=5)
    with pytest.raises(ValueError, match="condition must have shape"):
        build_geometry(x, x, cond[:3], k=5)


def test_duplicates_do_not_create_nan(rng):
    base = rng.normal(size=(120, 3))
    x = np.concatenate([base, base[:30], base[:30]])
    v = rng.normal(size=x.shape)
    for local in (False, True):
        g = build_geometry(x, v, k=10, local_gauges=local)
        f = derivative_features(g, order=2)
        assert np.all(np.isfinite(f)) and np.all(np.isfinite(g.laplacian.data))
        assert np.all(np.isfinite(g.edge_weight))


def test_permutation_and_translation(rng):
    x, v, _ = _two_conditions(rng, 100)
    perm = rng.permutation(200)
    g = build_geometry(x, v, k=8)
    gp = build_geometry(x[perm], v[perm], k=8)
    f, fp = derivative_features(g), derivative_features(gp)
    np.testing.assert_allclose(fp, f[perm], atol=1e-12)
    gt = build_geometry(x + 3.0, v, k=8)
    np.testing.assert_allclose(derivative_features(gt), f, atol=1e-10)


def test_subsampling_per_condition(rng):
    x, v, cond = _two_conditions(rng, 300)
    g = build_geometry(x, v, cond, k=5, spacing=0.05, seed=None)
    assert 10 < g.n_nodes < 600
    assert np.all(np.diff(g.sample_index[g.condition == 0]) > 0)
    g2 = build_geometry(x, v, cond, k=5, spacing=0.05, seed=None)
    np.testing.assert_array_equal(g.sample_index, g2.sample_index)


def test_kernel_weights_match_kernels(rng):
    x = rng.normal(size=(200, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    v = np.cross(x, [0.0, 0.0, 1.0])
    for local in (False, True):
        g = build_geometry(x, v, k=10, local_gauges=local)
        i, j = g.edge_index
        assert g.kernel_weights.shape == (len(i), g.n_directions)
        for c, kern in enumerate(g.kernels):
            if local:  # block (i, j) = F_ij R_ij: read entry (i*d, j*d..) against R_ij[0, :]
                d = g.n_directions
                got = np.asarray(kern[i * d, j * d]).ravel()
                np.testing.assert_allclose(got, g.kernel_weights[:, c] * g.connections[:, 0, 0], atol=1e-14)
            else:
                np.testing.assert_allclose(np.asarray(kern[i, j]).ravel(), g.kernel_weights[:, c], atol=1e-15)
