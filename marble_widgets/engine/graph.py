"""Point-cloud graphs for MARBLE: furthest-point subsampling and the continuous-kNN graph.

Everything is sparse: KD-tree queries, O(N) memory subsampling, edge lists. No N x N matrix is
ever formed (docs/spec.md §3, §4, §14 item 1).

Coincident points (exact duplicates within one condition) are treated explicitly rather than
jittered: the graph is built on the *distinct* positions (so a duplicate never shrinks
``rho_k`` to 0, which would give the 0/0 of the reference), every copy of a position receives
the edges of that position, and copies of one position are never joined to each other (their
distance is 0, so the weight ``1/||xi - xj||`` is undefined and their directional derivative
contribution is 0 anyway).
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

_CHUNK = 4096


def _pairwise_sq_chunk(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between rows of ``a`` and ``b`` (small chunks only)."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(sq, 0.0)


def diameter(x: np.ndarray, chunk: int = 2048) -> float:
    """Largest pairwise Euclidean distance of a cloud, exactly, in O(N) memory.

    Why: furthest-point sampling measures ``spacing`` relative to the diameter (§3). A two-sweep
    lower bound and the centroid radii prune the pairs that cannot beat it; the rest are scanned
    in row chunks.

    Parameters
    ----------
    x : (N, n) array of positions.
    """
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return 0.0
    a = int(np.argmax(((x - x[0]) ** 2).sum(1)))
    b = int(np.argmax(((x - x[a]) ** 2).sum(1)))
    best = float(np.linalg.norm(x[a] - x[b]))
    r = np.linalg.norm(x - x.mean(0), axis=1)
    order = np.argsort(-r, kind="stable")
    xs, rs = x[order], r[order]
    for start in range(0, len(xs), chunk):
        if rs[start] + rs[0] <= best:
            break
        stop = min(start + chunk, len(xs))
        n_cols = int(np.searchsorted(-rs, -(best - rs[start]), side="left"))
        if n_cols <= start:
            continue
        sq = _pairwise_sq_chunk(xs[start:stop], xs[start:n_cols])
        i, j = np.unravel_index(int(np.argmax(sq)), sq.shape)
        cand = float(np.linalg.norm(xs[start + i] - xs[start + j]))
        best = max(best, cand)
    return best


def furthest_point_sampling(
    x: np.ndarray, spacing: float = 0.0, seed: int | None = None
) -> np.ndarray:
    """Indices kept by furthest-point sampling with covering radius ``spacing * diameter``.

    Why: thins dense regions so every kept point is at least ``spacing`` (fraction of the
    diameter) from the others, bounding the graph size (§3). ``spacing=0`` keeps everything.
    The start is index 0 when ``seed`` is None, else drawn by ``np.random.default_rng(seed)``.
    Memory is one running min-distance vector (O(N)); time O(N * N_kept).

    Returns
    -------
    (N_kept,) int64 array of sorted indices into ``x``.
    """
    x = np.asarray(x, dtype=float)
    n_pts = len(x)
    if spacing < 0 or not np.isfinite(spacing):
        raise ValueError(f"spacing must be a finite number >= 0, got {spacing!r}.")
    if spacing == 0 or n_pts <= 1:
        return np.arange(n_pts, dtype=np.int64)
    diam = diameter(x)
    if diam == 0:
        return np.zeros(1, dtype=np.int64)
    start = 0 if seed is None else int(np.random.default_rng(seed).integers(n_pts))
    kept = [start]
    mind = np.sqrt(((x - x[start]) ** 2).sum(1))
    while True:
        nxt = int(np.argmax(mind))
        if mind[nxt] / diam < spacing:
            break
        kept.append(nxt)
        np.minimum(mind, np.sqrt(((x - x[nxt]) ** 2).sum(1)), out=mind)
    return np.sort(np.asarray(kept, dtype=np.int64))


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted unique values of a 1-D array by sort + adjacent compare.

    Why: much faster than ``np.unique`` on millions of int64 keys (hash path in numpy 2.x).
    """
    out = np.sort(values)
    if len(out) == 0:
        return out
    keep = np.empty(len(out), dtype=bool)
    keep[0] = True
    np.not_equal(out[1:], out[:-1], out=keep[1:])
    return out[keep]


def _unique_edges(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Sorted unique (2, E) edge list from index arrays, via 1-D int64 keys (fast)."""
    key = sorted_unique(i.astype(np.int64) * n + j)
    return np.stack([key // n, key % n])


def _candidate_pairs(tree, x, rho, delta, nb, nb_dist, rows):
    """Candidate (i, j) with ||xi - xj|| <= delta rho_i for the given rows.

    Rows whose neighbour list ``nb`` (sorted by distance) may miss candidates are re-queried
    with a radius query, in chunks to bound memory.
    """
    radius = delta * rho[rows] * (1 + 1e-12)
    # every edge satisfies d < delta * rho_i from its endpoint with the larger rho (strict),
    # so a sorted list reaching delta * rho_i holds all of them
    complete = nb_dist[rows, -1] >= delta * rho[rows]
    inside = nb_dist[rows] <= radius[:, None]
    i_parts = [np.repeat(rows[complete], inside[complete].sum(1))]
    j_parts = [nb[rows][complete][inside[complete]]]
    todo = rows[~complete]
    for start in range(0, len(todo), _CHUNK):
        chunk = todo[start : start + _CHUNK]
        lists = tree.query_ball_point(
            x[chunk], r=delta * rho[chunk] * (1 + 1e-12), return_sorted=False, workers=-1
        )
        lens = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        flat = itertools.chain.from_iterable(lists)
        j_parts.append(np.fromiter(flat, dtype=np.int64, count=lens.sum()))
        i_parts.append(np.repeat(chunk, lens))
    return np.concatenate(i_parts), np.concatenate(j_parts)


def _cknn_distinct(x: np.ndarray, k: int, delta: float) -> np.ndarray:
    """Directed CkNN edges (both directions) of a cloud of distinct points, as (2, E).

    With ``delta <= 1`` every candidate is among the k nearest neighbours already found for
    ``rho_k``; otherwise 2k neighbours are queried and rows that need more get a radius query.
    """
    n = len(x)
    tree = cKDTree(x)
    m = k + 1 if delta <= 1 else min(2 * k + 1, n)
    nb_dist, nb = tree.query(x, k=m, workers=-1)
    rho = nb_dist[:, k]
    if m == n:
        nb_dist = np.concatenate([nb_dist, np.full((n, 1), np.inf)], axis=1)
        nb = np.concatenate([nb, np.zeros((n, 1), dtype=nb.dtype)], axis=1)
    i, j = _candidate_pairs(tree, x, rho, delta, nb, nb_dist, np.arange(n))
    dist = np.sqrt(((x[i] - x[j]) ** 2).sum(1))
    keep = (i != j) & (dist < delta * np.sqrt(rho[i] * rho[j]))
    i, j = i[keep], j[keep]
    return _unique_edges(np.concatenate([i, j]), np.concatenate([j, i]), n)


def _expand_groups(ids: np.ndarray, starts: np.ndarray, counts: np.ndarray, members: np.ndarray):
    """For each entry ``ids[e]`` list all members of group ``ids[e]``: (entry index, member)."""
    reps = counts[ids]
    entry = np.repeat(np.arange(len(ids), dtype=np.int64), reps)
    offset = np.arange(reps.sum(), dtype=np.int64) - np.repeat(np.cumsum(reps) - reps, reps)
    return entry, members[starts[ids][entry] + offset]


def cknn_edges(x: np.ndarray, k: int = 20, delta: float = 1.0, name: str = "x") -> np.ndarray:
    """Continuous-kNN edges of one point cloud: ||xi - xj|| < delta * sqrt(rho_k(i) rho_k(j)).

    Why: the CkNN graph (Berry & Sauer) adapts the neighbourhood radius to the local density
    (§4). ``rho_k(i)`` is the distance to the k-th nearest other (distinct) position. Built from a
    (k+1)-NN query and radius queries of ``delta * rho_k(i)`` (every edge is found from its
    endpoint with the larger ``rho_k``), so memory stays O(N k). Duplicates: see module notes.

    Returns
    -------
    (2, E) int64 edge list, symmetric, sorted, without self-loops.
    """
    x = np.asarray(x, dtype=float)
    uniq, inverse = np.unique(x, axis=0, return_inverse=True)  # rows sorted lexicographically
    inverse = inverse.reshape(-1)
    if len(uniq) < k + 1:
        raise ValueError(
            f"{name} has {len(uniq)} distinct point(s) but k={k} needs at least k+1={k + 1}: "
            f"lower k to at most {max(len(uniq) - 1, 1)} or provide more samples."
        )
    edges = _cknn_distinct(uniq, k, delta)
    if len(uniq) == len(x):
        # np.unique sorted the points: map back to input order (inverse is a permutation here).
        edges = np.argsort(inverse)[edges]
        return _unique_edges(edges[0], edges[1], len(x))
    members = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=len(uniq))
    starts = np.cumsum(counts) - counts
    e1, src = _expand_groups(edges[0], starts, counts, members)
    e2, dst = _expand_groups(edges[1][e1], starts, counts, members)
    return _unique_edges(src[e2], dst, len(x))


def count_components(edge_index: np.ndarray, condition: np.ndarray) -> np.ndarray:
    """Number of connected components of the graph within each condition.

    Why: the reference only checks a minimum degree (§14 item 14); several components mean
    derivatives and diffusion never exchange information between them.

    Returns
    -------
    (C,) int64 array of component counts.
    """
    n_nodes = len(condition)
    adj = coo_matrix(
        (np.ones(edge_index.shape[1]), (edge_index[0], edge_index[1])), shape=(n_nodes, n_nodes)
    ).tocsr()
    _, labels = connected_components(adj, directed=False)
    n_cond = int(condition.max()) + 1 if n_nodes else 0
    n_lab = int(labels.max()) + 1 if n_nodes else 1
    pairs = sorted_unique(condition.astype(np.int64) * n_lab + labels)
    return np.bincount(pairs // n_lab, minlength=n_cond).astype(np.int64)


def cknn_graph(
    x: np.ndarray,
    condition: np.ndarray,
    k: int = 20,
    delta: float = 1.0,
    labels: list | None = None,
) -> np.ndarray:
    """CkNN graph over several conditions, never joining two conditions.

    Why: MARBLE builds one graph per condition and stacks them block-diagonally (§1, §4).
    Warns when a condition's graph has several connected components or isolated nodes.

    Parameters
    ----------
    x : (N, n) positions. condition : (N,) int condition index 0..C-1.
    labels : optional condition names used in messages.

    Returns
    -------
    (2, E) int64 symmetric edge list without self-loops, sorted by (row, column).
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta!r}.")
    parts = []
    n_cond = int(condition.max()) + 1 if len(condition) else 0
    for c in range(n_cond):
        idx = np.flatnonzero(condition == c)
        name = f"condition {labels[c] if labels is not None else c!r}"
        parts.append(idx[cknn_edges(x[idx], k, delta, name=name)])
    edges = np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), np.int64)
    edges = _unique_edges(edges[0], edges[1], len(x))
    _warn_connectivity(edges, condition, labels)
    return edges


def _warn_connectivity(edges: np.ndarray, condition: np.ndarray, labels: list | None) -> None:
    """Warn about conditions whose graph is split into components or has isolated nodes."""
    n_comp = count_components(edges, condition)
    isolated = np.bincount(edges[0], minlength=len(condition)) == 0
    for c in np.flatnonzero(n_comp > 1):
        name = labels[c] if labels is not None else int(c)
        n_iso = int(isolated[condition == c].sum())
        warnings.warn(
            f"graph of condition {name!r} has {n_comp[c]} connected components "
            f"({n_iso} isolated node(s), whose derivatives are 0): increase k or delta.",
            stacklevel=3,
        )
