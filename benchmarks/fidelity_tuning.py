"""Hyper-parameter search for MARBLE on rat Buddy, restricted to the training 80 % of the session.

Why: the test 20 % may be scored once, with a configuration chosen without looking at it. Inside
the training part, the first 60 % of the session fits the preprocessing, the model and the kNN
decoder and the next 20 % validates (contiguous blocks, time order); the last 20 % is never
loaded here. The search is greedy coordinate descent from the docs/spec.md §2.4 recipe: each factor in
turn takes the value with the lowest validation median position error, the others held fixed.

Run: ``python benchmarks/fidelity_tuning.py [--quick]``; writes
benchmarks/results/fidelity_tuning.json (every trial, the chosen config, timings); fidelity.py
then reports the chosen config on the test part next to the recipe.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json  # noqa: E402
from fidelity import (  # noqa: E402
    RAT_INPUT,
    RAT_MARBLE,
    decode_rat,
    flow_pair,
    rat_marble,
    rat_parts,
)

#: the validation split inside the training 80 %: fit on [0, 0.6), validate on [0.6, 0.8)
FIT_STOP, VAL_STOP = 0.6, 0.8
#: factors searched, in order; the first value of each is the recipe's. Batch size first: larger
#: batches gave the clearest drop in seed-to-seed spread in exploratory runs on this split.
SEARCH: list[tuple[str, list[Any]]] = [
    ("batch_size", [64, 256, 512]),
    ("k", [15, 30, 50]),
    ("n_components", [10, 20, 30]),
    ("smooth", [0.25, 0.4]),
    ("order", [1, 2]),
    ("emb_norm", [True, False]),
    ("out_dim", [32, 16]),
    ("hidden_channels", [[64], [128]]),
]
#: every config is scored by its mean over these training seeds (one seed ranks noise: last
#: session's single-seed search chose a config that was 0.3 cm worse than the recipe on test)
TUNING_SEEDS = (0, 1, 2)


def validation_parts():
    """(fit part, validation part) = session [0, 0.6) and [0.6, 0.8); the test 20 % is cut off first."""
    return rat_parts(FIT_STOP, 0.0, VAL_STOP)


def evaluate(config: dict[str, Any], fit, val, seeds: tuple[int, ...] = TUNING_SEEDS) -> dict[str, Any]:
    """Validation figures of one config (fit on ``fit``, scored on ``val``), averaged over ``seeds``."""
    t0 = time.perf_counter()
    runs = [rat_marble(fit, val, config, seed) for seed in seeds]
    mean = {key: float(np.mean([r[key] for r in runs])) for key in ("position_cm", "direction_acc")}
    return {**mean, "position_cm_per_seed": [r["position_cm"] for r in runs], "seeds": list(seeds),
            "fit_s": float(np.mean([r["fit_s"] for r in runs])), "config": dict(config),
            "seconds": time.perf_counter() - t0}


def greedy_search(fit, val, search: list[tuple[str, list[Any]]], base: dict[str, Any],
                  seeds: tuple[int, ...] = TUNING_SEEDS) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Coordinate descent on the seed-averaged validation median error; returns the chosen config and all trials."""
    trials: list[dict[str, Any]] = []
    cache: dict[str, dict[str, Any]] = {}

    def score(cfg: dict[str, Any]) -> float:
        key = json.dumps(cfg, sort_keys=True)
        if key not in cache:
            cache[key] = evaluate(cfg, fit, val, seeds)
            trials.append(cache[key])
            print(f"  {cache[key]['position_cm']:.2f} cm  {key}", flush=True)
        return cache[key]["position_cm"]

    best = {**base, **{name: values[0] for name, values in search}}  # first values = the recipe's
    best_err = score(best)
    for name, values in search:
        for value in values:
            cand = {**best, name: value}
            err = score(cand)
            if err < best_err - 1e-9:
                best, best_err = cand, err
    return best, trials


def input_baseline(fit, val) -> dict[str, Any]:
    """MARBLE's own input (PCA-10 of 250-ms rates) decoded on the validation part, for reference."""
    ff_fit, ff_val = flow_pair(fit, val, RAT_INPUT["n_components"], RAT_INPUT["smooth"])
    return decode_rat(ff_fit["x"].values, ff_fit, ff_val["x"].values, ff_val)


def main(argv: list[str] | None = None) -> None:
    """Search, print the trials and write fidelity_tuning.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 epochs and 3 factors (smoke run)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    fit, val = validation_parts()
    base = {**RAT_INPUT, **{k: list(v) if isinstance(v, tuple) else v for k, v in RAT_MARBLE.items()}}
    search = SEARCH[:3] if args.quick else SEARCH
    if args.quick:
        base["epochs"] = 30
    reference = input_baseline(fit, val)
    print(f"validation: MARBLE input decoded directly {reference['position_cm']:.2f} cm")
    chosen, trials = greedy_search(fit, val, search, base)
    rows = [{"position_cm": t["position_cm"], "direction_acc": t["direction_acc"], "seconds": t["seconds"],
             **{k: str(v) for k, v in t["config"].items() if k in dict(search)}} for t in trials]
    print_table(rows, ["position_cm", "direction_acc", "seconds", *dict(search)])
    print(f"chosen: {chosen}")
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    write_json("fidelity_tuning", {
        "protocol": f"fit on session [0, {FIT_STOP}), validate on [{FIT_STOP}, {VAL_STOP}); test 20 % never "
                    "loaded; greedy coordinate descent on the validation median position error averaged over "
                    "training seeds (kNN, cosine, k by contiguous CV on the fit part)",
        "seeds": list(TUNING_SEEDS), "quick": args.quick, "search": [[n, v] for n, v in search],
        "validation_input_baseline": reference, "trials": trials, "chosen": chosen,
        "chosen_validation_cm": min(t["position_cm"] for t in trials),
        "total_seconds": time.perf_counter() - t0, "uptime": load,
    })


if __name__ == "__main__":
    main()
