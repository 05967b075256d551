"""Directional-derivative kernels (docs/spec.md §7.1-7.2; Beaini et al. 2021).

For node i, direction c and neighbour j: ``p^c_ij = <x_j - x_i, T_i e_c>``,
``F^c_ij = p^c_ij / sum_j' |p^c_ij'|`` and ``K^c = F^c - diag(F^c 1)``, so
``(K^c g)_i = sum_j F^c_ij (g_j - g_i)`` and ``K^c 1 = 0``. A node whose normaliser is 0 (the
coordinate is constant on its neighbourhood, or it has no neighbour) gets a zero row: zero
derivative instead of the reference's NaN (§14 item 7). Edge weights are not used. The kernels
are scale-free ratios: invariant to translating and (global gauge) scaling the positions.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp


def edge_projections(
    pos: np.ndarray, edge_index: np.ndarray, frames: np.ndarray | None
) -> np.ndarray:
    """``p^c_ij = <x_j - x_i, T_i e_c>`` per edge; (E, d') (ambient axes when frames is None)."""
    i, j = edge_index
    diff = pos[j] - pos[i]
    if frames is None:
        return diff
    return np.einsum("en,enc->ec", diff, frames[i])


def normalized_projections(p: np.ndarray, rows: np.ndarray, n_nodes: int) -> np.ndarray:
    """``F^c_ij = p^c_ij / sum_j |p^c_ij|`` with zero rows where the normaliser is 0; (E, d')."""
    out = np.zeros_like(p)
    n_zero = 0
    for c in range(p.shape[1]):
        norm = np.bincount(rows, weights=np.abs(p[:, c]), minlength=n_nodes)
        ok = norm[rows] > 0
        out[ok, c] = p[ok, c] / norm[rows[ok]]
        n_zero = max(n_zero, int((norm == 0).sum()))
    if n_zero:
        warnings.warn(
            f"{n_zero} node(s) have a direction along which all neighbours project to 0 "
            f"(constant coordinate or no neighbour); their derivative there is set to 0.",
            stacklevel=3,
        )
    return out


def sorted_pattern(
    edge_index: np.ndarray, n_nodes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR pattern of the edges plus the diagonal: (order, column indices, indptr).

    Why: building CSR/BSR directly from a sorted pattern avoids COO duplicate-summing sorts.
    ``order`` indexes the concatenation ``[edges without self-loops, diagonal 0..N-1]``.
    """
    keep = edge_index[0] != edge_index[1]
    diag = np.arange(n_nodes, dtype=np.int64)
    rows = np.concatenate([edge_index[0][keep], diag])
    cols = np.concatenate([edge_index[1][keep], diag])
    order = np.argsort(rows * n_nodes + cols, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_nodes))])
    return order, cols[order], indptr


def kernel_values(
    pos: np.ndarray, edge_index: np.ndarray, frames: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-edge kernel weights ``F^c_ij`` and diagonals ``-sum_j F^c_ij``.

    Why: one computation of the weights builds both kernel kinds (scalar and block) and is kept
    per edge as ``Geometry.kernel_weights``.

    Returns
    -------
    fhat : (E', d') for the edges of ``edge_index`` that are not self-loops, in order.
    diag : (N, d') diagonal entries ``K^c_ii``.
    """
    n_nodes = len(pos)
    keep = edge_index[0] != edge_index[1]
    ei = edge_index[:, keep]
    fhat = normalized_projections(edge_projections(pos, ei, frames), ei[0], n_nodes)
    diag = np.stack(
        [-np.bincount(ei[0], weights=fhat[:, c], minlength=n_nodes) for c in range(fhat.shape[1])],
        axis=1,
    )
    return fhat, diag


def directional_kernels(
    pos: np.ndarray,
    edge_index: np.ndarray,
    frames: np.ndarray | None = None,
    values: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[sp.csr_matrix]:
    """Scalar directional-derivative kernels ``K^c`` (N x N CSR), one per direction.

    Why: the graph analogue of ``d/dx_c`` used to build MARBLE's feature stack (§7.1).

    Parameters
    ----------
    pos : (N, n) positions. edge_index : (2, E) symmetric edges (self-loops ignored).
    frames : (N, n, d') gauge frames, or None for the ambient axes (global gauge, d' = n).
    values : optional precomputed :func:`kernel_values`.
    """
    n_nodes = len(pos)
    fhat, diag = values if values is not None else kernel_values(pos, edge_index, frames)
    order, cols, indptr = sorted_pattern(edge_index, n_nodes)
    data = np.concatenate([fhat, diag])[order]
    shape = (n_nodes, n_nodes)
    return [sp.csr_matrix((data[:, c], cols, indptr), shape=shape) for c in range(data.shape[1])]


def block_kernels(
    pos: np.ndarray,
    edge_index: np.ndarray,
    frames: np.ndarray,
    connections: np.ndarray,
    values: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[sp.csr_matrix]:
    """Covariant block kernels: block (i, j) is ``K^c_ij R_ij``, diagonal block ``K^c_ii I``.

    Why: ``(K^c u)_i = sum_j F^c_ij (R_ij u_j - u_i)`` differentiates a tangent field given in
    local frames after transporting the neighbours' vectors into frame i (§7.2). Index
    ``i * d + a`` is component a at node i. ``connections`` is aligned with ``edge_index``.

    Returns
    -------
    list of d' (N d, N d) CSR matrices.
    """
    n_nodes = len(pos)
    d = connections.shape[1]
    keep = edge_index[0] != edge_index[1]
    fhat, diag = values if values is not None else kernel_values(pos, edge_index, frames)
    order, cols, indptr = sorted_pattern(edge_index, n_nodes)
    blocks = np.concatenate([connections[keep], np.broadcast_to(np.eye(d), (n_nodes, d, d))])[order]
    coef = np.concatenate([fhat, diag])[order]
    shape = (n_nodes * d, n_nodes * d)
    return [
        sp.bsr_matrix((coef[:, c, None, None] * blocks, cols, indptr), shape=shape).tocsr()
        for c in range(fhat.shape[1])
    ]
