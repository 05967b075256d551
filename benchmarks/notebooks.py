"""Benchmark the tutorial notebooks: wall time and the kernel's peak memory, one notebook at a time.

Each notebook runs in a fresh subprocess (``--one PATH``) that executes it with nbclient and
polls the kernel's process tree with psutil every 50 ms for the summed resident set size (RSS);
the kernel's own ``ru_maxrss`` (read after it exits, from RUSAGE_CHILDREN) is reported too.
Targets: < 120 s and < 1.5 GB per notebook on a 2-core CPU.

Run: ``python benchmarks/notebooks.py [--timeout 600] [names...]`` -> table + results/notebooks.json.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TARGET_S, TARGET_MB = 120.0, 1536.0


def _tree_rss_mb(pid: int) -> float:
    """Summed RSS (MB) of a process and all its descendants; 0 once it is gone."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


class KernelPoller(threading.Thread):
    """Background thread: peak tree RSS of the kernel started by an nbclient client."""

    def __init__(self, client, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.client, self.interval, self.peak_mb = client, interval, 0.0
        self._halt = threading.Event()

    def _pid(self) -> int | None:
        km = getattr(self.client, "km", None)
        provisioner = getattr(km, "provisioner", None) if km is not None else None
        return getattr(provisioner, "pid", None)

    def run(self) -> None:
        while not self._halt.is_set():
            pid = self._pid()
            if pid:
                self.peak_mb = max(self.peak_mb, _tree_rss_mb(pid))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_one(path: Path, timeout: int) -> dict:
    """Execute one notebook (cwd = notebooks/) and measure it; errors are reported, not raised."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    poller = KernelPoller(client)
    poller.start()
    t0 = time.perf_counter()
    error = ""
    try:
        client.execute()
    except Exception as err:  # CellExecutionError, timeouts: record and go on with the next notebook
        error = f"{type(err).__name__}: {str(err).strip().splitlines()[-1][:200] if str(err).strip() else ''}"
    wall = time.perf_counter() - t0
    poller.stop()
    kernel_maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    return {"notebook": path.name, "wall_s": round(wall, 1), "peak_rss_mb": round(poller.peak_mb, 0),
            "kernel_maxrss_mb": round(kernel_maxrss, 0), "code_cells": n_code, "ok": not error, "error": error}


def run_isolated(path: Path, timeout: int) -> dict:
    """Run :func:`run_one` in a fresh interpreter so that runs do not share caches or memory."""
    out = subprocess.run([sys.executable, __file__, "--one", str(path), "--timeout", str(timeout)],
                         capture_output=True, text=True, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"notebook": path.name, "ok": False, "error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names or prefixes (default: all)")
    parser.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.timeout)))
        return
    paths = [p for p in sorted(NOTEBOOKS.glob("*.ipynb")) if not args.names or any(p.name.startswith(n) for n in args.names)]
    rows = []
    for p in paths:
        rows.append(run_isolated(p, args.timeout))
        print(f"{p.name}: {rows[-1]}", flush=True)
    for r in rows:
        r["within_target"] = bool(r.get("ok") and r["wall_s"] < TARGET_S and r["peak_rss_mb"] < TARGET_MB)
    print()
    print_table(rows, ["notebook", "wall_s", "peak_rss_mb", "kernel_maxrss_mb", "code_cells", "ok", "within_target"])
    write_json("notebooks", {"targets": {"wall_s": TARGET_S, "peak_rss_mb": TARGET_MB},
                             "note": "peak_rss_mb: psutil polling (50 ms) of the kernel process tree; "
                                     "kernel_maxrss_mb: the kernel's ru_maxrss after exit",
                             "results": rows})


if __name__ == "__main__":
    main()
