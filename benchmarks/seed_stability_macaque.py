"""Seed-stability benchmark, part ``macaque``: velocity R^2 of fold 0 over seeds, per setting and recipe.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import xarray as xr

from seed_stability_common import _jsonable, fit_embed
from seed_stability_ensembles import combine_members

from marble_widgets import recipes


def run_macaque(settings: dict[str, dict[str, Any]], seeds: tuple[int, ...], quick: bool) -> dict[str, Any]:
    """Velocity R^2 of fold 0 (trial-wise, fidelity.py's folds) over seeds, per setting and the input."""
    from sklearn.metrics import r2_score

    from fidelity import MC_INPUT, flow_pair, ridge_velocity, trial_folds, unlabelled
    from marble_widgets.datasets import mc_maze_small

    ds = mc_maze_small(bin_size=recipes.get("macaque_paper").extra["bin_size"])
    fold = trial_folds(ds["condition"].values)
    tr, te = ds.isel(trial=np.flatnonzero(fold != 0)), ds.isel(trial=np.flatnonzero(fold == 0))
    ff_tr, ff_te = flow_pair(tr, te, MC_INPUT["n_components"], MC_INPUT["smooth"], condition="condition")

    def score(z_tr: np.ndarray, z_te: np.ndarray) -> float:
        v_hat = ridge_velocity(z_tr, ff_tr, z_te, ff_te)
        return float(r2_score(ff_te["hand_velocity"].values, v_hat))

    rows = [{"method": "input: PCA-5 (100 ms)", "velocity_r2_mean": score(ff_tr["x"].values, ff_te["x"].values),
             "velocity_r2_sd": 0.0}]
    for name, params in settings.items():
        params = {**params, "epochs": 30} if quick else params
        t0 = time.perf_counter()
        runs = []
        for seed in seeds:
            z_tr, z_te, info = fit_embed(ff_tr, unlabelled(ff_te), params, seed)
            runs.append({"seed": seed, "velocity_r2": score(z_tr, z_te), **info})
            print(f"  macaque {name} seed {seed}: R2 {runs[-1]['velocity_r2']:.3f}", flush=True)
        values = np.array([r["velocity_r2"] for r in runs])
        rows.append({"method": name, "params": _jsonable(params), "velocity_r2_mean": float(values.mean()),
                     "velocity_r2_sd": float(values.std()), "per_seed": runs, "seconds": time.perf_counter() - t0})
    rows += macaque_recipe_rows(unlabelled(ff_tr), unlabelled(ff_te), score, seeds, quick)
    return {"rows": rows, "fold": 0, "seeds": list(seeds), "input": MC_INPUT}


#: the macaque recipes of the recipe table measured in part "macaque" (one graph over all trials: labels unused)
MC_RECIPES = ("macaque_tuned", "macaque_ensemble_concat")


def macaque_recipe_rows(ff_tr: xr.Dataset, ff_te: xr.Dataset, score: Any, seeds: tuple[int, ...],
                        quick: bool) -> list[dict[str, Any]]:
    """:data:`MC_RECIPES` as shipped: single models over ``seeds``, ensembles over 3 ensemble seeds (shared fits)."""
    memo: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    def fit(params: dict[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray]:
        key = (str(sorted(params.items())), seed)
        if key not in memo:
            memo[key] = fit_embed(ff_tr, ff_te, params, seed)[:2]
        return memo[key]

    rows = []
    for name in MC_RECIPES:
        recipe, t0 = recipes.get(name), time.perf_counter()
        params = {**recipe.marble, **({"epochs": 30} if quick else {})}
        ens = dict(recipe.extra.get("ensemble", {}))
        if ens:
            m, combine = ens.pop("n_members"), ens.pop("combine", "mean")
            embedded = [combine_members([fit(params, e * m + i) for i in range(m)], ff_tr, ens, None, combine)
                        for e in range(2 if quick else 3)]
        else:
            embedded = [fit(params, s) for s in seeds]
        values = np.array([score(*z) for z in embedded])
        rows.append({"method": name, "params": _jsonable(params), "extra": _jsonable(dict(recipe.extra)),
                     "velocity_r2_mean": float(values.mean()), "velocity_r2_sd": float(values.std()),
                     "per_seed": [{"seed": i, "velocity_r2": float(v)} for i, v in enumerate(values)],
                     "seconds": time.perf_counter() - t0})
        print(f"  macaque {name}: R2 {values.mean():.3f} ± {values.std():.3f} {np.round(values, 3)}", flush=True)
    return rows
