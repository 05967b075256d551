"""Distances between the embedded distributions of conditions (or animals): optimal transport.

Each group (condition, animal, ...) is an empirical distribution of embedded samples with
uniform weights; two groups are compared by the Wasserstein-1 distance with Euclidean ground
cost (earth mover's distance, docs/spec.md §13.2). Such distances ignore isometries of latent space, so
they can be compared and averaged across separately trained models.
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr

from marble_widgets.analysis._samples import Samples, embedding_values, group_indices, sample_values, subsample

_METHODS = ("exact", "kmeans")


# --------------------------------------------------------------------------------------------
# optimal transport
# --------------------------------------------------------------------------------------------
def _emd(a: np.ndarray, b: np.ndarray, cost: np.ndarray, plan: bool = False) -> Any:
    """Exact earth mover's distance (or plan) between histograms ``a`` and ``b`` (POT)."""
    import ot

    n_iter = max(100_000, 50 * cost.shape[0] * cost.shape[1])
    if plan:
        return ot.emd(a, b, cost, numItermax=n_iter)
    return float(ot.emd2(a, b, cost, numItermax=n_iter))


def _euclidean(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pairwise Euclidean distances, computed per pair (exact zeros for equal points).

    ``ot.dist(metric="euclidean")`` expands |x|^2 + |y|^2 - 2 x.y and returns ~1e-8 for equal
    points; scipy's ``cdist`` does not.
    """
    from scipy.spatial.distance import cdist

    return cdist(x, y, metric="euclidean")


def _w1_points(x: np.ndarray, y: np.ndarray) -> float:
    """Wasserstein-1 between two uniform point clouds with Euclidean ground cost."""
    cost = _euclidean(x, y)
    return _emd(np.full(len(x), 1.0 / len(x)), np.full(len(y), 1.0 / len(y)), cost)


def _kmeans(points: np.ndarray, n_clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Joint k-means of all points: (labels, centroids)."""
    from sklearn.cluster import KMeans

    if not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
        raise ValueError(f"n_clusters must be a positive integer; got {n_clusters!r}.")
    k = int(min(n_clusters, len(np.unique(points, axis=0))))
    km = KMeans(n_clusters=k, random_state=seed, n_init=10).fit(points)
    return km.labels_, km.cluster_centers_


def _histograms(labels: np.ndarray, index: list[np.ndarray], k: int) -> np.ndarray:
    """Per-group normalised cluster histograms, shape (group, cluster)."""
    return np.stack([np.bincount(labels[i], minlength=k) / i.size for i in index])


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}.")


def distances(
    embedding: Samples,
    by: str = "condition",
    *,
    method: str = "exact",
    n_clusters: int = 50,
    seed: int = 0,
    max_points: int | None = None,
) -> xr.DataArray:
    """Wasserstein-1 distances between the embedded distributions of every pair of groups.

    Compares conditions (or animals) as point clouds, independent of latent-space isometries
    (docs/spec.md §13.2). ``method="exact"``: exact EMD between the groups' samples (uniform weights,
    Euclidean ground cost); ``max_points`` caps each group by a seeded subsample. ``"kmeans"``:
    k-means on all samples jointly (``n_clusters``, ``random_state=seed``) and EMD between the
    groups' cluster histograms with centroid distances as ground cost — for large N.

    Parameters
    ----------
    embedding : xr.DataArray (sample, latent) with a ``by`` coordinate on sample, or a Dataset holding
        ``embedding`` and ``by`` (e.g. ``MARBLE.results(flow_field)``).
    by : name of the per-sample coordinate/variable that defines the groups (order of first appearance).

    Returns
    -------
    xr.DataArray, dims (by, f"{by}_other"): symmetric, zero diagonal, named ``distance``.
    """
    _check_method(method)
    points = embedding_values(embedding)
    groups, index = group_indices(sample_values(embedding, by, "by"))
    if max_points is not None and (not isinstance(max_points, (int, np.integer)) or max_points < 1):
        raise ValueError(f"max_points must be a positive integer or None; got {max_points!r}.")
    rng = np.random.default_rng(seed)
    n = len(groups)
    out = np.zeros((n, n))
    if method == "exact":
        index = [subsample(i, max_points, rng) for i in index]
        for i in range(n):
            for j in range(i + 1, n):
                out[i, j] = out[j, i] = _w1_points(points[index[i]], points[index[j]])
    else:
        labels, centroids = _kmeans(points, n_clusters, seed)
        hist = _histograms(labels, index, len(centroids))
        cost = _euclidean(centroids, centroids)
        for i in range(n):
            for j in range(i + 1, n):
                out[i, j] = out[j, i] = _emd(hist[i], hist[j], cost)
    other = f"{by}_other"
    return xr.DataArray(
        out,
        dims=(by, other),
        coords={by: np.asarray(groups), other: np.asarray(groups)},
        name="distance",
        attrs={"method": method, "metric": "wasserstein-1, euclidean ground cost", "seed": seed,
               "n_clusters": int(n_clusters) if method == "kmeans" else -1,
               "max_points": -1 if max_points is None else int(max_points)},
    )


def transport_plan(
    embedding: Samples,
    source: Hashable,
    target: Hashable,
    by: str = "condition",
    *,
    method: str = "exact",
    n_clusters: int = 50,
    seed: int = 0,
    max_points: int | None = None,
) -> xr.Dataset:
    """Optimal transport plan between two groups' embedded distributions.

    Shows which samples (``"exact"``) or clusters (``"kmeans"``) of ``source`` move where in
    ``target``; the plan's cost-weighted sum is the distance returned by :func:`distances`.

    Returns
    -------
    xr.Dataset with ``plan`` and ``cost`` on (source_sample, target_sample) — coords are sample
    indices into ``embedding`` — for ``"exact"``, or on (source_cluster, target_cluster) plus
    ``centroid`` (source_cluster, latent) for ``"kmeans"``. Rows of ``plan`` sum to the source
    weights, columns to the target weights (total mass 1); ``attrs["distance"]`` is the cost.
    """
    _check_method(method)
    points = embedding_values(embedding)
    groups, index = group_indices(sample_values(embedding, by, "by"))
    lookup = {str(g): i for i, g in enumerate(groups)}
    for arg, value in (("source", source), ("target", target)):
        if str(value) not in lookup:
            raise ValueError(f"{arg}={value!r} is not a value of {by!r}; available: {groups}.")
    i_src, i_tgt = index[lookup[str(source)]], index[lookup[str(target)]]
    attrs = {"method": method, "source": str(source), "target": str(target), "by": by}
    if method == "exact":
        rng = np.random.default_rng(seed)
        i_src, i_tgt = subsample(i_src, max_points, rng), subsample(i_tgt, max_points, rng)
        cost = _euclidean(points[i_src], points[i_tgt])
        plan = _emd(np.full(i_src.size, 1 / i_src.size), np.full(i_tgt.size, 1 / i_tgt.size), cost, True)
        dims = ("source_sample", "target_sample")
        coords: dict[str, Any] = {"source_sample": i_src, "target_sample": i_tgt}
    else:
        labels, centroids = _kmeans(points, n_clusters, seed)
        hist = _histograms(labels, [i_src, i_tgt], len(centroids))
        cost = _euclidean(centroids, centroids)
        plan = _emd(hist[0], hist[1], cost, True)
        dims = ("source_cluster", "target_cluster")
        k = np.arange(len(centroids))
        coords = {"source_cluster": k, "target_cluster": k}
    attrs["distance"] = float(np.sum(plan * cost))
    out = xr.Dataset({"plan": (dims, plan), "cost": (dims, cost)}, coords=coords, attrs=attrs)
    if method == "kmeans":
        out["centroid"] = (("source_cluster", "latent"), centroids)
    return out
