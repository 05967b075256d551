"""The geometry MARBLE learns on: one frozen container and its builder (docs/spec.md §3-§7).

``build_geometry`` runs, per condition, subsampling -> CkNN graph, then gauges (identity or
local PCA frames + connections), directional kernels and the symmetric normalised Laplacian,
all sparse. The torch side (layers, network, training) reads only :class:`Geometry`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from marble_widgets.data.containers import check_condition_sizes
from marble_widgets.engine import gauges as _gauges
from marble_widgets.engine.config import GraphConfig
from marble_widgets.engine.graph import cknn_graph, furthest_point_sampling
from marble_widgets.engine.kernels import block_kernels, directional_kernels, kernel_values
from marble_widgets.engine.laplacian import connection_laplacian, normalized_laplacian


@dataclass(frozen=True)
class Geometry:
    """Graph, gauges, kernels and Laplacian of the kept samples of all conditions.

    Why: one immutable object carries everything the network needs, so features and diffusion
    never re-derive geometry. Node order: conditions in index order, samples in input order.

    Attributes
    ----------
    pos : (N, n) positions. signal : (N, s) vectors (ambient coordinates).
    condition : (N,) int64 condition index. sample_index : (N,) int64 row in the input.
    edge_index : (2, E) int64 symmetric, no self-loops, never across conditions.
    edge_weight : (E,) ``1 / ||x_i - x_j||``.
    frames : (N, n, d') gauge frames (identity for the global gauge).
    local_gauges : whether frames are local PCA frames.
    n_directions : d' (n for the global gauge, manifold dimension d for local gauges).
    connections : (E, d', d') ``R_ij`` (frame j -> frame i) per edge, or None (global).
    kernels : d' derivative operators, N x N (global) or N d x N d block kernels (local).
    laplacian : symmetric normalised Laplacian, N x N, or N d x N d connection Laplacian.
    degree : (N,) weighted degree.
    manifold_dim : estimated (or given) manifold dimension d (None for the global gauge).
    explained_variance : (m,) mean - std cumulative explained variance (local gauges) or None.
    condition_labels : the input condition labels, in condition-index order.
    kernel_weights : (E, d') ``F^c_ij`` per edge of ``edge_index`` (the off-diagonal kernel
        entries without the transport ``R_ij``); diagonals are ``-sum_j F^c_ij``.
    """

    pos: np.ndarray
    signal: np.ndarray
    condition: np.ndarray
    sample_index: np.ndarray
    edge_index: np.ndarray
    edge_weight: np.ndarray
    frames: np.ndarray
    local_gauges: bool
    n_directions: int
    connections: np.ndarray | None
    kernels: list
    laplacian: sp.csr_matrix
    degree: np.ndarray
    manifold_dim: int | None = None
    explained_variance: np.ndarray | None = None
    condition_labels: tuple = ()
    kernel_weights: np.ndarray | None = None

    @property
    def n_nodes(self) -> int:
        """Number of nodes N."""
        return len(self.pos)

    @property
    def n_conditions(self) -> int:
        """Number of conditions C."""
        return len(self.condition_labels)


def _as_float_2d(name: str, arr) -> np.ndarray:
    """Copy an array-like to float64 (N, m), refusing NaN/inf with a clear message."""
    out = np.array(arr, dtype=float)
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (samples x dims), got shape {out.shape}.")
    bad = ~np.isfinite(out)
    if bad.any():
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN/inf value(s) (first at row "
            f"{int(np.argwhere(bad)[0][0])}): drop or interpolate those samples first."
        )
    return out


def _condition_codes(condition, n: int) -> tuple[np.ndarray, tuple]:
    """Integer condition codes 0..C-1 (sorted unique labels) and the labels."""
    if condition is None:
        return np.zeros(n, dtype=np.int64), (0,)
    cond = np.asarray(condition)
    if cond.shape != (n,):
        raise ValueError(f"condition must have shape ({n},) like x's rows, got {cond.shape}.")
    labels, codes = np.unique(cond, return_inverse=True)  # C labels: small
    return codes.astype(np.int64).ravel(), tuple(labels.tolist())


def _check_stage(stage: str, *arrays) -> None:
    """Raise if a stage produced NaN/inf (dense arrays or sparse matrices)."""
    for arr in arrays:
        if arr is None:
            continue
        vals = arr.data if sp.issparse(arr) else np.asarray(arr)
        if vals.dtype.kind == "f" and not np.all(np.isfinite(vals)):
            raise ValueError(
                f"stage '{stage}' produced NaN/inf values; check for degenerate input "
                "(coincident points, constant coordinates) and report this as a bug."
            )


def _subsample(x, codes, n_cond, k, spacing, seed, labels) -> np.ndarray:
    """Kept sample indices, per condition, in condition order then input order."""
    check_condition_sizes(np.asarray(labels)[codes], k)
    kept = []
    for c in range(n_cond):
        idx = np.flatnonzero(codes == c)
        kept.append(idx[furthest_point_sampling(x[idx], spacing, seed)])
    return np.concatenate(kept)


def _use_local_gauges(local_gauges: bool, n: int, s: int) -> bool:
    """Whether local gauges can be used; warn (as the reference) when disabled."""
    if not local_gauges:
        return False
    if n <= 2 or s == 1:
        warnings.warn(
            f"local_gauges disabled: they need ambient dimension n > 2 and a vector signal "
            f"(got n={n}, s={s}); using the global gauge.",
            stacklevel=3,
        )
        return False
    if s != n:
        raise ValueError(
            f"local_gauges=True needs vectors in the ambient space (v with n={n} columns like "
            f"x), got s={s}: use local_gauges=False for this signal."
        )
    return True


def _gauge_stage(pos, codes, edge_index, local, k, frac_geodesic_nb, var_explained, manifold_dim):
    """Frames, d', connections, manifold dim and explained-variance curve."""
    n_nodes, dim = pos.shape
    if not local:
        return _gauges.global_frames(n_nodes, dim), dim, None, None, None
    n_nb = max(int(round(k * frac_geodesic_nb)), 1)
    frames, d, curve = _gauges.local_frames(pos, codes, n_nb, var_explained, manifold_dim)
    conn = _gauges.connections(frames, edge_index)
    return frames, d, conn, d, curve


def build_geometry(
    x,
    v,
    condition=None,
    config: GraphConfig | None = None,
    *,
    manifold_dim: int | None = None,
    verbose: bool = False,
    **settings,
) -> Geometry:
    """Build MARBLE's geometry (graph, gauges, kernels, Laplacian) from a flow field.

    Why: the one entry point from point clouds to everything the network uses (§1 steps 2-4),
    sparse throughout and with MARBLE's defaults.

    Parameters
    ----------
    x : (N0, n) positions. v : (N0, s) vectors at the positions.
    condition : (N0,) labels (any sortable type) or None for one condition; codes follow the
        sorted unique labels.
    config : :class:`~marble_widgets.engine.config.GraphConfig` (default: the reference's
        settings); its fields may also be given as keywords (``k=10``), which override it:
        ``k, delta`` CkNN parameters (§4); ``spacing`` furthest-point covering radius as a
        fraction of each condition's diameter (0 keeps all samples, §3); ``local_gauges`` local
        PCA frames and connections (§5.3-5.4) instead of ambient axes, disabled with a warning
        when n <= 2 or s == 1, refused when s != n; ``var_explained, frac_geodesic_nb``
        manifold-dimension rule and neighbourhood size ``K = k * frac_geodesic_nb``; ``seed``
        furthest-point start (None: index 0; int: drawn from ``default_rng(seed)``).
    manifold_dim : optional fixed manifold dimension d (local gauges).
    verbose : show a progress bar over the stages.
    """
    c = replace(config or GraphConfig(), **settings)
    k, delta, spacing, seed = c.k, c.delta, c.spacing, c.seed
    xs = _as_float_2d("x", x)
    vs = _as_float_2d("v", v)
    if vs.shape[0] != xs.shape[0]:
        raise ValueError(
            f"v has {vs.shape[0]} rows but x has {xs.shape[0]}; pass one vector per position."
        )
    codes, labels = _condition_codes(condition, len(xs))
    local = _use_local_gauges(c.local_gauges, xs.shape[1], vs.shape[1])
    stages = ["subsample", "graph", "gauges", "kernels", "laplacian"]
    bar = tqdm(total=len(stages), disable=not verbose, desc="geometry")

    def _done(stage):
        bar.set_postfix_str(stage)
        bar.update(1)

    keep = _subsample(xs, codes, len(labels), k, spacing, seed, labels)
    pos, sig, cond = xs[keep], vs[keep], codes[keep]
    _done("subsample")
    edge_index = cknn_graph(pos, cond, k, delta, labels=list(labels))
    edge_weight = 1.0 / np.linalg.norm(pos[edge_index[1]] - pos[edge_index[0]], axis=1)
    _check_stage("graph", edge_weight)
    _done("graph")
    frames, n_dir, conn, d, curve = _gauge_stage(
        pos, cond, edge_index, local, k, c.frac_geodesic_nb, c.var_explained, manifold_dim
    )
    _check_stage("gauges", frames, conn)
    _done("gauges")
    values = kernel_values(pos, edge_index, frames if local else None)
    if local:
        kernels = block_kernels(pos, edge_index, frames, conn, values)
    else:
        kernels = directional_kernels(pos, edge_index, None, values)
    _check_stage("kernels", *kernels)
    _done("kernels")
    lap, degree = normalized_laplacian(edge_index, edge_weight, len(pos))
    if local:
        lap = connection_laplacian(edge_index, edge_weight, conn, len(pos))
    _check_stage("laplacian", lap, degree)
    _done("laplacian")
    bar.close()
    return Geometry(
        pos=pos, signal=sig, condition=cond, sample_index=keep.astype(np.int64),
        edge_index=edge_index, edge_weight=edge_weight, frames=frames, local_gauges=local,
        n_directions=int(n_dir), connections=conn, kernels=kernels, laplacian=lap,
        degree=degree, manifold_dim=d, explained_variance=curve, condition_labels=labels,
        kernel_weights=values[0],
    )
