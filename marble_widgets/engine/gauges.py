"""Gauges: global identity frames, local PCA tangent frames, manifold dimension, connections.

Spec §5. Neighbourhoods for local PCA are the ``K + 1`` Euclidean nearest neighbours within the
node's condition (the node included), ``K = round(k * frac_geodesic_nb)``. The reference uses hop
counts on the unweighted graph with heap-order ties (§14 item 10); we use Euclidean kNN because
(i) the CkNN graph is itself made of Euclidean balls, so the first ~1.5 k hop-nearest nodes and
the Euclidean nearest ones coincide except across gaps thinner than a neighbourhood, (ii) it is
deterministic (KD-tree ties by index) and fully vectorised in O(N K) memory, with no sparse
matrix powers. Frames are centred at the neighbourhood mean, only ``d`` are kept, and
rank-deficient neighbourhoods (zero trailing singular values, e.g. an exactly flat plane in R^3)
are fine (§14 item 8).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial import cKDTree

_SVD_CHUNK = 200_000


def global_frames(n_nodes: int, dim: int) -> np.ndarray:
    """Identity frames ``T_i = I_n`` for the global gauge (§5.2); shape (N, n, n)."""
    return np.broadcast_to(np.eye(dim), (n_nodes, dim, dim)).copy()


def pca_neighbourhoods(pos: np.ndarray, condition: np.ndarray, n_neighbours: int) -> np.ndarray:
    """Indices of each node's ``n_neighbours + 1`` Euclidean nearest nodes in its condition.

    Why: the local PCA sample of §5.3 (node first). A condition with fewer nodes uses all of
    them and pads by repeating the node itself (see :func:`local_pca`, which neutralises pads).

    Returns
    -------
    (N, n_neighbours + 1) int64 array; column 0 is the node.
    """
    out = np.empty((len(pos), n_neighbours + 1), dtype=np.int64)
    for c in range(int(condition.max()) + 1 if len(condition) else 0):
        idx = np.flatnonzero(condition == c)
        m = min(n_neighbours + 1, len(idx))
        nb = cKDTree(pos[idx]).query(pos[idx], k=m, workers=-1)[1].reshape(len(idx), m)
        nb = idx[nb]
        nb[:, 0] = idx  # the node itself first, even among coincident points
        if m < n_neighbours + 1:
            nb = np.concatenate([nb, np.repeat(idx[:, None], n_neighbours + 1 - m, 1)], axis=1)
        out[idx] = nb
    return out


def local_pca(pos: np.ndarray, neighbourhoods: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal directions and singular values of each centred neighbourhood (batched SVD).

    Why: the tangent space at a node is spanned by the leading principal directions of its
    neighbourhood (§5.3). Centred at the neighbourhood mean; repeated indices (pads) count once.

    Returns
    -------
    directions : (N, n, m) orthonormal columns, m = min(n, K + 1), by decreasing variance.
    sing : (N, m) singular values.
    """
    n_nodes, n_nb = neighbourhoods.shape
    dim = pos.shape[1]
    m = min(dim, n_nb)
    directions = np.empty((n_nodes, dim, m))
    sing = np.empty((n_nodes, m))
    step = max(1, _SVD_CHUNK // n_nb)
    dup = np.zeros(neighbourhoods.shape, dtype=bool)
    dup[:, 1:] = neighbourhoods[:, 1:] == neighbourhoods[:, :1]
    for s in range(0, n_nodes, step):
        e = min(s + step, n_nodes)
        pts = pos[neighbourhoods[s:e]]
        w = (~dup[s:e]).astype(float)[..., None]
        mean = (pts * w).sum(1, keepdims=True) / w.sum(1, keepdims=True)
        centred = (pts - mean) * w
        directions[s:e], sing[s:e] = _principal_axes(centred, m)
    return directions, sing


def _principal_axes(centred: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Right singular vectors (B, n, m) and singular values (B, m) of stacked (B, K+1, n).

    Uses the eigendecomposition of the n x n scatter matrix when n <= K+1 (about 2x faster than
    a batched SVD of the data; trailing singular values below ~1e-8 of the largest are then
    only known to be small, which the dimension rule and the frames tolerate), SVD otherwise.
    """
    n_nb, dim = centred.shape[1:]
    if dim > n_nb:
        _, sv, vt = np.linalg.svd(centred, full_matrices=False)
        return np.swapaxes(vt[:, :m], 1, 2), sv[:, :m]
    scatter = np.swapaxes(centred, 1, 2) @ centred
    evals, evecs = np.linalg.eigh(scatter)
    return evecs[:, :, ::-1][:, :, :m], np.sqrt(np.clip(evals[:, ::-1][:, :m], 0.0, None))


def explained_variance_curve(sing: np.ndarray) -> np.ndarray:
    """Mean minus std over nodes of the cumulative explained variance, per dimension q.

    Why: MARBLE picks the manifold dimension as the first q where this reaches
    ``var_explained`` (§5.3). Nodes with an all-zero neighbourhood count as fully explained.
    """
    var = sing**2
    cum = np.cumsum(var, axis=1)
    total = cum[:, -1:]
    frac = np.divide(cum, total, out=np.ones_like(cum), where=total > 0)
    return frac.mean(0) - frac.std(0)


def manifold_dimension(sing: np.ndarray, var_explained: float = 0.9) -> int:
    """Smallest q with mean - std of the cumulative explained variance >= ``var_explained``.

    Why: one manifold dimension d shared by all conditions (§5.3); ``var_explained=1`` gives n.
    """
    if not 0 < var_explained <= 1:
        raise ValueError(f"var_explained must be in (0, 1], got {var_explained!r}.")
    curve = explained_variance_curve(sing)
    ok = np.flatnonzero(curve >= var_explained - 1e-12)
    return int(ok[0]) + 1 if len(ok) else sing.shape[1]


def chosen_dimension(sing: np.ndarray, var_explained: float, manifold_dim: int | None) -> int:
    """The manifold dimension d: estimated from the local spectra ``sing``, or ``manifold_dim`` checked."""
    if manifold_dim is None:
        return manifold_dimension(sing, var_explained)
    d = int(manifold_dim)
    if not 1 <= d <= sing.shape[1]:
        raise ValueError(
            f"manifold_dim must be between 1 and {sing.shape[1]} (ambient dimension / "
            f"neighbourhood size), got {manifold_dim!r}."
        )
    return d


def truncated_frames(directions: np.ndarray, sing: np.ndarray, d: int) -> np.ndarray:
    """The first d local PCA directions as (N, n, d) frames; warns about neighbourhoods thinner than d."""
    thin = sing[:, d - 1] <= 1e-6 * sing[:, 0]
    if thin.any():
        warnings.warn(
            f"{int(thin.sum())} neighbourhood(s) span fewer "
            f"than d={d} dimensions; their frames are arbitrary in the missing directions.",
            stacklevel=3,
        )
    return np.ascontiguousarray(directions[:, :, :d])


def local_frames(
    pos: np.ndarray,
    condition: np.ndarray,
    n_neighbours: int,
    var_explained: float = 0.9,
    manifold_dim: int | None = None,
) -> tuple[np.ndarray, int, np.ndarray]:
    """Local PCA frames truncated to the manifold dimension.

    Returns
    -------
    frames : (N, n, d) orthonormal tangent frames.
    d : manifold dimension (estimated, or ``manifold_dim`` if given).
    curve : (m,) mean - std cumulative explained-variance curve (for inspection).
    """
    nb = pca_neighbourhoods(pos, condition, n_neighbours)
    directions, sing = local_pca(pos, nb)
    d = chosen_dimension(sing, var_explained, manifold_dim)
    return truncated_frames(directions, sing, d), d, explained_variance_curve(sing)


def procrustes(a: np.ndarray) -> np.ndarray:
    """Nearest orthogonal matrices ``U V^T`` of a stack of square matrices ``a = U S V^T``.

    Closed forms for 1 x 1 (the sign) and 2 x 2 (best of the nearest rotation and the nearest
    reflection); batched SVD otherwise.
    """
    d = a.shape[-1]
    if d == 1:
        return np.where(a < 0, -1.0, 1.0)
    if d == 2:
        return _procrustes_2x2(a)
    u, _, vt = np.linalg.svd(a)
    return u @ vt


def _procrustes_2x2(a: np.ndarray) -> np.ndarray:
    """Closed-form polar factor of 2 x 2 matrices: maximise trace(R^T a) over O(2)."""
    p, q, r, s = a[:, 0, 0], a[:, 0, 1], a[:, 1, 0], a[:, 1, 1]
    rot_c, rot_s = p + s, r - q  # R = [[c, -s], [s, c]]
    ref_c, ref_s = p - s, q + r  # R = [[c, s], [s, -c]]
    rot_n, ref_n = np.hypot(rot_c, rot_s), np.hypot(ref_c, ref_s)
    use_rot = rot_n >= ref_n
    norm = np.where(use_rot, rot_n, ref_n)
    norm = np.where(norm > 0, norm, 1.0)
    c = np.where(use_rot, rot_c, ref_c) / norm
    sn = np.where(use_rot, rot_s, ref_s) / norm
    c = np.where((rot_n == 0) & (ref_n == 0), 1.0, c)
    sign = np.where(use_rot, 1.0, -1.0)
    out = np.empty_like(a)
    out[:, 0, 0], out[:, 1, 0] = c, sn
    out[:, 0, 1], out[:, 1, 1] = -sign * sn, sign * c
    return out


def connections(frames: np.ndarray, edge_index: np.ndarray, chunk: int = 500_000) -> np.ndarray:
    """Discrete Levi-Civita connections ``R_ij = U V^T`` with ``T_i^T T_j = U S V^T`` per edge.

    Why: ``R_ij`` maps coordinates in frame j to frame i (§5.4), the orthogonal transport used
    by covariant derivatives and the connection Laplacian. Computed once per undirected pair
    (``R_ji = R_ij^T``), in chunks; reflections allowed.

    Returns
    -------
    (E, d, d) array aligned with ``edge_index``.
    """
    i, j = edge_index
    d = frames.shape[2]
    out = np.empty((len(i), d, d))
    upper = np.flatnonzero(i < j)
    lower = np.flatnonzero(i > j)
    for s in range(0, len(upper), chunk):
        e = upper[s : s + chunk]
        m = np.einsum("ena,enb->eab", frames[i[e]], frames[j[e]])
        out[e] = procrustes(m)
    if len(lower):
        # partner of (i, j) with i > j is (j, i): find it by sorted lookup of edge keys
        n = int(edge_index.max()) + 1
        key = i[upper] * n + j[upper]
        order = np.argsort(key)
        pos = order[np.searchsorted(key[order], j[lower] * n + i[lower])]
        out[lower] = np.swapaxes(out[upper[pos]], 1, 2)
    self_loops = np.flatnonzero(i == j)
    out[self_loops] = np.eye(d)
    return out
