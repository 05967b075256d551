"""The geometry MARBLE learns on: one frozen container and its builder (docs/spec.md §3-§7).

``build_geometry`` runs, per condition, subsampling -> CkNN graph, then gauges (identity or
local PCA frames + connections), directional kernels and the symmetric normalised Laplacian,
all sparse. The graph never joins two conditions, so each condition is built alone
(:func:`_condition_graph`, then :func:`_condition_operators`); the one step that needs them all is
the manifold dimension (:func:`_manifold_choice`). The joint arrays are allocated once from the
stage-1 counts (:class:`~marble_widgets.engine.assembly.JointLayout`) and each condition's operators
are copied into them as soon as they exist, then released, so the caller holds about the geometry
plus one condition, not the pieces and their concatenation. The per-condition stages run here one
after the other, or as dask tasks (threads, processes, any ``distributed.Client``) with the
identical result. The torch side reads only :class:`Geometry`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from marble_widgets.data.containers import check_condition_sizes
from marble_widgets.engine import gauges as _gauges
from marble_widgets.engine.assembly import JointLayout, piece_counts
from marble_widgets.engine.config import GraphConfig
from marble_widgets.engine.graph import cknn_graph, furthest_point_sampling
from marble_widgets.engine.kernels import block_kernels, directional_kernels, kernel_values
from marble_widgets.engine.runners import check_runner, on_finished
from marble_widgets.engine.laplacian import connection_laplacian, normalized_laplacian, weight_matrix


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


def _condition_graph(part: tuple[np.ndarray, np.ndarray], label, c: GraphConfig, local: bool) -> dict:
    """Stage 1 of one condition: subsample, CkNN graph, edge weights and (local) PCA spectra.

    Why: everything before the manifold-dimension choice depends on this condition alone.
    ``part`` is the condition's ``(x, v)``; node and edge indices are local to the condition.
    """
    x_c, v_c = part
    keep = furthest_point_sampling(x_c, c.spacing, c.seed)  # kept rows, input order (§3)
    pos, sig = x_c[keep], v_c[keep]
    zeros = np.zeros(len(pos), dtype=np.int64)
    edge_index = cknn_graph(pos, zeros, c.k, c.delta, labels=[label])
    edge_weight = 1.0 / np.linalg.norm(pos[edge_index[1]] - pos[edge_index[0]], axis=1)
    _check_stage("graph", edge_weight)
    piece = {"keep": keep.astype(np.int64), "pos": pos, "signal": sig, "edge_index": edge_index,
             "edge_weight": edge_weight}
    if local:
        n_nb = max(int(round(c.k * c.frac_geodesic_nb)), 1)
        piece["directions"], piece["sing"] = _gauges.local_pca(pos, _gauges.pca_neighbourhoods(pos, zeros, n_nb))
    return piece


def _manifold_choice(sings: list, var_explained: float, manifold_dim: int | None) -> tuple[int, np.ndarray]:
    """The one reduction over conditions: manifold dimension d and the explained-variance curve.

    Why: MARBLE shares d across conditions (§5.3), chosen from every node's spectrum at once.
    """
    sing = np.concatenate(sings)
    return _gauges.chosen_dimension(sing, var_explained, manifold_dim), _gauges.explained_variance_curve(sing)


def _condition_operators(piece: dict, d: int | None) -> dict:
    """Stage 2 of one condition: frames, connections, kernels, Laplacian (local indices).

    ``d`` is the shared manifold dimension (None: global gauge). Returns the stage-1 arrays
    the geometry keeps plus the operators; the PCA directions are dropped.
    """
    pos, edge_index, edge_weight = piece["pos"], piece["edge_index"], piece["edge_weight"]
    out = {key: piece[key] for key in ("keep", "pos", "signal", "edge_index", "edge_weight")}
    frames = conn = None
    if d is not None:
        frames = _gauges.truncated_frames(piece["directions"], piece["sing"], d)
        conn = _gauges.connections(frames, edge_index)
        _check_stage("gauges", frames, conn)
    values = kernel_values(pos, edge_index, frames)
    if d is not None:
        kernels = block_kernels(pos, edge_index, frames, conn, values)
        lap = connection_laplacian(edge_index, edge_weight, conn, len(pos))
        degree = np.asarray(weight_matrix(edge_index, edge_weight, len(pos)).sum(1)).ravel()
    else:
        kernels = directional_kernels(pos, edge_index, None, values)
        lap, degree = normalized_laplacian(edge_index, edge_weight, len(pos))
    _check_stage("kernels", *kernels)
    _check_stage("laplacian", lap, degree)
    out.update(frames=frames, connections=conn, kernels=kernels, laplacian=lap, degree=degree,
               kernel_weights=values[0])
    return out


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


def _geometry(layout: JointLayout, members: list[np.ndarray], local: bool, d: int | None, curve,
              labels: tuple) -> Geometry:
    """The :class:`Geometry` whose arrays the filled ``layout`` holds (no copy; global frames added)."""
    arrays = layout.arrays(members)
    dim = arrays["pos"].shape[1]
    if not local:
        arrays["frames"] = _gauges.global_frames(len(arrays["pos"]), dim)
    return Geometry(**arrays, local_gauges=local, n_directions=int(d if local else dim), manifold_dim=d,
                    explained_variance=curve, condition_labels=labels)


def _serial_layout(parts, labels, c: GraphConfig, local: bool, manifold_dim, verbose: bool):
    """Per-condition stages in this process, one condition after the other, each condition's
    operators copied into the joint layout as soon as they exist."""
    bar = tqdm(total=2 * len(parts) + 1, disable=not verbose, desc="geometry")
    stage1 = []
    for part, label in zip(parts, labels):
        stage1.append(_condition_graph(part, label, c, local))
        bar.update(1)
    d, curve = _manifold_choice([p["sing"] for p in stage1], c.var_explained, manifold_dim) if local else (None, None)
    layout = JointLayout([piece_counts(p) for p in stage1], d if local else 1)
    bar.update(1)
    for i in range(len(stage1)):
        layout.put(i, _condition_operators(stage1[i], d))
        stage1[i] = None  # this condition's stage-1 arrays: released
        bar.update(1)
    bar.close()
    return layout, d, curve


def _operators_into(piece: dict, d: int | None, layout: JointLayout, i: int) -> None:
    """Stage 2 of condition ``i`` written straight into ``layout`` (threads share this process's memory)."""
    layout.put(i, _condition_operators(piece, d))


def _run(fn, capture: bool, *args):
    """``fn(*args)`` and the warnings it raised (recorded when the task runs in another process).

    Why: a worker process's warnings never reach the caller; they are sent back and re-raised.
    Threads share the warning machinery (recording it there is not thread-safe): not captured.
    """
    if not capture:
        return fn(*args), []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args)
    return out, [(str(w.message), w.category) for w in caught]


def _run_after(fn, capture: bool, previous: tuple, *args):
    """:func:`_run` on ``previous``'s value, its recorded warnings kept first (stage 1's travel with stage 2)."""
    out, records = _run(fn, capture, previous[0], *args)
    return out, previous[1] + records


def _dask_layout(parts, labels, c: GraphConfig, local: bool, manifold_dim, client, scheduler, verbose: bool):
    """The same stages as :func:`_serial_layout` as one dask graph: C graph tasks, the dimension
    reduction over their spectra (local gauges), C operator tasks, whose pieces fill the joint layout
    (sized from the graph tasks' counts) one by one as they finish (``verbose``: a bar)."""
    import dask

    capture = client is not None or scheduler == "processes"
    task = dask.delayed(_run, pure=False)
    if client is not None:
        # the data goes to the workers once, not in the graph; hash=False: fresh keys per call, so the
        # release of an earlier call's futures for the same data cannot cancel this one ("lost dependencies")
        parts = client.scatter(list(parts), hash=False)
    stage1 = [task(_condition_graph, capture, part, label, c, local)
              for part, label in zip(parts, labels)]
    choice = (task(_manifold_choice, capture, [s[0]["sing"] for s in stage1], c.var_explained, manifold_dim)
              if local else None)
    d = choice[0][0] if local else None
    n_ticks = len(stage1) + local if client is not None else 2 * len(stage1) + local
    with tqdm(total=n_ticks, disable=not verbose, desc="geometry") as bar:
        if client is not None:
            layout, chosen, records = _from_client(client, stage1, choice, d, capture, bar)
        elif scheduler == "processes":
            layout, chosen, records = _from_processes(stage1, choice, d, bar)
        else:
            layout, chosen, records = _in_threads(stage1, choice, d, local, scheduler, bar)
    for message, category in records:
        warnings.warn(message, category, stacklevel=4)
    return (layout, *chosen) if local else (layout, None, None)


def _in_threads(stage1: list, choice, d, local: bool, scheduler: str, bar):
    """Local threads (or synchronous): the operator tasks copy their pieces into one shared layout."""
    import dask

    counts = [dask.delayed(piece_counts, pure=False)(s[0]) for s in stage1]
    layout = dask.delayed(JointLayout, pure=False)(counts, d if local else 1)
    stage2 = [dask.delayed(_run, pure=False)(_operators_into, False, s[0], d, layout, i)
              for i, s in enumerate(stage1)]
    keys = {t.key for t in [*stage1, *stage2, *([choice] if local else [])]}
    with on_finished(keys, lambda key: bar.update(1)):
        layout, chosen = dask.compute(layout, choice, *stage2, scheduler=scheduler)[:2]
    return layout, chosen[0] if local else None, []


def _from_processes(stage1: list, choice, d, bar):
    """Local processes: every piece comes back here at once; each is copied in, then released."""
    import dask

    stage2 = [dask.delayed(_run_after, pure=False)(_condition_operators, True, s, d) for s in stage1]
    graph = [*stage2, choice] if choice is not None else stage2
    with on_finished({t.key for t in [*stage1, *graph]}, lambda key: bar.update(1)):
        values = list(dask.compute(*graph, scheduler="processes"))
    chosen, last = values.pop() if choice is not None else (None, [])
    layout = JointLayout([piece_counts(v[0]) for v in values], chosen[0] if chosen else 1)
    records = []
    for i in range(len(values)):
        piece, found = values[i]
        values[i] = None
        layout.put(i, piece)
        records += found
    return layout, chosen, records + last


def _from_client(client, stage1: list, choice, d, capture: bool, bar):
    """A ``distributed.Client``: the small counts and the dimension first, then each operator piece
    fetched as it finishes, copied in and released (the caller never holds two pieces at once)."""
    import dask
    from distributed import as_completed

    stage2 = [dask.delayed(_run_after, pure=False)(_condition_operators, capture, s, d) for s in stage1]
    counts = [dask.delayed(piece_counts, pure=False)(s[0]) for s in stage1]
    futures = client.compute([*stage2, *counts, *([choice] if choice is not None else [])])
    pending, small = futures[:len(stage2)], client.gather(futures[len(stage2):])
    del futures
    records: list = [[] for _ in range(len(stage2) + 1)]
    chosen = None
    if choice is not None:
        chosen, records[-1] = small.pop()
        bar.update(1)
    layout = JointLayout(small, chosen[0] if chosen else 1)
    index = {f.key: i for i, f in enumerate(pending)}
    for future in as_completed(pending):
        i = index[future.key]
        piece, records[i] = future.result()
        pending[i] = None
        future.release()
        layout.put(i, piece)
        del piece
        bar.update(1)
    return layout, chosen, [r for found in records for r in found]


def build_geometry(
    x,
    v,
    condition=None,
    config: GraphConfig | None = None,
    *,
    manifold_dim: int | None = None,
    verbose: bool = False,
    client=None,
    scheduler: str | None = None,
    **settings,
) -> Geometry:
    """Build MARBLE's geometry (graph, gauges, kernels, Laplacian) from a flow field.

    Why: the one entry point from point clouds to everything the network uses (§1 steps 2-4),
    sparse throughout and with MARBLE's defaults. The graph never joins two conditions, so each
    condition is built alone (subsample -> CkNN graph -> PCA spectra; then frames, connections,
    kernels, Laplacian); only the manifold dimension is chosen from all conditions' spectra
    together, and the blocks are stacked block-diagonally (node order: conditions, then input).

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
    verbose : show a progress bar over the stages (on every runner).
    client, scheduler : where the per-condition stages run. Both None: here, one condition after
        the other. ``scheduler="threads" | "processes" | "synchronous"``: dask's local scheduler;
        ``client``: any ``dask.distributed.Client`` (LocalCluster, SLURM ...). Every runner
        gives the identical geometry; warnings raised in worker processes are re-raised here.
        Memory: serially, on threads and on a client each condition's operators are copied into
        the joint arrays as they finish, so this process peaks near the geometry's own size
        (about 1.2x: the stage-1 graphs are kept until their operators are built); with
        ``scheduler="processes"`` dask hands every condition's operators back at once (about 2x).
    """
    check_runner(client, scheduler)
    c = replace(config or GraphConfig(), **settings)
    xs = _as_float_2d("x", x)
    vs = _as_float_2d("v", v)
    if vs.shape[0] != xs.shape[0]:
        raise ValueError(
            f"v has {vs.shape[0]} rows but x has {xs.shape[0]}; pass one vector per position."
        )
    if not isinstance(c.k, (int, np.integer)) or c.k < 1:
        raise ValueError(f"k must be a positive integer, got {c.k!r}.")
    codes, labels = _condition_codes(condition, len(xs))
    local = _use_local_gauges(c.local_gauges, xs.shape[1], vs.shape[1])
    check_condition_sizes(np.asarray(labels)[codes], c.k)
    order = np.argsort(codes, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(codes, minlength=len(labels)))[:-1])
    parts = [(xs[m], vs[m]) for m in members]
    del xs, vs
    if client is None and scheduler is None:
        layout, d, curve = _serial_layout(parts, labels, c, local, manifold_dim, verbose)
    else:
        layout, d, curve = _dask_layout(parts, labels, c, local, manifold_dim, client, scheduler, verbose)
    del parts
    return _geometry(layout, members, local, d, curve, labels)
