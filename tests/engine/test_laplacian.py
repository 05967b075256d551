"""Tests of the Laplacians, truncated spectra and the Chebyshev heat kernel (docs/spec.md §6, §15.1.7)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

from marble_widgets.engine.gauges import connections
from marble_widgets.engine.graph import cknn_edges
from marble_widgets.engine.laplacian import (
    chebyshev_degree,
    chebyshev_heat_basis,
    connection_laplacian,
    heat_coefficients,
    heat_coefficients_grad,
    heat_diffuse,
    laplacian_spectrum,
    normalized_laplacian,
)


def _graph(rng, n=120, dim=2, k=6):
    x = rng.uniform(size=(n, dim))
    e = cknn_edges(x, k, 1.3)
    w = 1.0 / np.linalg.norm(x[e[0]] - x[e[1]], axis=1)
    return x, e, w


def _rw_laplacian(e, w, n):
    wm = sp.csr_matrix((w, (e[0], e[1])), shape=(n, n)).toarray()
    return np.eye(n) - wm / wm.sum(1, keepdims=True)


def test_symmetric_psd_zero_eigenvalue(rng):
    x, e, w = _graph(rng, n=600)
    lap, degree = normalized_laplacian(e, w, len(x))
    assert abs(lap - lap.T).max() < 1e-14
    evals, evecs = laplacian_spectrum(lap, 5)  # eigsh path (n > 500)
    assert evals[0] == pytest.approx(0.0, abs=1e-9)
    assert np.all(evals >= 0) and np.all(np.diff(evals) >= 0)
    # null vector is D^1/2 1 (normalised)
    v = np.sqrt(degree) / np.linalg.norm(np.sqrt(degree))
    assert abs(abs(evecs[:, 0] @ v) - 1) < 1e-8
    resid = lap @ evecs - evecs * evals
    assert np.abs(resid).max() < 1e-8
    small = normalized_laplacian(*_graph(rng, n=150)[1:], 150)[0].toarray()
    dense = np.linalg.eigvalsh(small)
    np.testing.assert_allclose(laplacian_spectrum(sp.csr_matrix(small), 4)[0], np.clip(dense[:4], 0, None), atol=1e-12)
    assert dense.min() > -1e-12 and dense.max() < 2 + 1e-12


def test_rw_similarity_transform(rng):
    x, e, w = _graph(rng)
    lap, degree = normalized_laplacian(e, w, len(x))
    s = np.diag(np.sqrt(degree))
    si = np.diag(1 / np.sqrt(degree))
    np.testing.assert_allclose(si @ lap.toarray() @ s, _rw_laplacian(e, w, len(x)), atol=1e-13)


@pytest.mark.parametrize("t", [0.0, 0.3, 2.0, 10.0, 25.0])
def test_chebyshev_heat_equals_expm(rng, t):
    x, e, w = _graph(rng)
    n = len(x)
    lap, degree = normalized_laplacian(e, w, n)
    sig = rng.normal(size=(n, 3))
    exact = scipy.linalg.expm(-t * _rw_laplacian(e, w, n)) @ sig
    got = heat_diffuse(lap, sig, t, degree, deg=30)
    np.testing.assert_allclose(got, exact, atol=1e-8)


def test_heat_identity_constants_and_mean(rng):
    x, e, w = _graph(rng)
    n = len(x)
    lap, degree = normalized_laplacian(e, w, n)
    sig = rng.normal(size=n)
    np.testing.assert_allclose(heat_diffuse(lap, sig, 0.0, degree), sig, atol=1e-14)
    np.testing.assert_allclose(heat_diffuse(lap, np.ones(n), 7.0, degree), 1.0, atol=1e-12)
    # large t on a connected graph -> degree-weighted mean
    gap = np.linalg.eigvalsh(lap.toarray())[1]
    t_far = 20.0 / gap
    far = heat_diffuse(lap, sig, t_far, degree, deg=chebyshev_degree(t_far, max_deg=5000))
    np.testing.assert_allclose(far, degree @ sig / degree.sum(), atol=1e-6)


def test_heat_coefficients_and_grad():
    c = heat_coefficients(0.0, 10)
    np.testing.assert_array_equal(c, np.eye(11)[0])
    # scalar check: sum_k c_k T_k(y) = exp(-t (1 + y))
    y = np.linspace(-1, 1, 7)
    t = 3.0
    tk = np.cos(np.arange(31)[:, None] * np.arccos(y))
    np.testing.assert_allclose(heat_coefficients(t, 30) @ tk, np.exp(-t * (1 + y)), atol=1e-12)
    h = 1e-6
    fd = (heat_coefficients(t + h, 30) - heat_coefficients(t - h, 30)) / (2 * h)
    np.testing.assert_allclose(heat_coefficients_grad(t, 30), fd, atol=1e-9)
    with pytest.raises(ValueError, match="t must be >= 0"):
        heat_coefficients(-1.0, 5)


def test_chebyshev_degree_bound():
    assert chebyshev_degree(10.0) <= 30
    assert chebyshev_degree(26.0) <= 30 < chebyshev_degree(27.0)


def test_basis_shape_and_errors(rng):
    x, e, w = _graph(rng)
    lap, degree = normalized_laplacian(e, w, len(x))
    b = chebyshev_heat_basis(lap, 4, rng.normal(size=(len(x), 2)), degree)
    assert b.shape == (5, len(x), 2)
    with pytest.raises(ValueError, match="x has 3 rows"):
        chebyshev_heat_basis(lap, 4, np.ones(3), degree)


def test_isolated_node_is_not_diffused():
    e = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])
    w = np.ones(4)
    lap, degree = normalized_laplacian(e, w, 4)  # node 3 isolated
    assert degree[3] == 0 and lap[3, 3] == 0
    sig = np.array([1.0, 2.0, 3.0, 5.0])
    out = heat_diffuse(lap, sig, 2.0, degree)
    assert out[3] == pytest.approx(5.0, abs=1e-12) and np.all(np.isfinite(out))


def _plane_frames(rng, n=150):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    uv = rng.uniform(size=(n, 2))
    x = uv @ q[:, :2].T
    ang = rng.uniform(0, 2 * np.pi, n)
    rot = np.stack([np.stack([np.cos(ang), -np.sin(ang)], -1), np.stack([np.sin(ang), np.cos(ang)], -1)], -2)
    frames = q[None, :, :2] @ rot
    return x, frames, q


def test_connection_laplacian_flat_parallel_field(rng):
    x, frames, q = _plane_frames(rng)
    n = len(x)
    e = cknn_edges(x, 6, 1.3)
    w = 1.0 / np.linalg.norm(x[e[0]] - x[e[1]], axis=1)
    conn = connections(frames, e)
    lc = connection_laplacian(e, w, conn, n)
    assert lc.shape == (2 * n, 2 * n)
    assert abs(lc - lc.T).max() < 1e-14
    ev = np.linalg.eigvalsh(lc.toarray())
    assert ev.min() > -1e-12 and ev.max() < 2 + 1e-12
    field = q[:, :2] @ np.array([0.4, -1.1])  # constant ambient field in the plane
    u = np.einsum("k,nkd->nd", field, frames).ravel()
    _, degree = normalized_laplacian(e, w, n)
    out = heat_diffuse(lc, u, 3.0, degree)
    np.testing.assert_allclose(out, u, atol=1e-10)
