"""Rat Buddy section of ``benchmarks/fidelity.py``: first 80 % fits, last 20 % tests; position and direction.

MARBLE (paper recipe, tuned and recommended settings over seeds) beside smoothed spikes, its own PCA
input, PCA at its output width and CEBRA, all decoded by the same cosine kNN (k chosen on training data).
"""
from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import xarray as xr

from _common import RESULTS
from fidelity_common import (
    _counts_at,
    _row,
    cebra_available,
    cebra_embed,
    CEBRA_ITERATIONS,
    decode_rat,
    flow_pair,
    marble_embed,
    RAT_INPUT,
    RAT_MARBLE,
    RAT_SEEDS,
    SEED,
    TRAIN_FRACTION,
)

from marble_widgets import recipes


def rat_parts(fraction: float = TRAIN_FRACTION, start: float = 0.0, stop: float = 1.0,
              ) -> tuple[xr.Dataset, xr.Dataset]:
    """The session's [start, fraction) part (fits everything) and [fraction, stop) part (scored)."""
    from marble_widgets.datasets import rat_hippocampus

    rec = rat_hippocampus()
    n = rec.sizes["time"]
    rec = rec.isel(time=slice(0, int(round(stop * n))))
    return recipes.split_time(rec, fraction / stop, start / stop)


def tuned_rat_config() -> dict[str, Any] | None:
    """The configuration chosen by fidelity_tuning.py on the training part (None if not run yet)."""
    path = RESULTS / "fidelity_tuning.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("chosen")


def marble_params(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a flat config into FlowFieldBuilder inputs and MARBLE parameters (recipe defaults filled)."""
    inputs = {k: config.get(k, v) for k, v in RAT_INPUT.items()}
    params = {**RAT_MARBLE, **{k: v for k, v in config.items() if k not in RAT_INPUT}}
    params["hidden_channels"] = tuple(params["hidden_channels"])
    return inputs, params


def rat_marble(train: xr.Dataset, test: xr.Dataset, config: dict[str, Any], seed: int = SEED,
               ) -> dict[str, Any]:
    """Fit the input and MARBLE on ``train``, decode ``test``; the figures and timings of one config."""
    inputs, params = marble_params(config)
    ff_tr, ff_te = flow_pair(train, test, inputs["n_components"], inputs["smooth"], seed=seed)
    z_tr, z_te, info = marble_embed(ff_tr, ff_te, params, seed)
    return {**decode_rat(z_tr, ff_tr, z_te, ff_te), **info}


def rat_marble_seeds(name: str, train: xr.Dataset, test: xr.Dataset, config: dict[str, Any],
                     seeds: tuple[int, ...] = RAT_SEEDS, **extra: Any) -> dict[str, Any]:
    """One table row for a MARBLE config: mean over training seeds, with every seed's figures kept."""
    t0 = time.perf_counter()
    runs = [rat_marble(train, test, config, seed) for seed in seeds]
    mean = {key: float(np.mean([r[key] for r in runs]))
            for key in ("position_cm", "direction_acc", "position_cm_permuted", "direction_acc_permuted")}
    spread = {"position_cm_sd": float(np.std([r["position_cm"] for r in runs])), "seeds": list(seeds)}
    return _row(name, {**mean, **spread, "per_seed": runs}, time.perf_counter() - t0, **extra)


def rat_baselines(train: xr.Dataset, test: xr.Dataset, out_dim: int,
                  tuned: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Smoothed spikes, MARBLE's input (PCA-10, 250 ms), PCA-<out_dim> and the tuned config's input, decoded directly."""
    inputs = [("smoothed spikes (50 ms)", None, 0.05), ("smoothed spikes (250 ms)", None, 0.25),
              ("MARBLE input: PCA-10 (250 ms)", 10, 0.25), (f"PCA-{out_dim} (250 ms)", out_dim, 0.25)]
    if tuned is not None:
        n_comp, smooth = (tuned.get(k, v) for k, v in RAT_INPUT.items())
        if (n_comp, smooth) not in [(n, s) for _, n, s in inputs]:
            inputs.append((f"tuned MARBLE input: PCA-{n_comp} ({smooth * 1000:.0f} ms)", n_comp, smooth))
    rows = []
    for name, n_comp, smooth in inputs:
        t0 = time.perf_counter()
        n_comp = None if n_comp is not None and n_comp >= train.sizes["unit"] else n_comp
        ff_tr, ff_te = flow_pair(train, test, n_comp, smooth)
        res = decode_rat(ff_tr["x"].values, ff_tr, ff_te["x"].values, ff_te)
        rows.append(_row(name, res, time.perf_counter() - t0))
    return rows


def rat_cebra(train: xr.Dataset, test: xr.Dataset, out_dim: int, iterations: int) -> list[dict[str, Any]]:
    """CEBRA-Time and CEBRA-Behavior (position, right, left) on the spike counts, same samples and decoder."""
    ff_tr, ff_te = flow_pair(train, test, None, None)
    x_tr, x_te = _counts_at(train, ff_tr), _counts_at(test, ff_te)
    labels = np.column_stack([ff_tr["position"].values, ff_tr["right"].values, ff_tr["left"].values])
    rows = []
    for name, lab in (("CEBRA-Time", None), ("CEBRA-Behavior (supervised)", labels)):
        t0 = time.perf_counter()
        z_tr, z_te = cebra_embed(x_tr, x_te, lab, out_dim, iterations)
        rows.append(_row(name, decode_rat(z_tr, ff_tr, z_te, ff_te), time.perf_counter() - t0,
                         iterations=iterations))
    return rows


def run_rat(quick: bool, use_cebra: bool) -> dict[str, Any]:
    """All rat figures: baselines, MARBLE's recipe, the tuned config, CEBRA."""
    train, test = rat_parts()
    recipe = dict(RAT_MARBLE, epochs=30 if quick else RAT_MARBLE["epochs"])
    tuned = tuned_rat_config()
    rows = rat_baselines(train, test, RAT_MARBLE["out_dim"], tuned)
    rows.append(rat_marble_seeds("MARBLE recipe (spec 2.4)", train, test, recipe))
    if tuned is not None:
        cfg = dict(tuned, epochs=min(30, tuned.get("epochs", 100)) if quick else tuned.get("epochs", 100))
        rows.append(rat_marble_seeds("MARBLE tuned on train part", train, test, cfg,
                                     tuned_config=json.dumps(tuned, sort_keys=True)))
    rec = recipes.get("rat_recommended").marble
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in rec.items()}
    rows.append(rat_marble_seeds("MARBLE recommended (rat_recommended)", train, test,
                                 {**cfg, "epochs": 30} if quick else cfg))
    note = cebra_available() if use_cebra else "disabled with --no-cebra"
    if note is None:
        rows += rat_cebra(train, test, RAT_MARBLE["out_dim"], CEBRA_ITERATIONS["quick_rat" if quick else "rat"])
    else:
        print(f"CEBRA skipped: {note}")
    return {"rows": rows, "cebra_note": note, "n_train_bins": train.sizes["time"], "n_test_bins": test.sizes["time"],
            "recipe": {**RAT_INPUT, **{k: list(v) if isinstance(v, tuple) else v for k, v in recipe.items()}},
            "tuned_config": tuned}
