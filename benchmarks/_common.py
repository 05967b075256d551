"""Small shared helpers for the benchmark scripts: timing, peak memory, table printing, JSON output."""
from __future__ import annotations

import json
import platform
import resource
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def measure(fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, float, float]:
    """Run ``fn``: best wall seconds over ``repeat`` untraced runs, then one traced run for peak MB.

    Timing and memory tracing are separate because tracemalloc slows allocation-heavy code.
    """
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, best, peak


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Print rows as an aligned plain-text table."""
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus machine facts) to benchmarks/results/<name>.json and return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), **payload}
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(f"\nwrote {path}")
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def merge_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """Merge ``rows`` into ``path``'s ``rows`` by (method, folds), every other row kept (experiment tables)."""
    old = json.loads(path.read_text()) if path.exists() else {"rows": []}
    merged = {(r["method"], tuple(r["folds"])): r for r in old["rows"]}
    merged.update({(r["method"], tuple(r["folds"])): r for r in rows})
    path.write_text(json.dumps({"machine": machine(), "date": time.strftime("%Y-%m-%d"),
                                "rows": list(merged.values())}, indent=2) + "\n")
    print(f"wrote {path}")
