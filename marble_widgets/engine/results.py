"""Per-sample results of a fitted geometry: neighbours, frames, transported vectors (design.md "Results").

Why: the dashboards show the geometry behind each sample; these arrays are what
``MARBLE.results`` adds to the flow field, computed from the :class:`~marble_widgets.engine.geometry.Geometry`.
"""
from __future__ import annotations

import numpy as np

from marble_widgets.engine.geometry import Geometry


def sorted_neighbors(geometry: Geometry, max_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Per node: up to ``max_neighbors`` graph neighbours, nearest first (-1 padded), and edge ids."""
    i, j = geometry.edge_index
    dist = np.linalg.norm(geometry.pos[j] - geometry.pos[i], axis=1)
    order = np.lexsort((dist, i))
    i_s = i[order]
    start = np.searchsorted(i_s, np.arange(geometry.n_nodes))
    rank = np.arange(len(i_s)) - start[i_s]
    keep = rank < max_neighbors
    width = max(int(rank[keep].max()) + 1 if keep.any() else 1, 1)
    nb = np.full((geometry.n_nodes, width), -1, dtype=np.int64)
    eid = np.full((geometry.n_nodes, width), -1, dtype=np.int64)
    nb[i_s[keep], rank[keep]] = j[order][keep]
    eid[i_s[keep], rank[keep]] = order[keep]
    return nb, eid


def result_variables(geometry: Geometry, feats: np.ndarray, z: np.ndarray, n_samples: int,
                     max_neighbors: int) -> dict[str, tuple]:
    """The per-sample variables of ``MARBLE.results``, on the input's sample order (``n_samples``).

    ``feats (N, E)`` and ``z (N, latent)`` are the features and embeddings of the geometry's nodes;
    samples the geometry does not hold get NaN (-1 neighbours). Returns name -> (dims, values).
    """
    nb, eid = sorted_neighbors(geometry, max_neighbors)
    frames = geometry.frames
    coords_j = np.einsum("nad,na->nd", frames, geometry.signal)  # T_j^T v_j
    valid = eid >= 0
    transported = np.full(nb.shape + (frames.shape[2],), np.nan)
    moved = coords_j[nb[valid]]
    if geometry.connections is not None:
        moved = np.einsum("eab,eb->ea", geometry.connections[eid[valid]], moved)
    transported[valid] = moved
    rows = geometry.sample_index

    def scatter(values, fill):
        out = np.full((n_samples,) + values.shape[1:], fill, dtype=np.result_type(values, type(fill)))
        out[rows] = values
        return out

    nb_samples = np.where(nb >= 0, rows[np.maximum(nb, 0)], -1)
    return {
        "embedding": (("sample", "latent"), scatter(z, np.nan)),
        "neighbors": (("sample", "neighbor"), scatter(nb_samples, -1).astype(np.int64)),
        "frame": (("sample", "dim", "tangent"), scatter(frames, np.nan)),
        "transported": (("sample", "neighbor", "tangent"), scatter(transported, np.nan)),
        "features": (("sample", "feature"), scatter(feats, np.nan)),
    }
