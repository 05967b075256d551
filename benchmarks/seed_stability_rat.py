"""Seed-stability benchmark, parts ``rat`` and ``consistency_3d`` (and the InfoNCE rows): every setting over seeds.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from _common import peak_rss_mb, write_json, RESULTS
from seed_stability_common import (
    chance_consistency,
    controls,
    CURVE_EPOCHS,
    decode_position,
    epoch_curve,
    fit_embed,
    rat_flow_fields,
    RAT_INPUT,
    rat_setting,
    RECOMMENDED,
    seed_consistency,
    settings_for,
    table,
)


def run_rat(settings: dict[str, dict[str, Any]], seeds: tuple[int, ...], quick: bool,
            curve_for: tuple[str, ...], controls_for: tuple[str, ...]) -> dict[str, Any]:
    """Rat figures: input baseline, every setting over seeds, one-seed curves and controls."""
    ff_tr, ff_te = rat_flow_fields()
    t0 = time.perf_counter()
    rows = [{"method": "input: PCA-10 (250 ms)", **_as_row(decode_position(ff_tr["x"].values, ff_te["x"].values,
                                                                           ff_tr, ff_te)),
             "seconds": time.perf_counter() - t0}]
    curves, ctrl, dims = {}, {}, set()
    for name, params in settings.items():
        params = {**params, "epochs": 30} if quick else params
        row, embeddings = rat_setting(name, params, ff_tr, ff_te, seeds)
        rows.append(row)
        dims.add(int(params["out_dim"]))
        if name in curve_for:
            epochs = tuple(e for e in CURVE_EPOCHS if e <= params["epochs"])
            curves[name] = epoch_curve(params, ff_tr, ff_te, seeds[0], epochs[::3] if quick else epochs)
            print(f"  {name} curve: {[(c['epochs'], round(c['cm_k_by_median'], 2)) for c in curves[name]]}",
                  flush=True)
        if name in controls_for:
            z0 = fit_embed(ff_tr, ff_te, params, seeds[0])[:2]
            ctrl[name] = controls(params, ff_tr, ff_te, seeds[0], z0)
            print(f"  {name} controls: {ctrl[name]}", flush=True)
    chance = {str(d): chance_consistency(ff_tr, d) for d in sorted(dims)}
    return {"rows": rows, "curves": curves, "controls": ctrl, "consistency_chance": chance,
            "seeds": list(seeds), "input": RAT_INPUT, "n_train": int(ff_tr.sizes["sample"]),
            "n_test": int(ff_te.sizes["sample"])}


def run_consistency_3d(settings: dict[str, dict[str, Any]], seeds: tuple[int, ...], quick: bool) -> dict[str, Any]:
    """Seed-to-seed consistency of ``out_dim=3`` versions of the settings (the paper's consistency models)."""
    ff_tr, ff_te = rat_flow_fields()
    rows = []
    for name, params in settings.items():
        params = {**params, "out_dim": 3, **({"epochs": 30} if quick else {})}
        t0 = time.perf_counter()
        embeddings = [fit_embed(ff_tr, ff_te, params, s)[0] for s in seeds]
        rows.append({"method": name, "consistency": seed_consistency(embeddings, ff_tr),
                     "seconds": time.perf_counter() - t0})
        print(f"  3-D {name}: {rows[-1]['consistency']['mean']:.3f} (min {rows[-1]['consistency']['min']:.3f})",
              flush=True)
    return {"rows": rows, "seeds": list(seeds), "chance": chance_consistency(ff_tr, 3)}


def _as_row(figures: dict[str, Any]) -> dict[str, Any]:
    """Single-run figures in the mean/SD layout of the table (SD 0: no training seed)."""
    out = {}
    for tag in ("k_by_median", "k_by_r2"):
        out.update({f"cm_{tag}_mean": figures[f"cm_{tag}"], f"cm_{tag}_sd": 0.0, f"k_{tag}": figures[f"k_{tag}"]})
    return out


def infonce_settings(temperatures: tuple[float, ...]) -> dict[str, dict[str, Any]]:
    """The recommended settings with the InfoNCE loss at each temperature (name -> parameters)."""
    base = settings_for("rat")[RECOMMENDED]
    return {f"{RECOMMENDED} + infonce T={t:g}": {**base, "loss": "infonce", "temperature": float(t)}
            for t in temperatures}


def run_infonce(temperatures: tuple[float, ...], seeds: tuple[int, ...], quick: bool) -> dict[str, Any]:
    """InfoNCE screen on the rat: the input, then per temperature decoding and (3-D) consistency over seeds."""
    ff_tr, ff_te = rat_flow_fields()
    rows = [{"method": "input: PCA-10 (250 ms)", **_as_row(decode_position(ff_tr["x"].values, ff_te["x"].values,
                                                                           ff_tr, ff_te))}]
    for name, params in infonce_settings(temperatures).items():
        params = {**params, "epochs": 30} if quick else params
        row, _ = rat_setting(name, params, ff_tr, ff_te, seeds)
        t0 = time.perf_counter()
        three = [fit_embed(ff_tr, ff_te, {**params, "out_dim": 3}, s) for s in seeds]
        row["consistency_3d"] = seed_consistency([z for z, _, _ in three], ff_tr)
        row["consistency_3d"]["final_train_loss"] = [info["final_train_loss"] for _, _, info in three]
        row["seconds_3d"] = time.perf_counter() - t0
        print(f"  {name}: {row['cm_k_by_median_mean']:.2f} ± {row['cm_k_by_median_sd']:.2f} / "
              f"{row['cm_k_by_r2_mean']:.2f} ± {row['cm_k_by_r2_sd']:.2f} cm, consistency "
              f"{row['consistency']['mean']:.3f}, 3-D {row['consistency_3d']['mean']:.3f}", flush=True)
        rows.append(row)
    return {"rows": rows, "seeds": list(seeds), "base": RECOMMENDED, "peak_rss_mb": peak_rss_mb()}


def merge_infonce(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The ``infonce`` part with ``new``'s rows replacing or joining ``old``'s (matched by method name)."""
    rows = {r["method"]: r for r in old.get("rows", []) if r.get("seeds", old.get("seeds")) == new["seeds"]}
    for r in new["rows"]:
        rows[r["method"]] = {**r, "seeds": new["seeds"]}
    return {**new, "rows": list(rows.values())}


def write_infonce(part: dict[str, Any]) -> dict[str, Any]:
    """Merge the InfoNCE part into benchmarks/results/seed_stability.json under a file lock; returns the JSON."""
    import fcntl
    import json
    import tempfile

    from _common import RESULTS

    path = RESULTS / "seed_stability.json"
    with open(Path(tempfile.gettempdir()) / "marble_seed_stability.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several temperatures may run as parallel processes
        old = json.loads(path.read_text()) if path.is_file() else {}
        keep = {k: v for k, v in old.items() if k not in ("machine", "date", "table")}
        results = {**keep, "infonce": merge_infonce(old.get("infonce", {}), part)}
        write_json("seed_stability", {**results, "table": table(results)})
    return results
