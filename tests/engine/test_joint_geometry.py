"""The joint geometry built condition by condition: serial, dask's local schedulers and a cluster give
the geometry a single global build gives, array for array (docs/spec.md §1-§7, issue 15)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from marble_widgets.engine import gauges
from marble_widgets.engine.assembly import BlockDiagonal, JointLayout, piece_counts
from marble_widgets.engine.config import GraphConfig
from marble_widgets.engine.geometry import (Geometry, _condition_graph, _condition_operators,
                                            _geometry, _manifold_choice, build_geometry)
from marble_widgets.engine.graph import cknn_graph, furthest_point_sampling
from marble_widgets.engine.kernels import block_kernels, directional_kernels, kernel_values
from marble_widgets.engine.laplacian import connection_laplacian, normalized_laplacian

K = 8


def _block_diag_csr(blocks: list) -> sp.csr_matrix:
    """Block-diagonal CSR of square CSR blocks filled with the engine's BlockDiagonal, block by block."""
    out = BlockDiagonal([b.shape[0] for b in blocks], [b.nnz for b in blocks])
    for c, block in enumerate(blocks):
        out.put(c, block)
    return out.matrix()


def _field(seed: int = 0, sizes=(90, 140, 110)):
    """Noisy patches of a sphere in R^3 (a 2-D manifold), conditions interleaved in the input."""
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    labels = np.repeat(np.array(["s2/b", "s1/a", "s1/c"]), sizes)
    labels = labels[rng.permutation(n)]
    ang = rng.uniform(0, np.pi / 2, (n, 2))
    x = np.c_[np.cos(ang[:, 0]) * np.sin(ang[:, 1]), np.sin(ang[:, 0]) * np.sin(ang[:, 1]), np.cos(ang[:, 1])]
    x += 0.01 * rng.normal(size=x.shape)
    v = np.cross(x, [0.0, 0.0, 1.0]) + 0.05 * rng.normal(size=x.shape)
    return x, v, labels


def _global_build(x, v, labels, local: bool, spacing: float) -> dict:
    """The geometry built on all nodes at once (one graph call, one frame call ...), as before issue 15."""
    uniq, codes = np.unique(labels, return_inverse=True)
    keep = np.concatenate([np.flatnonzero(codes == c)[furthest_point_sampling(x[codes == c], spacing, 0)]
                           for c in range(len(uniq))])
    pos, cond = x[keep], codes[keep]
    ei = cknn_graph(pos, cond, K, 1.0)
    ew = 1.0 / np.linalg.norm(pos[ei[1]] - pos[ei[0]], axis=1)
    lap, degree = normalized_laplacian(ei, ew, len(pos))
    out = dict(pos=pos, signal=v[keep], condition=cond, sample_index=keep, edge_index=ei, edge_weight=ew,
               degree=degree, local_gauges=local, condition_labels=tuple(uniq.tolist()))
    if not local:
        values = kernel_values(pos, ei, None)
        return {**out, "kernels": directional_kernels(pos, ei, None, values), "laplacian": lap,
                "frames": gauges.global_frames(len(pos), 3), "kernel_weights": values[0], "n_directions": 3,
                "connections": None, "manifold_dim": None, "explained_variance": None}
    frames, d, curve = gauges.local_frames(pos, cond, int(round(K * 1.5)), 0.9)
    conn = gauges.connections(frames, ei)
    values = kernel_values(pos, ei, frames)
    return {**out, "frames": frames, "connections": conn, "n_directions": d, "manifold_dim": d,
            "explained_variance": curve, "kernels": block_kernels(pos, ei, frames, conn, values),
            "laplacian": connection_laplacian(ei, ew, conn, len(pos)), "kernel_weights": values[0]}


def _assert_same_csr(a, b):
    assert a.shape == b.shape
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def _assert_identical(g: Geometry, ref: dict | Geometry) -> None:
    """Every field equal bit for bit (same node order, same sparse arrays)."""
    get = ref.get if isinstance(ref, dict) else lambda name, default=None: getattr(ref, name)
    for name in Geometry.__dataclass_fields__:
        want = get(name, getattr(g, name))
        got = getattr(g, name)
        if name == "kernels":
            assert len(got) == len(want)
            for a, b in zip(got, want):
                _assert_same_csr(a, b)
        elif sp.issparse(got):
            _assert_same_csr(got, want)
        elif isinstance(got, np.ndarray):
            assert got.dtype == np.asarray(want).dtype, name
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            assert got == want, name


@pytest.mark.parametrize("local,spacing", [(False, 0.0), (True, 0.0), (True, 0.05)])
def test_condition_by_condition_equals_one_global_build(local, spacing):
    x, v, labels = _field()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _global_build(x, v, labels, local, spacing)
        g = build_geometry(x, v, labels, k=K, local_gauges=local, spacing=spacing)
    _assert_identical(g, ref)
    assert g.condition_labels == ("s1/a", "s1/c", "s2/b")
    assert g.n_directions == (2 if local else 3)
    assert not np.any(g.condition[g.edge_index[0]] != g.condition[g.edge_index[1]])


@pytest.mark.parametrize("scheduler", ["threads", "processes", "synchronous"])
@pytest.mark.parametrize("local", [False, True])
def test_dask_schedulers_give_the_serial_geometry(scheduler, local):
    x, v, labels = _field(seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = build_geometry(x, v, labels, k=K, local_gauges=local, spacing=0.02)
        on_dask = build_geometry(x, v, labels, k=K, local_gauges=local, spacing=0.02, scheduler=scheduler)
    _assert_identical(on_dask, serial)


@pytest.mark.parametrize("scheduler, local, ticks", [(None, True, 7), ("threads", True, 7), ("synchronous", False, 6)])
def test_verbose_shows_one_bar_over_the_stages_on_every_runner(scheduler, local, ticks, capsys):
    x, v, labels = _field(seed=1)  # 3 conditions: 3 graph tasks, the dimension choice (local gauges), 3 operators
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_geometry(x, v, labels, k=K, local_gauges=local, scheduler=scheduler, verbose=True)
    err = capsys.readouterr().err
    assert "geometry: 100%" in err and f"| {ticks}/{ticks} [" in err


def test_fixed_manifold_dim_is_shared_and_checked():
    x, v, labels = _field(seed=2)
    g = build_geometry(x, v, labels, k=K, local_gauges=True, manifold_dim=1, scheduler="threads")
    assert g.n_directions == 1 and g.frames.shape == (len(x), 3, 1) and g.kernels[0].shape == (len(x), len(x))
    with pytest.raises(ValueError, match="manifold_dim must be between 1 and 3"):
        build_geometry(x, v, labels, k=K, local_gauges=True, manifold_dim=4)


def test_warnings_from_worker_processes_reach_the_caller():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 2))
    x[:30, 1] = 0.0  # condition "flat": constant second coordinate, zero derivative along it
    labels = np.array(["flat"] * 30 + ["round"] * 30)
    with pytest.warns(UserWarning, match="30 node\\(s\\) have a direction along which all neighbours"):
        build_geometry(x, x, labels, k=5, scheduler="processes")


def test_bad_runner_arguments_are_named():
    x, v, labels = _field()
    with pytest.raises(ValueError, match="scheduler must be one of"):
        build_geometry(x, v, labels, k=K, scheduler="gpu")
    with pytest.raises(ValueError, match="either client= .* or scheduler="):
        build_geometry(x, v, labels, k=K, scheduler="threads", client=object())
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client"):
        build_geometry(x, v, labels, k=K, client="localhost:8786")


def test_block_diagonal_assembly_keeps_explicit_zeros_and_orders_rows():
    a = sp.csr_matrix((np.array([1.0, 0.0, 2.0]), np.array([0, 1, 1]), np.array([0, 2, 3])), shape=(2, 2))
    b = sp.csr_matrix(np.array([[0.0, 3.0, 0.0], [4.0, 0.0, 5.0], [0.0, 0.0, 6.0]]))
    out = _block_diag_csr([a, b])
    np.testing.assert_array_equal(out.toarray(), sp.block_diag([a, b]).toarray())
    np.testing.assert_array_equal(out.indptr, [0, 2, 3, 4, 6, 7])
    np.testing.assert_array_equal(out.indices, [0, 1, 1, 3, 2, 4, 4])
    np.testing.assert_array_equal(out.data, [1.0, 0.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # the stored 0 stays


@pytest.mark.slow
def test_a_local_cluster_gives_the_serial_geometry(capsys):
    distributed = pytest.importorskip("distributed")
    x, v, labels = _field(seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = build_geometry(x, v, labels, k=K, local_gauges=True)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            on_cluster = build_geometry(x, v, labels, k=K, local_gauges=True, client=client, verbose=True)
            global_gauge = build_geometry(x, v, labels, k=K, client=client)
    _assert_identical(on_cluster, serial)
    _assert_identical(global_gauge, build_geometry(x, v, labels, k=K))
    assert "| 4/4 [" in capsys.readouterr().err  # on a client: the 3 operator tasks and the dimension choice


def _stage2_pieces(x, v, labels, local: bool):
    """Each condition's stage-2 piece as ``build_geometry`` makes them, with its members and choice."""
    config = GraphConfig(k=K, local_gauges=local, spacing=0.02)
    uniq, codes = np.unique(labels, return_inverse=True)
    members = [np.flatnonzero(codes == c) for c in range(len(uniq))]
    stage1 = [_condition_graph((x[m], v[m]), lab, config, local) for m, lab in zip(members, uniq)]
    d, curve = _manifold_choice([p["sing"] for p in stage1], config.var_explained, None) if local else (None, None)
    return [_condition_operators(p, d) for p in stage1], members, d, curve, tuple(uniq.tolist())


def _piece_bytes(piece: dict) -> int:
    arrays = [a for a in piece.values() if isinstance(a, np.ndarray)]
    for m in [*piece["kernels"], piece["laplacian"]]:
        arrays += [m.data, m.indices, m.indptr]
    return sum(a.nbytes for a in arrays)


@pytest.mark.parametrize("local", [False, True])
def test_pieces_filled_in_any_order_give_the_built_geometry_in_the_layouts_own_arrays(local):
    x, v, labels = _field(seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pieces, members, d, curve, uniq = _stage2_pieces(x, v, labels, local)
        want = build_geometry(x, v, labels, k=K, local_gauges=local, spacing=0.02)
    layout = JointLayout([piece_counts(p) for p in pieces], d if local else 1)
    for i in (2, 0, 1):  # a cluster hands pieces back in the order they finish
        layout.put(i, pieces[i])
    g = _geometry(layout, members, local, d, curve, uniq)
    _assert_identical(g, want)
    assert pieces == [{}, {}, {}]  # each piece handed over whole: nothing of it kept twice
    assert g.edge_index is layout.edge_index.out and g.pos is layout.nodes["pos"].out  # no copy at the end
    assert np.shares_memory(g.laplacian.data, layout.laplacian.data)
    assert np.shares_memory(g.kernels[-1].indices, layout.kernels[-1].indices)


def test_block_diagonal_squeezes_unused_capacity_and_keeps_explicit_zeros():
    a = sp.csr_matrix((np.array([1.0, 0.0, 2.0]), np.array([0, 1, 1]), np.array([0, 2, 3])), shape=(2, 2))
    b = sp.csr_matrix(np.array([[0.0, 3.0, 0.0], [4.0, 0.0, 5.0], [0.0, 0.0, 6.0]]))
    c = sp.csr_matrix((1, 1))  # an isolated node of a normalised Laplacian: no entry at all
    out = BlockDiagonal([2, 1, 3], [5, 1, 4])  # upper bounds, as the layout sizes them
    for i, m in ((2, b), (0, a), (1, c)):
        out.put(i, m)
    got = out.matrix()
    np.testing.assert_array_equal(got.indptr, [0, 2, 3, 3, 4, 6, 7])
    np.testing.assert_array_equal(got.indices, [0, 1, 1, 4, 3, 5, 5])
    np.testing.assert_array_equal(got.data, [1.0, 0.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert got.indices.dtype == np.int32 and got.shape == (6, 6)
    np.testing.assert_array_equal(out.matrix().indptr, got.indptr)  # asking again moves nothing
    with pytest.raises(RuntimeError, match="block 0 of shape \\(2, 2\\) with 3 entries does not fit"):
        BlockDiagonal([2], [2]).put(0, a)


def test_assembly_holds_the_geometry_and_one_piece_never_every_piece_twice():
    """The caller's memory (issue 15): pieces arriving one by one are copied into arrays allocated once,
    so the traced peak stays below geometry + two pieces; concatenating them at the end needs about
    twice the geometry (checked below, so the bound can fail)."""
    import copy
    import tracemalloc

    x, v, labels = _field(seed=6, sizes=(400, 400, 400))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pieces, members, d, curve, uniq = _stage2_pieces(x, v, labels, True)
    slots = [i % 3 for i in range(9)]  # 9 conditions: copies of the 3 pieces
    piece_max = max(_piece_bytes(p) for p in pieces)
    total = sum(_piece_bytes(pieces[s]) for s in slots)
    counts = [piece_counts(pieces[s]) for s in slots]

    def arriving():
        for s in slots:
            yield copy.deepcopy(pieces[s])  # freshly allocated, like a piece off the wire

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        layout = JointLayout(counts, d)
        for i, piece in enumerate(arriving()):
            layout.put(i, piece)
            del piece
        g = _geometry(layout, [members[s] for s in slots], True, d, curve, tuple(range(9)))
        streamed = tracemalloc.get_traced_memory()[1] - base
        del layout, g
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        held = list(arriving())
        stacked = [np.concatenate([p[key] for p in held]) for key in ("pos", "connections", "kernel_weights")]
        stacked += [_block_diag_csr([p["laplacian"] for p in held])]
        stacked += [_block_diag_csr([p["kernels"][c] for p in held]) for c in range(d)]
        concatenated = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert streamed < total + 2 * piece_max + 2**20, (streamed, total, piece_max)
    assert concatenated > total + 2 * piece_max + 2**20  # the bound tells the two apart


def test_pieces_put_from_threads_at_once_are_all_kept(monkeypatch):
    """dask threads copy their pieces into one layout at the same time: the first-part allocation
    must happen once (made slow here so that every thread reaches it together), or parts are lost."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from marble_widgets.engine import assembly

    x, v, labels = _field(seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pieces, members, d, curve, uniq = _stage2_pieces(x, v, labels, True)
        want = build_geometry(x, v, labels, k=K, local_gauges=True, spacing=0.02)
    slow = assembly.StackedArray._allocate
    monkeypatch.setattr(assembly.StackedArray, "_allocate", lambda self, part: time.sleep(0.05) or slow(self, part))
    layout = JointLayout([piece_counts(p) for p in pieces], d)
    start = threading.Barrier(len(pieces))

    def put(i: int) -> None:
        start.wait()
        layout.put(i, pieces[i])

    with ThreadPoolExecutor(len(pieces)) as pool:
        list(pool.map(put, range(len(pieces))))
    _assert_identical(_geometry(layout, members, True, d, curve, uniq), want)


@pytest.mark.parametrize("scheduler", [None, "processes"])
def test_graph_warnings_of_worker_processes_reach_the_caller(scheduler):
    rng = np.random.default_rng(8)
    x = np.r_[rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 50.0, rng.normal(size=(60, 2))]
    labels = np.array(["a"] * 60 + ["b"] * 60)  # "a": two far clusters, so its graph falls apart
    with pytest.warns(UserWarning, match="graph of condition 'a' has [0-9]+ connected components"):
        build_geometry(x, x, labels, k=5, scheduler=scheduler)
