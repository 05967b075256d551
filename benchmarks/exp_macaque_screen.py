"""Screen of macaque settings on training trials only (issue 16: velocity R^2 >= 0.45 with train-only tuning).

Outer fold 0 of ``fidelity.py``'s trial-wise folds; inside its training trials, the inner split of
``fidelity.choose_mc_candidate`` (one stratified fifth held out). The outer test trials are never read.
Every candidate = macaque_tuned + changes; velocity R^2 of fidelity's ridge decoder on the inner holdout.

Run: ``python benchmarks/exp_macaque_screen.py [--seeds 2] [--only NAME ...] [--tag NAME]``; prints a table,
writes benchmarks/results/<tag>.json (issue 16's runs: exp_macaque_screen2.json and exp_macaque_screen3.json;
the first run, tuned 0.329 / 0.364 and PCA-10 0.294 for seed 0, was stopped before writing).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json  # noqa: E402

from marble_widgets import recipes  # noqa: E402

#: name -> (flow-field changes, MARBLE changes) on top of macaque_tuned
CANDIDATES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "tuned": ({}, {}),
    "PCA-10": ({"n_components": 10}, {}),
    "PCA-10, order 1": ({"n_components": 10}, {"order": 1}),
    "PCA-10, order 1, 50 ms": ({"n_components": 10, "smooth": 0.05}, {"order": 1}),
    "order 1": ({}, {"order": 1}),
    "out_dim 40": ({}, {"out_dim": 40}),
    "no diffusion": ({}, {"diffusion": False}),
    "k 50": ({}, {"k": 50}),
    "k 15": ({}, {"k": 15}),
    "50 ms": ({"smooth": 0.05}, {}),
    "hidden 256": ({}, {"hidden_channels": (256,)}),
    "hidden 256x2, out_dim 40": ({}, {"hidden_channels": (256, 256), "out_dim": 40}),
    "200 epochs, cosine+average": ({}, {"epochs": 200, "lr_schedule": "cosine", "selection": "average",
                                        "average_from": 0.5}),
}


def inner_split() -> tuple[Any, Any]:
    """Fold 0's training trials, split into inner fit / inner validation trials (as choose_mc_candidate)."""
    from fidelity import MC_FOLDS, SEED, trial_folds

    from marble_widgets.datasets import mc_maze_small

    ds = mc_maze_small(bin_size=recipes.get("macaque_paper").extra["bin_size"])
    tr = ds.isel(trial=np.flatnonzero(trial_folds(ds["condition"].values) != 0))
    inner = trial_folds(tr["condition"].values, MC_FOLDS, SEED + 1)
    return tr.isel(trial=np.flatnonzero(inner != 0)), tr.isel(trial=np.flatnonzero(inner == 0))


def score(name: str, fit: Any, val: Any, seeds: tuple[int, ...]) -> dict[str, Any]:
    """Inner-holdout velocity R^2 of one candidate over seeds (and of its input, decoded directly)."""
    from sklearn.metrics import r2_score

    from fidelity import flow_pair, marble_embed, ridge_velocity, unlabelled

    recipe = recipes.get("macaque_tuned")
    ff_change, m_change = CANDIDATES[name]
    inputs = {**recipe.flow_field, **ff_change}
    ff_fit, ff_val = flow_pair(fit, val, inputs["n_components"], inputs["smooth"], condition="condition")
    truth = ff_val["hand_velocity"].values
    x_r2 = r2_score(truth, ridge_velocity(ff_fit["x"].values, ff_fit, ff_val["x"].values, ff_val))
    t0, values = time.perf_counter(), []
    for seed in seeds:
        z_fit, z_val, _ = marble_embed(unlabelled(ff_fit), unlabelled(ff_val), {**recipe.marble, **m_change}, seed)
        values.append(float(r2_score(truth, ridge_velocity(z_fit, ff_fit, z_val, ff_val))))
        print(f"  {name} seed {seed}: R2 {values[-1]:.3f} (input {x_r2:.3f})", flush=True)
    return {"method": name, "flow_field": inputs, "marble_changes": m_change, "r2_mean": float(np.mean(values)),
            "r2_sd": float(np.std(values)), "per_seed": values, "input_r2": float(x_r2),
            "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Score the chosen candidates, print them and write the JSON."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--tag", default="exp_macaque_screen")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    fit, val = inner_split()
    rows = [score(name, fit, val, tuple(range(args.seeds))) for name in args.only]
    print_table(rows, ["method", "r2_mean", "r2_sd", "input_r2", "seconds"])
    write_json(args.tag, {"rows": rows, "seeds": args.seeds, "split": "fold 0 training trials, inner fold 0"})
    return rows


if __name__ == "__main__":
    main()
