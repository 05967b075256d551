"""Symmetric normalised (connection) Laplacians, truncated spectra and an exact heat kernel.

Spec §6 with the fixes of §14 items 2-3: the symmetric normalisation
``L_sym = I - D^-1/2 W D^-1/2`` (spectrum in [0, 2]) is used for everything, and the random-walk
heat kernel is recovered by the similarity transform
``exp(-t L_rw) = D^-1/2 exp(-t L_sym) D^1/2``.

The heat kernel is computed with a Chebyshev expansion: with ``Y = L_sym - I`` (spectrum in
[-1, 1]), ``exp(-t (I + Y)) = sum_k c_k(t) T_k(Y)`` where ``c_k(t) = 2 (-1)^k e^{-t} I_k(t)``
(``c_0`` halved, ``I_k`` the modified Bessel function). Truncation after degree ``deg`` errs by
at most ``sum_{k > deg} |c_k(t)|`` in the symmetric basis (times ``sqrt(max deg / min deg)`` in
the random-walk basis); :func:`chebyshev_degree` picks ``deg`` for a tolerance.
E.g. the bound is below 1e-8 for ``deg=20`` up to ``t = 10.8``, ``deg=30`` up to
``t = 26``, ``deg=40`` up to ``t = 47``.

Isolated nodes (degree 0) get a zero row in ``L_sym`` (no diffusion, ``exp(-tL) = I`` there) and
``D^{+-1/2} = 1``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh
from scipy.special import ive

from marble_widgets.engine.kernels import sorted_pattern


def weight_matrix(edge_index: np.ndarray, edge_weight: np.ndarray, n_nodes: int) -> sp.csr_matrix:
    """Sparse symmetric weight matrix W (no self-loops) from an edge list (§6.1)."""
    keep = edge_index[0] != edge_index[1]
    i, j = edge_index[:, keep]
    return sp.csr_matrix((edge_weight[keep], (i, j)), shape=(n_nodes, n_nodes))


def _inv_sqrt_degree(degree: np.ndarray) -> np.ndarray:
    """``deg^-1/2`` with isolated nodes (degree 0) mapped to 1."""
    out = np.ones_like(degree, dtype=float)
    pos = degree > 0
    out[pos] = 1.0 / np.sqrt(degree[pos])
    return out


def normalized_laplacian(
    edge_index: np.ndarray, edge_weight: np.ndarray, n_nodes: int
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Symmetric normalised Laplacian ``I - D^-1/2 W D^-1/2`` and the weighted degrees.

    Why: symmetric, so ``eigsh`` and the Chebyshev heat kernel are valid (§14 item 2).

    Returns
    -------
    L : (N, N) CSR. degree : (N,) weighted degree ``W 1``.
    """
    w = weight_matrix(edge_index, edge_weight, n_nodes)
    degree = np.asarray(w.sum(1)).ravel()
    s = sp.diags(_inv_sqrt_degree(degree))
    lap = sp.diags((degree > 0).astype(float)) - s @ w @ s
    return sp.csr_matrix(lap), degree


def connection_laplacian(
    edge_index: np.ndarray, edge_weight: np.ndarray, connections: np.ndarray, n_nodes: int
) -> sp.csr_matrix:
    """Symmetric connection Laplacian: diagonal blocks I_d, blocks ``-w_ij R_ij / sqrt(d_i d_j)``.

    Why: vector diffusion of tangent fields in local frames (§6.1, §6.3), symmetric because
    ``R_ji = R_ij^T``. Index ``i * d + a`` is component a at node i.

    Returns
    -------
    (N d, N d) CSR.
    """
    d = connections.shape[1]
    keep = edge_index[0] != edge_index[1]
    i, j = edge_index[:, keep]
    w = weight_matrix(edge_index, edge_weight, n_nodes)
    degree = np.asarray(w.sum(1)).ravel()
    inv = _inv_sqrt_degree(degree)
    coef = np.concatenate([-edge_weight[keep] * inv[i] * inv[j], (degree > 0).astype(float)])
    order, cols, indptr = sorted_pattern(edge_index, n_nodes)
    blocks = np.concatenate([connections[keep], np.broadcast_to(np.eye(d), (n_nodes, d, d))])
    data = (coef[:, None, None] * blocks)[order]
    shape = (n_nodes * d, n_nodes * d)
    return sp.bsr_matrix((data, cols, indptr), shape=shape).tocsr()


def laplacian_spectrum(lap: sp.spmatrix, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``m`` smallest eigenpairs of a symmetric Laplacian, eigenvalues clipped at 0.

    Why: a truncated spectrum, never a dense N x N eigendecomposition (§14 item 1). Uses
    shift-invert ``eigsh`` around a small negative shift; dense ``eigh`` for tiny matrices.

    Returns
    -------
    evals : (m,) ascending. evecs : (rows, m) orthonormal columns.
    """
    n = lap.shape[0]
    if not 1 <= m <= n:
        raise ValueError(f"m must be between 1 and the matrix size {n}, got {m!r}.")
    if n <= 300 or m >= n - 1:
        evals, evecs = np.linalg.eigh(lap.toarray())
        evals, evecs = evals[:m], evecs[:, :m]
    else:
        v0 = np.ones(n) / np.sqrt(n)
        evals, evecs = eigsh(sp.csc_matrix(lap), k=m, sigma=-1e-3, which="LM", v0=v0)
        order = np.argsort(evals)
        evals, evecs = evals[order], evecs[:, order]
    return np.clip(evals, 0.0, None), evecs


def heat_coefficients(t: float, deg: int) -> np.ndarray:
    """Chebyshev coefficients ``c_k(t)`` of ``exp(-t x)`` on x in [0, 2], k = 0..deg.

    Why: ``exp(-t L_sym) = sum_k c_k(t) T_k(L_sym - I)`` exactly up to truncation;
    ``c_k(t) = 2 (-1)^k e^{-t} I_k(t)``, ``c_0`` halved, via the scaled Bessel ``ive``.
    """
    if t < 0:
        raise ValueError(f"diffusion time t must be >= 0, got {t!r}.")
    k = np.arange(deg + 1)
    c = 2.0 * (-1.0) ** k * ive(k, t)
    c[0] *= 0.5
    return c


def heat_coefficients_grad(t: float, deg: int) -> np.ndarray:
    """Derivatives ``d c_k / dt`` (uses ``I_k' = (I_{k-1} + I_{k+1}) / 2``), for learning t."""
    k = np.arange(deg + 1)
    dk = 0.5 * (ive(np.abs(k - 1), t) + ive(k + 1, t)) - ive(k, t)
    g = 2.0 * (-1.0) ** k * dk
    g[0] *= 0.5
    return g


def chebyshev_degree(t_max: float, tol: float = 1e-8, max_deg: int = 500) -> int:
    """Smallest degree whose truncation error bound ``sum_{k>deg} |c_k(t)|`` is below ``tol``
    for every ``t <= t_max`` (the bound grows with t, so ``t_max`` is checked)."""
    c = np.abs(heat_coefficients(t_max, max_deg + 60))
    tail = np.cumsum(c[::-1])[::-1]  # tail[k] = sum_{j >= k} |c_j|
    ok = np.flatnonzero(tail[1:] < tol)
    if not len(ok) or ok[0] > max_deg:
        raise ValueError(f"t_max={t_max!r} needs a Chebyshev degree above {max_deg}.")
    return int(ok[0])


def _expand_degree(degree: np.ndarray, n_rows: int) -> np.ndarray:
    """Repeat node degrees to the rows of a (possibly block) operator."""
    block = n_rows // len(degree)
    if block * len(degree) != n_rows:
        raise ValueError(
            f"degree has {len(degree)} entries, which does not divide the {n_rows} rows of L."
        )
    return np.repeat(degree, block)


def chebyshev_heat_basis(
    lap_sym: sp.spmatrix, deg: int, x: np.ndarray, degree: np.ndarray | None = None
) -> np.ndarray:
    """Chebyshev pieces ``D^-1/2 T_k(L_sym - I) D^1/2 x`` for k = 0..deg.

    Why: the random-walk heat diffusion is then ``sum_k c_k(t) * basis[k]``
    (:func:`heat_coefficients`), exact up to truncation, identity at t=0, and linear in c(t) so
    t can be learned without touching the graph again. ``degree=None`` gives the symmetric
    kernel. For a connection Laplacian (N d rows) pass the N node degrees.

    Parameters
    ----------
    lap_sym : (R, R) symmetric normalised (connection) Laplacian. x : (R,) or (R, s).

    Returns
    -------
    (deg + 1, R) or (deg + 1, R, s) array.
    """
    x = np.asarray(x, dtype=float)
    n = lap_sym.shape[0]
    if x.shape[0] != n:
        raise ValueError(f"x has {x.shape[0]} rows but the Laplacian has {n}.")
    if degree is None:
        left = right = np.ones(n)
    else:
        deg_rows = _expand_degree(np.asarray(degree, dtype=float), n)
        left = _inv_sqrt_degree(deg_rows)
        right = 1.0 / left
    shape = (n,) + (1,) * (x.ndim - 1)
    left, right = left.reshape(shape), right.reshape(shape)
    y = sp.csr_matrix(lap_sym) - sp.identity(n, format="csr")
    out = np.empty((deg + 1,) + x.shape)
    prev = right * x
    out[0] = prev
    if deg >= 1:
        cur = y @ prev
        out[1] = cur
        for k in range(2, deg + 1):
            prev, cur = cur, 2.0 * (y @ cur) - prev
            out[k] = cur
    out *= left[None]
    return out


def heat_diffuse(
    lap_sym: sp.spmatrix, x: np.ndarray, t: float, degree: np.ndarray | None = None, deg: int = 30
) -> np.ndarray:
    """Random-walk heat diffusion ``exp(-t L_rw) x`` (or symmetric if ``degree`` is None)."""
    basis = chebyshev_heat_basis(lap_sym, deg, x, degree)
    return np.tensordot(heat_coefficients(t, deg), basis, axes=(0, 0))
