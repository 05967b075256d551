"""Engine scaling: construction time/memory vs N, dense-baseline speed-up, training speed, rat fit.

Acceptance (issue): construction time and peak memory at N = 1e3, 4e3, 8,192, 3e4, 1e5 points
(5-D, k=20, order 2, local gauges) and the log-log slope; targets 1e5 points < 60 s and < 4 GB
on 2 cores, slope <= 1.2. Training seconds per epoch at the same sizes (``MARBLE.fit``, measured
with its epoch callback; stage seconds from ``MARBLE.timings_``); full fit of the rat
Buddy flow field < 60 s on CPU. Speed-up over a naive dense construction
(``benchmarks/dense_baseline.py``, same data, same process) at 2k, 4k, 8,192 points: >= 50x.

Data: a seeded smooth 3-D manifold in R^5 (graph of a smooth height function over the unit cube,
randomly rotated) with a smooth tangent vector field (pushforward of a field on the cube).
Construction = ``build_geometry`` + ``derivative_features`` to order 2 (what ``fit`` does before
training when diffusion is off). Every measurement runs in a fresh subprocess, so each peak RSS
(``ru_maxrss``) is its own; the RSS after imports + a tiny warm-up is reported as the baseline.

Usage: python benchmarks/engine_scaling.py [--quick] [--sizes N ...] [--dense-sizes N ...]
       [--dense-eigh-max N] [--skip-construct] [--skip-dense] [--skip-train] [--skip-buddy]
       [--merge] [--no-json]
``--merge`` keeps the rows of results/engine_scaling.json that this run does not redo, e.g.
rerun only the dense comparison at 8,192 points: ``--merge --skip-construct --skip-train
--skip-buddy --dense-sizes 8192``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table, write_json  # noqa: E402

SIZES = [1_000, 4_000, 8_192, 30_000, 100_000]
DENSE_SIZES = [2_048, 4_096, 8_192]
GEOMETRY = dict(k=20, delta=1.0, local_gauges=True)
ORDER = 2
TARGETS = {"construction_1e5_s": 60.0, "peak_rss_1e5_mb": 4096.0, "slope": 1.2,
           "speedup_8192": 50.0, "buddy_fit_s": 60.0}


def manifold_cloud(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded points on a smooth 3-D manifold in R^5 and a smooth tangent field, (n, 5) each.

    Why: local PCA must be meaningful (d = 3 < n = 5). The manifold is the graph of
    ``(0.25 sin pi(u1+u2), 0.25 cos pi(u2-u3))`` over the unit cube, rotated by a random
    orthogonal matrix (drawn first, so it is the same for every n); the vectors are the exact
    pushforward of a smooth field on the cube, hence tangent.
    """
    rng = np.random.default_rng(seed)
    rot, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    u = rng.uniform(0.0, 1.0, (n, 3))
    a, b = np.pi * (u[:, 0] + u[:, 1]), np.pi * (u[:, 1] - u[:, 2])
    x = np.column_stack([u, 0.25 * np.sin(a), 0.25 * np.cos(b)])
    w = np.column_stack([np.sin(np.pi * u[:, 1]), -np.sin(np.pi * u[:, 0]), 0.5 * np.cos(np.pi * u[:, 2])])
    dh1 = 0.25 * np.pi * np.cos(a) * (w[:, 0] + w[:, 1])
    dh2 = -0.25 * np.pi * np.sin(b) * (w[:, 1] - w[:, 2])
    v = np.column_stack([w, dh1, dh2])
    return x @ rot, v @ rot


def rss_mb() -> float:
    """Peak RSS of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def slope(ns: list[float], values: list[float]) -> float | None:
    """Least-squares slope of log(value) against log(N); None with fewer than 2 points."""
    if len(ns) < 2:
        return None
    return float(np.polyfit(np.log(ns), np.log(values), 1)[0])


# ----------------------------------------------------------------------------- child workers
def _ours(x: np.ndarray, v: np.ndarray) -> tuple[float, float, object, np.ndarray]:
    """Our construction: (geometry s, features s, geometry, features)."""
    from marble_widgets.engine.features import derivative_features
    from marble_widgets.engine.geometry import build_geometry

    t0 = time.perf_counter()
    g = build_geometry(x, v, **GEOMETRY, seed=0)
    t1 = time.perf_counter()
    f = derivative_features(g, order=ORDER, include_self=True)
    return t1 - t0, time.perf_counter() - t1, g, f


def _warm_up() -> float:
    """Run the pipeline once on a tiny cloud (lazy imports, BLAS init); return RSS after it."""
    _ours(*manifold_cloud(300, seed=1))
    return rss_mb()


def _repeat_ours(x: np.ndarray, v: np.ndarray, repeat: int) -> tuple[list, dict]:
    """``repeat`` constructions: [(total, geometry, features) s] and sizes of the result."""
    runs = []
    for _ in range(repeat):
        tg, tf, g, f = _ours(x, v)
        runs.append((tg + tf, tg, tf))
        stats = dict(edges=int(g.edge_index.shape[1]), d=int(g.n_directions), n_features=int(f.shape[1]))
        del g, f  # free before the next run, so the peak RSS is one construction's
    return runs, stats


def child_construct(n: int, repeat: int) -> dict:
    """Construction seconds (best of ``repeat``) and peak RSS at size n."""
    load0 = os.getloadavg()[0]
    x, v = manifold_cloud(n)
    base = _warm_up()
    runs, stats = _repeat_ours(x, v, repeat)
    best = min(runs)
    peak = rss_mb()
    return dict(n=n, construction_s=best[0], geometry_s=best[1], features_s=best[2],
                construction_all_s=[r[0] for r in runs], peak_rss_mb=peak, baseline_rss_mb=base,
                peak_minus_baseline_mb=peak - base, load_start=load0, load_end=os.getloadavg()[0], **stats)


def child_dense(n: int, eigh: int = 1, repeat: int = 3) -> dict:
    """Ours (``repeat`` runs; the slowest is compared) then the dense baseline once, same data.

    ``eigh=0`` skips the dense eigendecomposition (its time is then extrapolated by the parent).
    """
    from dense_baseline import dense_construction

    load0 = os.getloadavg()[0]
    x, v = manifold_cloud(n)
    base = _warm_up()
    runs, stats = _repeat_ours(x, v, repeat)
    ours = [r[0] for r in runs]
    rss_ours = rss_mb()
    t0 = time.perf_counter()
    res = dense_construction(x, v, **GEOMETRY, order=ORDER, include_self=True, spectrum=bool(eigh))
    dense_s = time.perf_counter() - t0
    no_eigh = dense_s - res.timings["eigh"]
    slow = max(ours)
    return dict(
        n=n, ours_s=slow, ours_min_s=min(ours), dense_s=dense_s, speedup=dense_s / slow,
        dense_without_eigh_s=no_eigh, speedup_without_eigh=no_eigh / slow,
        dense_stages_s=res.timings, same_edges=bool(res.edge_index.shape[1] == stats["edges"]),
        same_d=bool(res.manifold_dim == stats["d"]),
        same_feature_shape=bool(res.features.shape == (n, stats["n_features"])),
        peak_rss_ours_mb=rss_ours, peak_rss_dense_mb=rss_mb(), baseline_rss_mb=base,
        load_start=load0, load_end=os.getloadavg()[0], eigh_measured=bool(eigh),
    )


def _extrapolate_eigh(rows: list[dict]) -> list[dict]:
    """Fill the dense eigh time of rows run without it by N^3 from the largest measured one."""
    measured = [r for r in rows if r["eigh_measured"]]
    for r in rows:
        if r["eigh_measured"] or not measured:
            continue
        ref = max(measured, key=lambda m: m["n"])
        eigh_s = ref["dense_stages_s"]["eigh"] * (r["n"] / ref["n"]) ** 3
        r["dense_stages_s"]["eigh"] = eigh_s
        r["dense_s"] = r["dense_without_eigh_s"] + eigh_s
        r["speedup"] = r["dense_s"] / r["ours_s"]
        r["eigh_extrapolated_from_n"] = ref["n"]
    return rows


def _fit_seconds(ff, epochs: int, **params) -> dict:
    """Stage seconds of one ``MARBLE.fit`` (its ``timings_``) and seconds per epoch (callback clock)."""
    from marble_widgets import MARBLE

    elapsed: list[float] = []
    model = MARBLE(order=ORDER, k=20, local_gauges=True, epochs=epochs, patience=None, seed=0,
                   verbose=False, **params)
    model.fit(ff, callback=lambda info: elapsed.append(info["elapsed"]))
    per_epoch = np.diff([0.0, *elapsed])
    return dict(geometry_s=model.timings_["geometry_s"], feature_source_s=model.timings_["features_s"],
                training_s=model.timings_["training_s"], epoch_s=float(per_epoch.mean()),
                epoch_kind=f"measured ({epochs} epochs)", epochs_s=per_epoch.tolist())


def child_train(n: int, epochs: int) -> dict:
    """Seconds per epoch at size n, default MARBLE (diffusion on) and diffusion=False (public API:
    ``MARBLE.fit`` with its ``timings_`` and the epoch callback)."""
    from marble_widgets import MARBLE, flow_field_from_arrays

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    warm = MARBLE(order=ORDER, k=20, local_gauges=True, epochs=1, seed=0, verbose=False)
    warm.fit(flow_field_from_arrays(*manifold_cloud(300, seed=1)))  # first-use costs of torch
    ff = flow_field_from_arrays(*manifold_cloud(n))
    row: dict = dict(n=n, warm_up_s=time.perf_counter() - t0)
    for name, diffusion in (("default", True), ("no_diffusion", False)):
        row[name] = _fit_seconds(ff, int(epochs), diffusion=diffusion)
    row["geometry_s"] = row["default"]["geometry_s"]
    row.update(peak_rss_mb=rss_mb(), load_start=load0, load_end=os.getloadavg()[0])
    return row


def child_buddy() -> dict:
    """Full fit of the rat Buddy flow field with the rat example's settings."""
    import marble_widgets as mw
    from marble_widgets import MARBLE

    load0 = os.getloadavg()[0]
    rec = mw.datasets.rat_hippocampus()
    t0 = time.perf_counter()
    ff = mw.flow_field(rec, n_components=10, smooth=0.25)
    flow_s = time.perf_counter() - t0
    elapsed: list[float] = []
    model = MARBLE(order=1, k=15, delta=1.5, hidden_channels=(64,), out_dim=32, epochs=100,
                   diffusion=False, include_positions=True, emb_norm=True, seed=0, verbose=False)
    t0 = time.perf_counter()
    model.fit(ff, callback=lambda info: elapsed.append(info["elapsed"]))
    fit_s = time.perf_counter() - t0
    return dict(samples=int(ff.sizes["sample"]), flow_field_s=flow_s, fit_s=fit_s,
                epochs_run=len(elapsed), training_s=elapsed[-1], construction_s=fit_s - elapsed[-1],
                epoch_s=elapsed[-1] / len(elapsed), best_epoch=int(model.best_epoch_),
                fit_100_epochs_estimate_s=fit_s - elapsed[-1] + 100 * elapsed[-1] / len(elapsed),
                peak_rss_mb=rss_mb(), load_start=load0, load_end=os.getloadavg()[0])


# ----------------------------------------------------------------------------- parent
def run_child(*args: str, timeout: float = 1800) -> dict:
    """Run this script as a fresh subprocess in a child mode; return its last JSON line."""
    cmd = [sys.executable, "-W", "ignore", str(Path(__file__).resolve()), "--child", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(row, default=float)[:400], flush=True)
    return row


def _slopes(rows: list[dict], key: str) -> dict:
    """Log-log slopes of ``key`` against N over all sizes and over the three largest."""
    ns, vals = [r["n"] for r in rows], [r[key] for r in rows]
    return {"all": slope(ns, vals), "3_largest": slope(ns[-3:], vals[-3:]) if len(ns) >= 3 else None,
            "sizes": ns}


def _verdicts(cons: list[dict], dense: list[dict], buddy: dict | None, slopes: dict) -> dict:
    """Pass/fail (None where not measured) against every target."""
    big = next((r for r in cons if r["n"] == 100_000), None)
    d8 = next((r for r in dense if r["n"] == 8_192), None)
    s3 = slopes["construction_s"]["3_largest"]
    sa = slopes["construction_s"]["all"]
    return {
        "construction_1e5_lt_60s": None if big is None else big["construction_s"] < TARGETS["construction_1e5_s"],
        "peak_rss_1e5_lt_4GB": None if big is None else big["peak_rss_mb"] < TARGETS["peak_rss_1e5_mb"],
        "slope_3_largest_le_1.2": None if s3 is None else s3 <= TARGETS["slope"],
        "slope_all_le_1.2": None if sa is None else sa <= TARGETS["slope"],
        "speedup_8192_ge_50": None if d8 is None else d8["speedup"] >= TARGETS["speedup_8192"],
        "speedup_8192_eigh_measured": None if d8 is None else d8["eigh_measured"],
        "buddy_fit_lt_60s": None if buddy is None else buddy["fit_s"] < TARGETS["buddy_fit_s"],
    }


def _print_tables(cons, dense, train, buddy) -> None:
    """Human-readable summary of every figure."""
    if cons:
        print("\nConstruction (build_geometry + order-2 features, local gauges, k=20, 5-D):")
        print_table(cons, ["n", "construction_s", "geometry_s", "features_s", "peak_rss_mb",
                           "peak_minus_baseline_mb", "edges", "d", "load_start"])
    if dense:
        print("\nDense baseline vs ours (same data, same process):")
        print_table(dense, ["n", "ours_s", "dense_s", "speedup", "speedup_without_eigh", "eigh_measured",
                            "peak_rss_dense_mb", "same_edges", "same_d", "load_start"])
    if train:
        flat = [{"n": r["n"], "default_epoch_s": r["default"]["epoch_s"], "default_kind": r["default"]["epoch_kind"],
                 "no_diff_epoch_s": r["no_diffusion"]["epoch_s"], "no_diff_kind": r["no_diffusion"]["epoch_kind"],
                 "load_start": r["load_start"]} for r in train]
        print("\nTraining seconds per epoch (batch 64; default = diffusion on):")
        print_table(flat, list(flat[0]))
    if buddy:
        print("\nRat Buddy full fit:")
        print_table([buddy], ["samples", "fit_s", "construction_s", "epochs_run", "epoch_s",
                              "fit_100_epochs_estimate_s", "load_start"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="sizes up to 8,192 only")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--dense-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dense-eigh-max", type=int, default=10**9,
                        help="above this N the dense eigh is not run but extrapolated (N^3)")
    parser.add_argument("--skip-construct", action="store_true")
    parser.add_argument("--skip-dense", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-buddy", action="store_true")
    parser.add_argument("--no-json", action="store_true")
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of results/engine_scaling.json that this run does not redo")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child), default=float))
        return
    limit = 8_192 if args.quick else math.inf
    sizes = [n for n in (args.sizes or SIZES) if n <= limit]
    dense_sizes = [n for n in (args.dense_sizes or DENSE_SIZES) if n <= limit]
    t_start, load_start = time.perf_counter(), os.getloadavg()
    cons = [] if args.skip_construct else [
        run_child("construct", str(n), str(3 if n <= 8_192 else 1)) for n in sizes]
    dense = [] if args.skip_dense else [
        run_child("dense", str(n), str(int(n <= args.dense_eigh_max))) for n in dense_sizes]
    train = [] if args.skip_train else [run_child("train", str(n), str(args.epochs)) for n in sizes]
    buddy = None if args.skip_buddy else run_child("buddy")
    if args.merge:
        cons, dense, train, buddy = _merge(cons, dense, train, buddy)
    dense = _extrapolate_eigh(dense)
    slopes = {"construction_s": _slopes(cons, "construction_s"),
              "peak_minus_baseline_mb": _slopes(cons, "peak_minus_baseline_mb")}
    verdicts = _verdicts(cons, dense, buddy, slopes)
    _print_tables(cons, dense, train, buddy)
    print("\nlog-log slope of construction time:", slopes["construction_s"])
    print("targets:", json.dumps(verdicts))
    total = time.perf_counter() - t_start
    print(f"total {total:.0f} s; load average at start {load_start}, at end {os.getloadavg()}")
    if not args.no_json:
        write_json("engine_scaling", {
            "settings": {"sizes": [r["n"] for r in cons], "dense_sizes": [r["n"] for r in dense], "ambient_dim": 5, "manifold": "3-D",
                         **GEOMETRY, "order": ORDER, "epochs": args.epochs, "quick": args.quick,
                         "threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}},
            "construction": cons, "dense_vs_ours": dense, "training": train, "buddy": buddy,
            "slopes": slopes, "targets": TARGETS, "pass": verdicts,
            "load_average": {"start": load_start, "end": os.getloadavg()}, "total_s": total,
        })


def _merge(cons: list, dense: list, train: list, buddy: dict | None) -> tuple:
    """Combine this run's rows with those of the existing JSON (new rows win, sorted by N)."""
    path = Path(__file__).resolve().parent / "results" / "engine_scaling.json"
    old = json.loads(path.read_text()) if path.exists() else {}

    def by_n(new: list, key: str) -> list:
        rows = {r["n"]: r for r in old.get(key) or []} | {r["n"]: r for r in new}
        return [rows[n] for n in sorted(rows)]

    return (by_n(cons, "construction"), by_n(dense, "dense_vs_ours"), by_n(train, "training"),
            buddy if buddy is not None else old.get("buddy"))


def _child(spec: list[str]) -> dict:
    """Dispatch a child mode (see :func:`run_child`)."""
    mode, rest = spec[0], [int(a) for a in spec[1:]]
    if mode == "construct":
        return child_construct(*rest)
    if mode == "dense":
        return child_dense(*rest)
    if mode == "train":
        return child_train(*rest)
    if mode == "buddy":
        return child_buddy()
    raise ValueError(f"unknown child mode {mode!r}: use construct, dense, train or buddy.")


if __name__ == "__main__":
    main()
