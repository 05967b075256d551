"""MARBLE's scientific fidelity on the bundled recordings, against baselines computed in the same run.

Why: an embedding is only worth its training time if it carries more behaviour than its own input.
Every figure below is computed here, on this machine, with one protocol per data set:

- Rat Buddy (docs/spec.md §2.4): first 80 % of the session fits the preprocessing, the model and the
  decoder; the last 20 % tests. Position (median absolute error, cm) and running direction
  (accuracy) from a kNN decoder (cosine metric) whose k is chosen by unshuffled contiguous CV
  on the training part only. Baselines: smoothed spikes (50 ms), MARBLE's own input (PCA-10 of
  250-ms-smoothed rates), PCA with MARBLE's output dimension, CEBRA-Time and CEBRA-Behavior.
- MC_Maze_Small (docs/spec.md §2.3 with trial-wise CV): 5 stratified folds over trials; preprocessing,
  model and decoders are fitted on the training trials of each fold. Hand-velocity R^2 (ridge per
  bin, pooled over held-out samples), reach-sector accuracy from per-trial embeddings, and the
  ring arrangement of the reach conditions in the MDS of their OT distances.
- Toys (docs/spec.md §15.2): van der Pol mu-ordering (Spearman of MDS axis 1 with mu) and rotated
  copies (embedding-agnostic mode puts them together, embedding-aware mode separates them).
- Recurrent networks (paper Fig. 3, ``benchmarks/rnn_study.py``'s functions at smaller settings):
  |Spearman| of MDS axis 1 of the OT distances with the input gain, per network (embedding-aware)
  and jointly over the 4 networks (embedding-agnostic), the unstimulated fields as the control,
  raw-vector / PCA-position / CCA-aligned baselines.
- Label-permutation control for every decoder: the same decoder trained on permuted training
  labels (rows shuffled; trials for the sector classifier) and scored on the untouched test
  part; it must fall to chance (``*_permuted`` beside each figure).

The sections live in ``fidelity_rat``, ``fidelity_macaque`` and ``fidelity_toys`` (shared protocol:
``fidelity_common``); this script runs them, merges and prints; every name stays importable from here.

Run: ``python benchmarks/fidelity.py [--quick] [--no-cebra] [--only rat macaque toys rnn]``.
Writes benchmarks/results/fidelity.json with every figure, seed and timing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fidelity_common  # noqa: E402,F401  (first: it sets one BLAS thread before numpy loads)
from _common import RESULTS, peak_rss_mb, print_table, write_json  # noqa: E402
from fidelity_common import (  # noqa: E402,F401  (re-exported: scripts and tests import them from here)
    _counts_at,
    _row,
    cebra_available,
    cebra_embed,
    CEBRA_ITERATIONS,
    choose_k_median,
    decode_rat,
    flow_pair,
    K_GRID,
    knn_decode,
    marble_embed,
    MC_CANDIDATES,
    MC_FOLDS,
    MC_INPUT,
    MC_MARBLE,
    MC_RECOMMENDED,
    permuted,
    RAT_INPUT,
    RAT_MARBLE,
    RAT_SEEDS,
    RNN_QUICK,
    RNN_SETTINGS,
    SEED,
    TRAIN_FRACTION,
)
from fidelity_rat import (  # noqa: E402,F401  (re-exported: scripts and tests import them from here)
    marble_params,
    rat_baselines,
    rat_cebra,
    rat_marble,
    rat_marble_seeds,
    rat_parts,
    run_rat,
    tuned_rat_config,
)
from fidelity_macaque import (  # noqa: E402,F401  (re-exported: scripts and tests import them from here)
    _mc_counts,
    _mc_fold,
    choose_mc_candidate,
    MC_CHOICES,
    mc_methods,
    ridge_velocity,
    RING_METHODS,
    ring_score,
    run_macaque,
    sector_classifier,
    sector_distances,
    trial_features,
    trial_folds,
    unlabelled,
)
from fidelity_toys import (  # noqa: E402,F401  (re-exported: scripts and tests import them from here)
    _fit_embed,
    AGNOSTIC,
    AWARE,
    copy_separation,
    run_rnn,
    run_rotated,
    run_van_der_pol,
    VDP_MARBLE,
)


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "n/a"


def _table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (data set, method) with the headline figures."""
    rows = []
    for r in results.get("rat", {}).get("rows", []):
        rows.append({"data": "rat Buddy", "method": r["method"], "position cm": r["position_cm"],
                     "sd over seeds": r.get("position_cm_sd"), "direction acc": r["direction_acc"],
                     "permuted labels": _permuted_cell(r, "position_cm_permuted", "direction_acc_permuted"),
                     "seconds": r["seconds"]})
    for r in results.get("macaque", {}).get("rows", []):
        fold = (f"{r['velocity_r2_fold_mean']:.3f} ± {r['velocity_r2_fold_sd']:.3f}"
                if "velocity_r2_fold_mean" in r else None)
        rows.append({"data": "MC_Maze_Small", "method": r["method"], "velocity R2": r["velocity_r2"],
                     "R2 over folds": fold, "sector acc": r["sector_acc"],
                     "permuted labels": _permuted_cell(r, "velocity_r2_permuted", "sector_acc_permuted"),
                     "ring err deg": r["ring_error_deg"], "ring order": r["ring_order_ok"], "seconds": r["seconds"]})
    toys = results.get("toys", {})
    if "van_der_pol" in toys:
        v = toys["van_der_pol"]
        rows.append({"data": "van der Pol", "method": "MARBLE: Spearman(MDS1, mu)", "score": v["spearman_mds1_mu"],
                     "seconds": v["seconds"]})
        rows.append({"data": "van der Pol", "method": "raw vectors: Spearman(MDS1, mu)",
                     "score": v["baseline_raw_vectors_spearman"]})
    if "rotated" in toys:
        rot = toys["rotated"]
        for mode in ("aware", "agnostic"):
            rows.append({"data": "rotated copies", "method": f"MARBLE {mode}: within/between copies",
                         "score": rot[mode]["within_over_between"], "seconds": rot["seconds"]})
    for r in results.get("rnn", {}).get("rows", []):
        rows.append({"data": f"RNN gain ({r['fields']})", "method": r["method"],
                     "score": r.get("joint", r["per-network mean"]),
                     "per-network min/mean": f"{r['per-network min']:.3f} / {r['per-network mean']:.3f}"})
    return rows


def _permuted_cell(row: dict[str, Any], first: str, second: str) -> str | None:
    """The label-permutation control's two figures as one table cell (None before the control existed)."""
    if first not in row:
        return None
    return f"{row[first]:.3f} / {row[second]:.3f}"


def merge_sections(results: dict[str, Any], ran: list[str]) -> dict[str, Any]:
    """The committed JSON with the sections just run replaced (``--only``); the others keep their figures.

    ``section_seconds`` keeps each section's latest timing (the ones just run replaced) and
    ``total_seconds`` is their sum, so a partial run never leaves a stale total behind;
    ``run_seconds`` is this run's own wall time.
    """
    path = RESULTS / "fidelity.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    stale = {"machine", "date", "table", "total_seconds"} | {k for k in old if k.startswith("seconds_")}
    merged = {k: v for k, v in old.items() if k not in stale}
    merged.update({name: results[name] for name in ran})
    timings = {**previous_section_seconds(old), **results["section_seconds"]}
    merged.update(section_seconds=timings, total_seconds=float(sum(timings.values())),
                  run_seconds=results["run_seconds"], uptime_end=results["uptime_end"])
    return merged


def previous_section_seconds(old: dict[str, Any]) -> dict[str, float]:
    """Each section's timing in an earlier JSON: its ``section_seconds``, else the single-section ``seconds_<name>``."""
    if "section_seconds" in old:
        return {k: float(v) for k, v in old["section_seconds"].items()}
    return {name: float(old[f"seconds_{name}"]) for name in SECTIONS if f"seconds_{name}" in old}


#: the benchmark's sections (``--only``)
SECTIONS = ("rat", "macaque", "toys", "rnn")
SECTION_TITLES = {"rat": "rat Buddy", "macaque": "MC_Maze_Small", "toys": "toys", "rnn": "recurrent networks"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the chosen sections, print one table and write benchmarks/results/fidelity.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs/iterations (smoke run)")
    parser.add_argument("--no-cebra", action="store_true", help="skip the CEBRA baselines")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    results: dict[str, Any] = {"seed": SEED, "quick": args.quick, "uptime_start": _uptime(),
                               "threads": os.environ.get("OMP_NUM_THREADS", "default")}
    runners = {"rat": lambda: run_rat(args.quick, not args.no_cebra),
               "macaque": lambda: run_macaque(args.quick, not args.no_cebra),
               "toys": lambda: {"van_der_pol": run_van_der_pol(args.quick), "rotated": run_rotated(args.quick)},
               "rnn": lambda: run_rnn(args.quick)}
    section_seconds = {}
    for name in (s for s in SECTIONS if s in args.only):
        print(f"{SECTION_TITLES[name]} ...", flush=True)
        t_section = time.perf_counter()
        results[name] = runners[name]()
        section_seconds[name] = time.perf_counter() - t_section
    run_seconds = time.perf_counter() - t0
    results.update(section_seconds=section_seconds, run_seconds=run_seconds, total_seconds=run_seconds,
                   peak_rss_mb=peak_rss_mb(), uptime_end=_uptime())
    partial = set(args.only) != set(SECTIONS)
    if partial and not args.quick:
        results = merge_sections(results, args.only)
    table = _table(results)
    print()
    print_table(table, ["data", "method", "position cm", "sd over seeds", "direction acc", "velocity R2",
                        "R2 over folds", "sector acc", "permuted labels", "ring err deg", "ring order", "score",
                        "per-network min/mean", "seconds"])
    print(f"\nthis run {run_seconds:.0f} s (all sections' latest runs: {results['total_seconds']:.0f} s); "
          f"load: {results['uptime_end']}")
    if args.quick:
        print("quick run: benchmarks/results/fidelity.json left unchanged")
    else:
        write_json("fidelity", {**results, "table": table})
    return results


if __name__ == "__main__":
    main()
