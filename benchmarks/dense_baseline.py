"""Naive dense MARBLE construction, kept only as a benchmark baseline (never used by the package).

Why: the speed-up of our sparse engine must be measured against the approach of the reference
implementation (docs/spec.md §14 item 1) doing the *same* work. Written from docs/spec.md §3-§7, it forms
N x N matrices wherever the reference does:

- one full N x N Euclidean distance matrix, used for furthest-point sampling (§3) and CkNN (§4);
- CkNN from the dense ratio matrix ``||x_i - x_j|| / sqrt(rho_i rho_j)`` (§4);
- local-PCA neighbourhoods by a full ``argsort`` of every row of the distance matrix (§5.3;
  Euclidean nearest ``K + 1`` points, the same rule as our engine, see ``engine/gauges.py``);
- one dense N x N derivative kernel per direction (§7.1);
- a dense ``numpy.linalg.eigh`` of the N x N (symmetric normalised) Laplacian (§6.2: the
  reference always computes the full spectrum, even when the network never diffuses).

What it does *not* densify (so the baseline is a lower bound of the reference's cost and the
speed-up is conservative): the connections ``R_ij`` and their use in the covariant kernels are
kept per edge (the reference stores them block-sparse, §5.4), and with local gauges the dense
``eigh`` of the N d x N d connection Laplacian, which the reference also computes, is skipped
(24,576 x 24,576 at N = 8,192, d = 3: 4.8 GB and hours on 2 cores).

Outputs follow our engine's conventions (symmetric normalised Laplacian, no self-loops,
zero kernel rows where a normaliser is 0, feature layout of ``engine/features.py``), so
``tests/benchmarks/test_dense_baseline.py`` can check that both compute the same thing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.distance import cdist


@dataclass
class DenseResult:
    """Everything the dense construction computes, plus wall seconds per stage."""

    keep: np.ndarray
    adjacency: np.ndarray
    edge_index: np.ndarray
    frames: np.ndarray
    manifold_dim: int | None
    connections: np.ndarray | None
    kernels: list[np.ndarray]
    eigenvalues: np.ndarray | None
    eigenvectors: np.ndarray | None
    features: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def dense_fps(dist: np.ndarray, spacing: float = 0.0, start: int = 0) -> np.ndarray:
    """Furthest-point sampling on a dense distance matrix (§3); sorted kept indices.

    Why: the reference's O(N^2)-memory subsampling. ``spacing=0`` keeps every point.
    """
    n = len(dist)
    if spacing <= 0:
        return np.arange(n)
    diam = dist.max()
    kept, mind = [start], dist[start].copy()
    while True:
        nxt = int(np.argmax(mind))
        if mind[nxt] / diam < spacing:
            break
        kept.append(nxt)
        np.minimum(mind, dist[nxt], out=mind)
    return np.sort(np.asarray(kept))


def dense_cknn(dist: np.ndarray, k: int = 20, delta: float = 1.0) -> np.ndarray:
    """Boolean N x N CkNN adjacency ``d_ij < delta sqrt(rho_k(i) rho_k(j))``, no self-loops (§4).

    Why: the reference's dense ratio-matrix construction. Assumes distinct points.
    """
    rho = np.partition(dist, k, axis=1)[:, k]  # column 0 is the point itself (distance 0)
    ratio = dist / np.sqrt(np.outer(rho, rho))
    adj = ratio < delta
    np.fill_diagonal(adj, False)
    return adj


def dense_frames(
    x: np.ndarray, dist: np.ndarray, n_neighbours: int, var_explained: float = 0.9,
    manifold_dim: int | None = None,
) -> tuple[np.ndarray, int]:
    """Local PCA frames (N, n, d) from neighbourhoods found by a full row argsort (§5.3).

    Why: tangent spaces as in the reference, with a dense neighbour search. Returns the frames
    and the manifold dimension (first q with mean - std cumulative explained variance >= tau).
    """
    nb = np.argsort(dist, axis=1, kind="stable")[:, : n_neighbours + 1]
    nb[:, 0] = np.arange(len(x))
    pts = x[nb]
    centred = pts - pts.mean(axis=1, keepdims=True)
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    var = sing**2
    frac = np.cumsum(var, axis=1) / var.sum(axis=1, keepdims=True)
    curve = frac.mean(0) - frac.std(0)
    if manifold_dim is None:
        ok = np.flatnonzero(curve >= var_explained - 1e-12)
        manifold_dim = int(ok[0]) + 1 if len(ok) else sing.shape[1]
    frames = np.swapaxes(vt, 1, 2)[:, :, :manifold_dim]
    return np.ascontiguousarray(frames), int(manifold_dim)


def dense_connections(frames: np.ndarray, edge_index: np.ndarray) -> np.ndarray:
    """``R_ij = U V^T`` with ``T_i^T T_j = U S V^T`` for every directed edge (§5.4); (E, d, d)."""
    i, j = edge_index
    m = np.einsum("ena,enb->eab", frames[i], frames[j])
    u, _, vt = np.linalg.svd(m)
    return u @ vt


def dense_kernels(x: np.ndarray, adj: np.ndarray, frames: np.ndarray | None) -> list[np.ndarray]:
    """Dense N x N directional kernels ``K^c = F^c - diag(F^c 1)`` (§7.1), one per direction.

    ``p^c_ij = <x_j - x_i, T_i e_c>`` on edges, ``F^c_ij = p^c_ij / sum_j |p^c_ij|`` (zero row
    when the normaliser is 0). ``frames=None`` uses the ambient axes (global gauge).
    """
    n_dir = x.shape[1] if frames is None else frames.shape[2]
    out = []
    for c in range(n_dir):
        if frames is None:
            p = x[None, :, c] - x[:, None, c]
        else:
            t = frames[:, :, c]
            p = t @ x.T - (t * x).sum(1)[:, None]
        p[~adj] = 0.0
        norm = np.abs(p).sum(1)
        scale = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
        p *= scale[:, None]
        p[np.diag_indices_from(p)] -= p.sum(1)
        out.append(p)
    return out


def dense_spectrum(dist: np.ndarray, adj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Full ``eigh`` of the dense symmetric normalised Laplacian ``I - D^-1/2 W D^-1/2`` (§6.2).

    Why: the reference always computes the complete spectrum; ``W = 1 / d_ij`` on edges.
    """
    w = np.divide(1.0, dist, out=np.zeros_like(dist), where=adj)
    deg = w.sum(1)
    s = np.divide(1.0, np.sqrt(deg), out=np.ones_like(deg), where=deg > 0)
    lap = -(s[:, None] * w * s[None, :])
    lap[np.diag_indices_from(lap)] += (deg > 0).astype(float)
    del w
    return np.linalg.eigh(lap)


def _apply_kernel(kern: np.ndarray, cur: np.ndarray, edge_index, connections) -> np.ndarray:
    """``(K f)_i`` for f (N, b, w): dense matmul (global) or per-edge transport (local, b = d)."""
    if connections is None:
        n, b, w = cur.shape
        return (kern @ cur.reshape(n, b * w)).reshape(n, b, w)
    i, j = edge_index
    moved = np.einsum("eab,ebw->eaw", connections, cur[j]) * kern[i, j][:, None, None]
    out = np.diagonal(kern)[:, None, None] * cur
    np.add.at(out, i, moved)
    return out


def dense_features(
    kernels: list[np.ndarray], signal: np.ndarray, order: int = 2, include_self: bool = True,
    edge_index: np.ndarray | None = None, connections: np.ndarray | None = None,
) -> np.ndarray:
    """Iterated directional derivatives ``[F0, F1, ..., Fp]`` (§7.3), shape (N, E).

    Layout as ``engine/features.py``: order q holds, per component/channel, the d' derivatives
    adjacent. With ``connections`` (local gauges) ``signal`` is in frame coordinates (N, d) and
    neighbours are transported by ``R_ij`` on the component index only (§7.2, §14 item 17).
    """
    n = signal.shape[0]
    cur = signal[:, :, None] if connections is not None else signal[:, None, :]
    blocks = [cur.reshape(n, -1)] if include_self else []
    for _ in range(order):
        cur = np.stack([_apply_kernel(kern, cur, edge_index, connections) for kern in kernels], -1)
        cur = cur.reshape(n, cur.shape[1], -1)
        blocks.append(cur.reshape(n, -1))
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0))


def dense_construction(
    x: np.ndarray,
    v: np.ndarray,
    *,
    k: int = 20,
    delta: float = 1.0,
    spacing: float = 0.0,
    local_gauges: bool = True,
    var_explained: float = 0.9,
    frac_geodesic_nb: float = 1.5,
    order: int = 2,
    include_self: bool = True,
    spectrum: bool = True,
    frame_signs=None,
) -> DenseResult:
    """Dense geometry + derivative features of one condition, with per-stage wall seconds.

    Why: the baseline of ``benchmarks/engine_scaling.py``. ``frame_signs`` (optional callable
    ``frames -> frames``) lets a test align the arbitrary signs of PCA directions with another
    implementation before connections, kernels and features are computed.
    """
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[stage] = now - t
        t = now

    x, v = np.asarray(x, dtype=float), np.asarray(v, dtype=float)
    dist = cdist(x, x)
    keep = dense_fps(dist, spacing)
    if len(keep) < len(x):
        x, v, dist = x[keep], v[keep], dist[np.ix_(keep, keep)]
    lap("distances+fps")
    adj = dense_cknn(dist, k, delta)
    edge_index = np.stack(np.nonzero(adj))
    lap("cknn")
    frames, dim, conn = None, None, None
    if local_gauges:
        n_nb = max(int(round(k * frac_geodesic_nb)), 1)
        frames, dim = dense_frames(x, dist, n_nb, var_explained)
        if frame_signs is not None:
            frames = frame_signs(frames)
        conn = dense_connections(frames, edge_index)
    lap("gauges")
    kernels = dense_kernels(x, adj, frames)
    lap("kernels")
    evals = evecs = None
    if spectrum:
        evals, evecs = dense_spectrum(dist, adj)
    del dist
    lap("eigh")
    sig = np.einsum("na,nad->nd", v, frames) if local_gauges else v
    feats = dense_features(kernels, sig, order, include_self, edge_index, conn)
    lap("features")
    if frames is None:
        frames = np.broadcast_to(np.eye(x.shape[1]), (len(x),) + (x.shape[1],) * 2)
    return DenseResult(keep, adj, edge_index, frames, dim, conn, kernels, evals, evecs, feats, timings)
