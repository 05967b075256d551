"""Data-layer speed and memory: NWB open, binning, smoothing + PCA + flow field on bundled recordings.

Run: ``.venv/bin/python benchmarks/data_layer.py``. Prints a table and writes
``benchmarks/results/data_layer.json``. Target: every step < 2 s on 2 cores.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import measure, peak_rss_mb, print_table, write_json  # noqa: E402

import marble_widgets as mw  # noqa: E402
from marble_widgets.data.nwb import nwb_summary  # noqa: E402


def main() -> None:
    rows = []
    jenkins, track = mw.datasets.jenkins_nwb_path(), mw.datasets.linear_track_nwb_path()

    def add(step: str, fn, repeat: int = 3):
        result, seconds, peak = measure(fn, repeat)
        rows.append({"step": step, "seconds": seconds, "peak_MB": peak})
        return result

    add("Jenkins NWB open (metadata only)", lambda: nwb_summary(jenkins))
    jrec = add("Jenkins read_nwb (20 ms bins)", lambda: mw.read_nwb(jenkins, bin_size=0.02))
    add("Jenkins align + rates + PCA-10 + flow field", lambda: mw.flow_field(
        jrec.marble.align("move_onset_time", (-0.25, 0.45)), n_components=10, smooth=0.05))
    add("linear-track read_nwb (25 ms bins)", lambda: mw.read_nwb(track, bin_size=0.025))
    buddy = add("Buddy load", mw.datasets.rat_hippocampus)
    add("Buddy rates + PCA-10 + flow field", lambda: mw.flow_field(buddy, n_components=10, smooth=0.25))
    add("MC_Maze_Small load (20 ms)", lambda: mw.datasets.mc_maze_small(bin_size=0.02))
    print_table(rows, ["step", "seconds", "peak_MB"])
    print(f"\nprocess peak RSS: {peak_rss_mb():.0f} MB; slowest step {max(r['seconds'] for r in rows):.3f} s (target < 2 s)")
    write_json("data_layer", {"rows": rows, "peak_rss_mb": peak_rss_mb(), "target_seconds": 2.0})


if __name__ == "__main__":
    main()
