"""Many sessions: streaming NWB reads over HTTP, lazy collections, per-session fits serial vs a LocalCluster.

Why: issue 15's targets. (1) ``nwb_summary`` over HTTP (a range server on 127.0.0.1) fetches a
small fraction of a file and ``read_nwb`` over HTTP stays close to the local read; (2) opening a
collection of sessions lazily costs almost no memory; (3) one MARBLE fit per session spread over
``LocalCluster(n_workers=2, threads_per_worker=1)`` beats the serial loop and gives identical
embeddings. Sessions are cuts of the two bundled recordings (Jenkins' trial blocks, stretches of
the linear track), each fitted with its own seed (``session_seed(seed, name)``).

Run: ``python benchmarks/sessions.py [--sessions 8] [--epochs 100] [--open-sessions 32] [--fit-repeat 3]``; writes
benchmarks/results/sessions.json (``fit_runs`` keeps one fit run per ``--epochs`` side by side).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "data"))
from _common import print_table, write_json  # noqa: E402
from range_server import serve, write_big_nwb  # noqa: E402

from marble_widgets.data import remote  # noqa: E402
from marble_widgets.data.flow import flow_field  # noqa: E402
from marble_widgets.data.nwb import nwb_summary, read_nwb  # noqa: E402
from marble_widgets.datasets import jenkins_nwb_path, linear_track_nwb_path  # noqa: E402

BIG = "big_acquisition.nwb"


# ----------------------------------------------------------------------------- streaming
def _timed(fn, repeat: int) -> float:
    """Median wall seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def streaming(root: Path, repeat: int) -> list[dict[str, Any]]:
    """Bytes and requests of nwb_summary/read_nwb over HTTP, and their times against the local read."""
    rows = []
    with serve(root) as srv:
        for name in (jenkins_nwb_path().name, linear_track_nwb_path().name, BIG):
            size, url = (root / name).stat().st_size, srv.url(name)
            srv.traffic.reset()
            nwb_summary(url)
            summary_bytes, summary_requests = srv.traffic.sent(name), srv.traffic.requests[name]
            srv.traffic.reset()
            read_nwb(url)
            read_bytes, read_requests = srv.traffic.sent(name), srv.traffic.requests[name]
            rows.append({
                "file": name, "size_MB": size / 1e6,
                "summary_fetched_pct": 100 * summary_bytes / size, "summary_requests": summary_requests,
                "read_fetched_pct": 100 * read_bytes / size, "read_requests": read_requests,
                "summary_http_s": _timed(lambda: nwb_summary(url), repeat),
                "summary_local_s": _timed(lambda: nwb_summary(root / name), repeat),
                "read_http_s": _timed(lambda: read_nwb(url), repeat),
                "read_local_s": _timed(lambda: read_nwb(root / name), repeat),
            })
            rows[-1]["read_http_over_local"] = rows[-1]["read_http_s"] / rows[-1]["read_local_s"]
    return rows


# ----------------------------------------------------------------------------- lazy opening
_LAZY_CODE = """
import json, re, sys, time, tracemalloc
from pathlib import Path

def rss_mb(key):  # VmRSS now / VmHWM peak of this process (ru_maxrss keeps the parent's peak across exec)
    return int(re.search(key + r":\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024

t0 = time.perf_counter()
import dask
import marble_widgets.data.flow
from marble_widgets.sessions import open_sessions
imports_s, rss0 = time.perf_counter() - t0, rss_mb("VmRSS")
tracemalloc.start()
t0 = time.perf_counter()
sessions = open_sessions(sys.argv[1], bin_size=0.05)
graphs = sessions.flow_fields(n_components=3, smooth=0.1)
seconds = time.perf_counter() - t0
peak = tracemalloc.get_traced_memory()[1] / 2**20
tracemalloc.stop()
print(json.dumps({"sessions": len(graphs), "imports_s": imports_s, "open_and_graph_s": seconds,
                  "traced_peak_MB": peak, "rss_after_imports_MB": rss0, "rss_after_open_MB": rss_mb("VmRSS"),
                  "process_peak_rss_MB": rss_mb("VmHWM")}))
"""


def lazy_opening(root: Path, n_sessions: int) -> dict[str, Any]:
    """Memory and time of opening ``n_sessions`` files and building their flow-field graphs (no compute).

    Runs in a fresh interpreter, so the peak RSS is the whole process (Python, numpy, xarray, dask).
    """
    import json
    import subprocess

    folder = root / "many"
    folder.mkdir()
    sources = [jenkins_nwb_path(), linear_track_nwb_path()]
    for i in range(n_sessions):
        os.link(sources[i % 2], folder / f"session{i:03d}.nwb")
    out = subprocess.run([sys.executable, "-c", _LAZY_CODE, str(folder)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- fits
def session_flow_fields(n_sessions: int) -> dict[str, Any]:
    """``n_sessions`` flow fields: alternately a block of 12 Jenkins trials and 800 bins of the track."""
    jenkins = read_nwb(jenkins_nwb_path(), bin_size=0.05)
    track = read_nwb(linear_track_nwb_path(), bin_size=0.05)
    out = {}
    for i in range(n_sessions):
        k = i // 2
        if i % 2 == 0:
            block = slice(12 * (k % 8), 12 * (k % 8) + 12)
            stop = float(jenkins["stop_time"].isel(trial=block).max())
            rec = jenkins.isel(trial=block).sel(time=slice(None, stop))
        else:
            rec = track.isel(time=slice(1200 + 800 * k, 2000 + 800 * k))
        out[f"s{i:02d}"] = flow_field(rec, n_components=3, smooth=0.1)
    return out


def _warm_up(flow_field_: Any) -> None:
    """One 1-epoch fit, so that timed fits do not pay a process's first imports and torch set-up."""
    from marble_widgets.estimator import MARBLE
    from marble_widgets.sessions import _torch_threads

    with _torch_threads(1):
        MARBLE(epochs=1, verbose=False).fit(flow_field_)


def fits(n_sessions: int, epochs: int, repeat: int = 1) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Serial (dask "sync") vs LocalCluster(2 workers x 1 thread, processes) vs dask threads.

    Each of the three runs ``repeat`` times, interleaved (serial, threads, cluster, serial, ...), so that
    a change of load affects all three alike (the cluster's idle workers stay up meanwhile); the rows give
    the median seconds.
    """
    import dask
    import distributed

    from marble_widgets.estimator import MARBLE
    from marble_widgets.sessions import fit_sessions

    fields = session_flow_fields(n_sessions)
    model = MARBLE(epochs=epochs, patience=None)
    _warm_up(fields["s00"])
    times: dict[str, list[float]] = {"serial": [], "threads": [], "cluster": []}

    def timed(kind: str, **where: Any) -> Any:
        t0 = time.perf_counter()
        out = fit_sessions(fields, model, seed=0, **where)
        times[kind].append(time.perf_counter() - t0)
        return out

    t0 = time.perf_counter()
    # dask's statistical profiler samples every worker's stack each 10 ms: CPU taken from the fits on a
    # machine with one core per worker (README: how to turn it off for CPU-bound fits)
    with dask.config.set({"distributed.worker.profile.enabled": False}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                     silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
        client.run(_warm_up, fields["s00"])  # every worker's first fit (part of start-up)
        startup_s = time.perf_counter() - t0
        for _ in range(repeat):
            serial = timed("serial", scheduler="sync")
            threads = timed("threads", scheduler="threads")
            clustered = timed("cluster", client=client)
    serial_s, threads_s, cluster_s = (float(np.median(times[k])) for k in ("serial", "threads", "cluster"))
    same = bool(np.array_equal(serial["embedding"].values, clustered["embedding"].values, equal_nan=True))
    same_threads = bool(np.array_equal(serial["embedding"].values, threads["embedding"].values, equal_nan=True))
    rows = [
        {"run": "serial (sync)", "seconds": serial_s, "speedup": 1.0, "identical_to_serial": True,
         "mean_fit_s": float(serial["fit_seconds"].mean()),
         "mean_fit_cpu_s": float(serial["fit_cpu_seconds"].mean())},
        {"run": "dask threads (2)", "seconds": threads_s, "speedup": serial_s / threads_s,
         "identical_to_serial": same_threads, "mean_fit_s": float(threads["fit_seconds"].mean()),
         "mean_fit_cpu_s": float(threads["fit_cpu_seconds"].mean())},
        {"run": "LocalCluster 2x1 (fits only)", "seconds": cluster_s, "speedup": serial_s / cluster_s,
         "identical_to_serial": same, "mean_fit_s": float(clustered["fit_seconds"].mean()),
         "mean_fit_cpu_s": float(clustered["fit_cpu_seconds"].mean())},
        {"run": "LocalCluster 2x1 (+ startup)", "seconds": cluster_s + startup_s,
         "speedup": serial_s / (cluster_s + startup_s), "identical_to_serial": same, "mean_fit_s": "",
         "mean_fit_cpu_s": ""},
    ]
    facts = {"sessions": n_sessions, "epochs": epochs, "samples_per_session": serial["n_samples"].values.tolist(),
             "mean_fit_s_serial": float(serial["fit_seconds"].mean()), "cluster_startup_s": startup_s,
             "repeats": repeat, "seconds_per_repeat": times,
             "order": "largest sessions first on the cluster (fit_sessions' priorities)",
             "cluster_config": {"distributed.worker.profile.enabled": False}}
    return rows, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8, help="sessions fitted (issue target: 32)")
    parser.add_argument("--epochs", type=int, default=100,
                        help="epochs per fit (100: MARBLE's default; 10: 0.12-s fits, the fixed costs' worst case)")
    parser.add_argument("--open-sessions", type=int, default=32, help="sessions opened lazily for the memory row")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats of the streaming reads")
    parser.add_argument("--fit-repeat", type=int, default=1, help="interleaved repeats of the fits (median)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    load_at_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for src in (jenkins_nwb_path(), linear_track_nwb_path()):
            shutil.copy(src, root / src.name)
        write_big_nwb(root / BIG)
        stream = streaming(root, args.repeat)
        lazy = lazy_opening(root, args.open_sessions)
    print(f"\nStreaming over HTTP from 127.0.0.1 (block {remote.DEFAULT_BLOCK_SIZE // 1024} KiB)")
    print_table(stream, list(stream[0]))
    print("\nOpening sessions lazily (no compute)")
    print_table([lazy], list(lazy))
    fit_rows, fit_facts = fits(args.sessions, args.epochs, args.fit_repeat)
    print(f"\n{args.sessions} sessions, one MARBLE fit each ({args.epochs} epochs)")
    print_table(fit_rows, list(fit_rows[0]))
    print(f"load average (1, 5, 15 min) at the start: {load_at_start}, at the end: {os.getloadavg()}")
    command = " ".join(["python", "benchmarks/sessions.py", *sys.argv[1:]])
    fit_run = {"command": command, "fits": fit_rows, "fit_facts": fit_facts, "load_average_start": load_at_start,
               "load_average_end": list(os.getloadavg())}
    write_json("sessions", {"command": command, "block_size": remote.DEFAULT_BLOCK_SIZE, "streaming": stream,
                            "lazy_open": lazy, **fit_run, "fit_runs": fit_runs_by_epochs(args.epochs, fit_run)})


def fit_runs_by_epochs(epochs: int, fit_run: dict[str, Any],
                       path: Path = HERE / "results" / "sessions.json") -> dict[str, Any]:
    """The committed fit runs keyed by epochs per fit, this run's replacing its own key only.

    Why: the cluster's speed-up depends on how long a fit is against the fixed cost of each task
    (0.12-s fits at 10 epochs, ~1.2 s at 100), so the JSON keeps one run per fit length side by side.
    """
    import json

    previous = json.loads(path.read_text()) if path.exists() else {}
    runs = dict(previous.get("fit_runs", {}))
    if not runs and "fits" in previous:  # a file written before fit_runs existed: keep its run
        old_epochs = previous["fit_facts"]["epochs"]
        runs[str(old_epochs)] = {key: previous[key] for key in
                                 ("command", "fits", "fit_facts", "load_average_start", "load_average_end")}
    runs[str(epochs)] = fit_run
    return dict(sorted(runs.items(), key=lambda item: int(item[0])))


if __name__ == "__main__":
    main()
