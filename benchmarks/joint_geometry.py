"""Joint geometry of many sessions, built condition by condition: serial vs dask threads vs a LocalCluster.

Issue 15's target: the geometry of a 10^6-point joint flow field (20 sessions x 5x10^4 points) in
< 2 min on 2 cores with < 4 GB peak per worker, and the scaling curve over 10^4 .. 10^6 points.

Data: 20 synthetic sessions, each one condition: a planar field of the package (vortex_left,
vortex_right, rotation, saddle in turn) on its own seeded uniform points, lifted to a paraboloid
of its own curvature (``paraboloid_field``, alpha 0.1 .. 0.48), stacked by ``joint_flow_field``
(``combine_flow_fields``); MARBLE's defaults (k=20) with local gauges (PCA frames, the shared
manifold dimension chosen over all sessions, connections, block kernels, connection Laplacian).

Each (N, runner) point runs in a fresh process so that its peak RSS is its own: ``serial``
(``build_geometry`` in-process), ``threads`` (dask's threaded scheduler, 2 threads) and
``cluster`` (``LocalCluster(n_workers=2, threads_per_worker=1)``; its start-up, including the
workers' first import of the engine, is timed apart).
Peak memory: ``ru_maxrss`` of the calling process ("parent"; ``parent_before_mb``: its RSS just
before the build, ``parent_build_over_geometry`` = (peak - before) / the returned geometry's MB, all its arrays
and sparse matrices, listed array by array in ``geometry_arrays_mb``) and of each worker process. CPU
seconds (``cpu_s`` of the caller, ``workers_cpu_s`` summed over the workers) do not depend on the
machine's load the way wall seconds do (the 2 cores are shared with other jobs: see
``load_average``). Every runner's geometry is hashed (all arrays and sparse matrices) to show
they are identical.

Run: ``OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/joint_geometry.py``
(``--sizes 10000 30000`` / ``--runners serial cluster`` to run a subset; results are merged into
``benchmarks/results/joint_geometry.json``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, print_table, write_json  # noqa: E402

SIZES = (10_000, 30_000, 100_000, 300_000, 1_000_000)
RUNNERS = ("serial", "threads", "cluster")
N_SESSIONS = 20
TRAIN_EPOCHS = 1
#: the training table lifts the 3-D sessions into R^LIFT_DIM by a seeded random isometry, so that
#: order-2 features are wide (E = 10 (1 + 10 + 100) = 1110): 3x10^5 nodes exceed the in-memory cap
LIFT_DIM = 10
#: chunk cache of the store in the training table
TRAIN_CACHE_BYTES = 2 * 1024**3
PLANAR = ("vortex_left", "vortex_right", "rotation", "saddle")
ROOT = Path(__file__).resolve().parents[1]


def joint_field(n_total: int, n_sessions: int = N_SESSIONS, seed: int = 0):
    """The synthetic joint flow field: ``n_sessions`` lifted planar fields of ``n_total / n_sessions`` points."""
    from marble_widgets.data.synthetic import paraboloid_field
    from marble_widgets.sessions import joint_flow_field

    n = n_total // n_sessions
    fields = {f"s{i:02d}": paraboloid_field(PLANAR[i % len(PLANAR)], alpha=0.1 + 0.02 * i, n=n, seed=seed + i)
              for i in range(n_sessions)}
    return joint_flow_field(fields)


def digest(geometry) -> str:
    """A hash of every array and sparse matrix of a geometry (equal hashes: identical geometries)."""
    h = hashlib.blake2b(digest_size=12)
    for name in ("pos", "signal", "condition", "sample_index", "edge_index", "edge_weight", "frames",
                 "connections", "degree", "kernel_weights"):
        arr = getattr(geometry, name)
        if arr is not None:
            h.update(np.ascontiguousarray(arr))  # the buffer, no copy
    for m in [*geometry.kernels, geometry.laplacian]:
        for arr in (m.indptr, m.indices, m.data):
            h.update(np.ascontiguousarray(arr))
    return h.hexdigest()


def geometry_mb(geometry) -> dict[str, float]:
    """MB of each array of a geometry (sparse matrices: data + indices + indptr) and their total."""
    out = {}
    for name in ("pos", "signal", "condition", "sample_index", "edge_index", "edge_weight", "frames",
                 "connections", "degree", "kernel_weights"):
        arr = getattr(geometry, name)
        out[name] = 0.0 if arr is None else arr.nbytes / 2**20
    for name, m in [*((f"kernels[{i}]", k) for i, k in enumerate(geometry.kernels)), ("laplacian", geometry.laplacian)]:
        out[name] = (m.data.nbytes + m.indices.nbytes + m.indptr.nbytes) / 2**20
    out["total"] = sum(out.values())
    return out


def _import_engine() -> None:
    import marble_widgets.engine.geometry  # noqa: F401


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_one(n_total: int, runner: str) -> dict:
    """Build the joint geometry of ``n_total`` points with ``runner``; seconds, peaks and hash."""
    from marble_widgets.engine.geometry import build_geometry

    warnings.simplefilter("ignore")
    ff = joint_field(n_total)
    x, v, cond = ff["x"].values, ff["v"].values, ff["condition"].values
    del ff
    row = {"n_points": int(len(x)), "runner": runner}
    client = cluster = None
    kw = {}
    if runner == "threads":
        kw = {"scheduler": "threads"}
    elif runner == "cluster":
        import distributed

        t0 = time.perf_counter()
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=50)
        client = distributed.Client(cluster)
        client.run(_import_engine)  # one-off cost of a fresh cluster: counted in its start-up
        row["cluster_start_s"] = time.perf_counter() - t0
        kw = {"client": client}
    workers_cpu = sum(client.run(_cpu_s).values()) if client is not None else 0.0
    import psutil

    row["parent_before_mb"] = psutil.Process().memory_info().rss / 2**20  # imports, the input (, the client)
    t0, cpu0 = time.perf_counter(), _cpu_s()
    g = build_geometry(x, v, cond, local_gauges=True, **kw)
    row["seconds"] = time.perf_counter() - t0
    row["cpu_s"] = _cpu_s() - cpu0  # the caller's CPU time (all its threads)
    row.update(n_nodes=g.n_nodes, n_edges=int(g.edge_index.shape[1]), manifold_dim=g.manifold_dim,
               n_conditions=g.n_conditions, parent_peak_mb=_peak_rss_mb())
    sizes = geometry_mb(g)
    row.update(geometry_mb=sizes["total"], geometry_arrays_mb=sizes)
    row["parent_build_over_geometry"] = (row["parent_peak_mb"] - row["parent_before_mb"]) / sizes["total"]
    if client is not None:
        row["worker_peak_mb"] = max(client.run(_peak_rss_mb).values())
        row["workers_cpu_s"] = sum(client.run(_cpu_s).values()) - workers_cpu
        client.close()
        cluster.close()
    row["digest"] = digest(g)
    return row


class _RssPeak:
    """Peak RSS of this process sampled every 10 ms in a thread (psutil), from the moment it starts."""

    def __init__(self) -> None:
        import threading

        import psutil

        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def above_base_mb(self) -> float:
        self.stop.set()
        self.thread.join()
        return (self.peak - self.base) / 2**20


def train_one(n_total: int, source_kind: str) -> dict:
    """Joint training from RAM or from the zarr store: feature seconds, seconds per epoch, memory above
    the geometry's (sampled RSS), and a hash of the trained weights (equal hashes: same model)."""
    import tempfile

    import torch

    from marble_widgets.engine.config import FeatureConfig
    from marble_widgets.engine.feature_store import StoredFeatures, feature_width, open_or_write
    from marble_widgets.engine.geometry import build_geometry
    from marble_widgets.engine.network import MarbleNetwork, NetworkSpec, build_feature_source
    from marble_widgets.engine.training import train_network

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    ff = joint_field(n_total)
    lift = np.linalg.qr(np.random.default_rng(0).normal(size=(LIFT_DIM, LIFT_DIM)))[0][:3]  # (3, 10) isometry
    g = build_geometry(ff["x"].values @ lift, ff["v"].values @ lift, ff["condition"].values, local_gauges=False)
    del ff
    config = FeatureConfig(diffusion=False, order=2)
    folder = tempfile.mkdtemp(prefix="joint-bench-")
    row = {"n_points": int(g.n_nodes), "source": source_kind, "n_features": feature_width(g, config)}
    rss = _RssPeak()
    t0 = time.perf_counter()
    try:
        if source_kind == "store":
            source = StoredFeatures(open_or_write(Path(folder) / "f.zarr", g, config), cache_bytes=TRAIN_CACHE_BYTES)
        else:
            source = build_feature_source(g, config)
    except ValueError as err:  # the in-memory path refuses features above its cap
        rss.above_base_mb()
        return {**row, "refused": str(err).split(";")[0].split(", above")[0]}
    features_s = time.perf_counter() - t0
    torch.manual_seed(0)
    net = MarbleNetwork(NetworkSpec.for_geometry(g, config, hidden_channels=(32,), out_dim=3))
    result = train_network(net, source, g.edge_index, g.n_nodes, epochs=TRAIN_EPOCHS, batch_size=512,
                           selection="last", patience=None, verbose=False)
    seconds = time.perf_counter() - t0 - features_s
    h = hashlib.blake2b(digest_size=12)
    for value in net.state_dict().values():
        h.update(value.numpy().tobytes())
    shutil.rmtree(folder, ignore_errors=True)
    return {**row, "features_s": features_s, "seconds_per_epoch": seconds / len(result.history["train_loss"]),
            "memory_above_geometry_mb": rss.above_base_mb(), "weights": h.hexdigest(),
            "chunk_reads": getattr(source, "chunk_reads", None)}


def _child(n_total: int, runner: str, flag: str = "--one") -> dict:
    """``run_one`` (or ``train_one`` with ``flag="--train-one"``) in a fresh interpreter (its own peak RSS)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, flag, str(n_total), runner], capture_output=True,
                         text=True, env=env, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{runner} at N={n_total} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def training_table(sizes: list[int]) -> None:
    """Second table: joint training from RAM vs from the feature store (merged into the JSON)."""
    rows = [_child(n, kind, "--train-one") for n in sizes for kind in ("ram", "store")]
    path = RESULTS / "joint_geometry.json"
    payload = json.loads(path.read_text()) if path.exists() else {}
    new = {(r["n_points"], r["source"]) for r in rows}
    rows = sorted([r for r in payload.get("training", []) if (r["n_points"], r["source"]) not in new] + rows,
                  key=lambda r: (r["n_points"], r["source"]))
    for n in {r["n_points"] for r in rows}:
        same = {r.get("weights") for r in rows if r["n_points"] == n}
        for r in rows:
            if r["n_points"] == n and "weights" in r:
                r["same_weights_as_ram"] = len(same) == 1 if None not in same else None
    print_table(rows, ["n_points", "source", "n_features", "features_s", "seconds_per_epoch",
                       "memory_above_geometry_mb", "chunk_reads", "same_weights_as_ram", "refused"])
    payload.update(training=rows, training_setup=(
        f"sessions lifted to R^{LIFT_DIM} by a seeded random isometry; global gauge, order 2 (E = 1110), "
        f"diffusion=False, hidden (32,), batch_size 512, {TRAIN_EPOCHS} epoch(s), selection='last'; store: "
        f"chunk cache {TRAIN_CACHE_BYTES / 2**30:.0f} GiB; memory: RSS sampled every 10 ms above the RSS with "
        "the geometry built (includes importing torch_geometric/zarr, ~70 MB)"),
        training_command="OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 10 .venv/bin/python "
                         "benchmarks/joint_geometry.py --training --sizes " + " ".join(map(str, sizes)))
    write_json("joint_geometry", payload)


def slopes(rows: list[dict], cpu: bool = False) -> dict[str, float]:
    """Log-log slope of wall seconds (or, ``cpu=True``, CPU seconds of caller + workers) vs points per
    runner (least squares over the sizes run)."""
    out = {}
    for runner in RUNNERS:
        pts = sorted((r["n_points"], r["cpu_s"] + r.get("workers_cpu_s", 0.0) if cpu else r["seconds"])
                     for r in rows if r["runner"] == runner)
        if len(pts) >= 2:
            n, t = np.log(np.array(pts)).T
            out[runner] = float(np.polyfit(n, t, 1)[0])
    return out


def _merge(rows: list[dict]) -> list[dict]:
    """Rows of this run replace the stored rows of the same (N, runner)."""
    path = RESULTS / "joint_geometry.json"
    old = json.loads(path.read_text()).get("geometry", []) if path.exists() else []
    new = {(r["n_points"], r["runner"]) for r in rows}
    kept = [r for r in old if (r["n_points"], r["runner"]) not in new]
    return sorted(kept + rows, key=lambda r: (r["n_points"], RUNNERS.index(r["runner"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--runners", nargs="+", default=list(RUNNERS), choices=RUNNERS)
    parser.add_argument("--training", action="store_true", help="the training table (RAM vs feature store)")
    parser.add_argument("--summarise", action="store_true", help="reprint the stored table and slopes, run nothing")
    parser.add_argument("--one", nargs=2, metavar=("N", "RUNNER"), help=argparse.SUPPRESS)
    parser.add_argument("--train-one", nargs=2, metavar=("N", "SOURCE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(int(args.one[0]), args.one[1])))
        return
    if args.train_one:
        print(json.dumps(train_one(int(args.train_one[0]), args.train_one[1])))
        return
    if args.training:
        training_table(args.sizes)
        return
    rows = []
    for n in args.sizes if not args.summarise else []:
        for runner in args.runners:
            row = _child(n, runner)
            print(f"N={n:>9,} {runner:<8} {row['seconds']:7.1f} s  parent {row['parent_peak_mb']:7.0f} MB"
                  + (f"  worker {row['worker_peak_mb']:6.0f} MB" if "worker_peak_mb" in row else ""), flush=True)
            rows.append(row)
    rows = _merge(rows)
    for n in sorted({r["n_points"] for r in rows}):
        same = {r["digest"] for r in rows if r["n_points"] == n}
        for r in rows:
            if r["n_points"] == n:
                r["identical_to_serial"] = len(same) == 1
    print()
    print_table(rows, ["n_points", "runner", "seconds", "cpu_s", "workers_cpu_s", "cluster_start_s",
                       "parent_before_mb", "parent_peak_mb", "geometry_mb", "parent_build_over_geometry",
                       "worker_peak_mb", "n_edges", "identical_to_serial"])
    slope, slope_cpu = slopes(rows), slopes(rows, cpu=True)
    print("\nlog-log slope of wall seconds vs N:", {k: round(v, 2) for k, v in slope.items()})
    print("log-log slope of CPU seconds vs N:", {k: round(v, 2) for k, v in slope_cpu.items()})
    payload = {
        "command": "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/joint_geometry.py",
        "data": f"{N_SESSIONS} sessions x N/{N_SESSIONS} points: planar fields {PLANAR} lifted to paraboloids "
                "(alpha 0.1..0.48), one condition per session; k=20, local gauges",
        "targets": {"seconds_at_1e6": 120, "worker_peak_mb": 4096},
        "geometry": rows, "loglog_slope": slope, "loglog_slope_cpu": slope_cpu,
    }
    if not args.summarise:
        payload["load_average_end"] = os.getloadavg()
    path = RESULTS / "joint_geometry.json"
    if path.exists():
        payload = {**json.loads(path.read_text()), **payload}
    write_json("joint_geometry", payload)


if __name__ == "__main__":
    main()
