"""Rat: make the network read the flow, not only the positions (issue 16 screen, inner split).

Why: with ``include_positions=True`` the positions carry ~99 % of rat_recommended's MLP input norm and
permuting the flow features hardly changes decoding (benchmarks/exp_rat_feature_ablation.py), so the model is
a learned warp of its PCA-10 input. Candidates (rat_recommended + changes), fitted on the first 60 % of the
session and decoded on the next 20 % (the protocol's test part is never read): ``include_positions=False``
(MARBLE proper), the flow field's signal ``v`` multiplied by a factor ``s`` (the engine does not rescale ``v``
unless ``vec_norm``, which the recipe leaves off, and the derivative features are linear in ``v``, so the
flow blocks of the MLP input scale by ``s`` while positions and the graph do not; ``s`` is set on the fit
part so that the flow blocks have the positions' norm, and each row records the measured shares), and order
2 with either; also side-by-side pairs (``concat``). Decoding as the benchmark: cosine kNN, k chosen on the
fit part by median error and by R^2; the PCA-10 input in the same run.

Found (results/exp_rat_flowuse.json; input 7.01 / 7.09 cm, k by median / R^2): dropping the positions decodes
12.7-14.0 cm (order 1 or 2, with or without vec_norm); ``v`` x3 (flow blocks ~0.34 of the input norm instead of
0.11) 6.15 ± 0.19 / 6.34 ± 0.37 over 8 seeds vs rat_recommended 6.63 ± 0.26 / 6.51 ± 0.37 (better on every seed
with k by median, not clearly with k by R^2); pairs side by side 6.15 ± 0.22 / 5.94 ± 0.29 vs 6.47 ± 0.08 /
6.25 ± 0.11 (4 pairs). Equal norm (x8.3) and order 2 are worse or noisier. On the protocol split
(``--split protocol``; input 7.18 / 8.06) the lead does not hold for single models: x3 6.80 ± 0.36 / 7.16 ± 0.52
vs rat_recommended 6.67 ± 0.36 / 6.89 ± 0.29 (5 seeds); 5 side by side 6.54 ± 0.10 / 6.75 ± 0.08 (3 ensembles)
vs rat_ensemble_concat's 6.69 ± 0.06 / 6.66 ± 0.15 (seed_stability.py) - 9 % below the input with k by median.

Run: ``python benchmarks/exp_rat_flowuse.py [--split inner|protocol] [--seeds 3] [--only NAME ...]`` (~10 s a fit at one thread); writes
benchmarks/results/exp_rat_flowuse.json (rows merged by name).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, print_table, write_json  # noqa: E402

from marble_widgets import recipes  # noqa: E402

#: rat_recommended + these MARBLE changes; ``flow_scale``: "equal" (flow blocks scaled to the positions' norm
#: on the fit part) or a number multiplying ``v``; ``concat``: that many models (seeds e*m .. e*m+m-1) side by
#: side, as rat_ensemble_concat combines them (one row per ensemble seed e).
CANDIDATES: dict[str, dict[str, Any]] = {
    "recommended": {},
    "no positions": {"include_positions": False},
    "flow scaled to equal norm": {"flow_scale": "equal"},
    "order 2, no positions": {"order": 2, "include_positions": False},
    "order 2, flow scaled to equal norm": {"order": 2, "flow_scale": "equal"},
    "flow scaled x3": {"flow_scale": 3.0},
    "no positions, vec_norm": {"include_positions": False, "vec_norm": True},
    "flow scaled x2": {"flow_scale": 2.0},
    "flow scaled x5": {"flow_scale": 5.0},
    "concat of 2": {"concat": 2},
    "flow scaled x3, concat of 2": {"flow_scale": 3.0, "concat": 2},
    "flow scaled to equal norm, concat of 2": {"flow_scale": "equal", "concat": 2},
    "concat of 5": {"concat": 5},
    "flow scaled x3, concat of 5": {"flow_scale": 3.0, "concat": 5},
}
#: where each split fits and decodes: the inner screen, or the benchmark's protocol (first 80 % / last 20 %)
SPLITS = {"inner": "fit 0-60 %, validate 60-80 %", "protocol": "fit the first 80 %, test the last 20 %"}
#: block names of the MLP input by feature order (-1 positions, 0 the signal, 1.. derivatives)
BLOCK_NAMES = {-1: "positions", 0: "signal v", 1: "order 1", 2: "order 2"}


def scaled(ff: xr.Dataset, factor: float) -> xr.Dataset:
    """The flow field with its signal ``v`` multiplied by ``factor`` (positions unchanged)."""
    if not np.isfinite(factor) or factor <= 0:
        raise ValueError(f"flow scale must be a positive finite number; got {factor!r}.")
    return ff.assign(v=ff["v"] * factor)


def block_shares(model: Any, ff: xr.Dataset) -> dict[str, float]:
    """Each block's share of the MLP input's norm over ``ff``'s rows (``MARBLE.results``'s ``features``)."""
    res = model.results(ff)
    feats, order = res["features"].values, res["feature_order"].values
    total = np.linalg.norm(feats)
    return {BLOCK_NAMES.get(int(o), f"order {o}"): float(np.linalg.norm(feats[:, order == o]) / total)
            for o in np.unique(order)}


def equal_norm_scale(ff_fit: xr.Dataset, params: dict[str, Any]) -> float:
    """Factor on ``v`` giving the flow blocks (signal and derivatives) the positions' norm on the fit part.

    The features do not depend on the weights, so a one-epoch model of the same settings reads them.
    """
    from marble_widgets import MARBLE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MARBLE(**{**params, "include_positions": True, "epochs": 1, "seed": 0, "verbose": False})
        res = model.fit(ff_fit).results(ff_fit)
    feats, order = res["features"].values, res["feature_order"].values
    return float(np.linalg.norm(feats[:, order == -1]) / np.linalg.norm(feats[:, order >= 0]))


def fit_one(ff_fit: xr.Dataset, ff_val: xr.Dataset, params: dict[str, Any], seed: int,
            ) -> tuple[np.ndarray, np.ndarray, dict[str, float], float]:
    """Fit one seed; (fit embedding, validation embedding, block shares of the input norm, seconds)."""
    from marble_widgets import MARBLE

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MARBLE(**{**params, "seed": seed, "verbose": False}).fit(ff_fit)
        z_fit, z_val = model.transform(ff_fit).values, model.transform(ff_val).values
        shares = block_shares(model, ff_fit) if seed == 0 else {}
    return z_fit, z_val, shares, time.perf_counter() - t0


def fit_members(ff_fit: xr.Dataset, ff_val: xr.Dataset, params: dict[str, Any], seed: int, members: int,
                ) -> tuple[np.ndarray, np.ndarray, dict[str, float], float]:
    """:func:`fit_one`, or ``members`` models of seeds seed*m .. seed*m+m-1 side by side (``members`` > 1)."""
    from seed_stability import combine_members

    if members == 1:
        return fit_one(ff_fit, ff_val, params, seed)
    fits = [fit_one(ff_fit, ff_val, params, seed * members + i) for i in range(members)]
    z_fit, z_val = combine_members([(f[0], f[1]) for f in fits], ff_fit, {}, None, "concat")
    return z_fit, z_val, fits[0][2], sum(f[3] for f in fits)


def run(name: str, seeds: tuple[int, ...], ff_fit: xr.Dataset, ff_val: xr.Dataset,
        command: str) -> dict[str, Any]:
    """Decoding (both k rules) and seed consistency of one candidate over ``seeds``."""
    from seed_stability import decode_position, seed_consistency

    changes = dict(CANDIDATES[name])
    flow_scale, members = changes.pop("flow_scale", None), int(changes.pop("concat", 1))
    params = {**recipes.get("rat_recommended").marble, **changes}
    if flow_scale == "equal":
        flow_scale = equal_norm_scale(ff_fit, params)
    fit, val = (ff_fit, ff_val) if flow_scale is None else (scaled(ff_fit, flow_scale), scaled(ff_val, flow_scale))
    t0 = time.perf_counter()
    runs, fits, shares = [], [], {}
    for seed in seeds:
        z_fit, z_val, share, secs = fit_members(fit, val, params, seed, members)
        shares = shares or share
        fits.append(z_fit)
        runs.append({"seed": seed, **decode_position(z_fit, z_val, ff_fit, ff_val), "fit_s": secs})
        print(f"    {name} seed {seed}: {runs[-1]['cm_k_by_median']:.2f} / {runs[-1]['cm_k_by_r2']:.2f} cm "
              f"({secs:.0f} s)", flush=True)
    row: dict[str, Any] = {"method": name, "changes": CANDIDATES[name], "v_scale": flow_scale,
                           "input_norm_share": shares, "command": command}
    for tag in ("k_by_median", "k_by_r2"):
        v = np.array([r[f"cm_{tag}"] for r in runs])
        row[f"cm_{tag}"] = f"{v.mean():.2f} ± {v.std():.2f}"
        row[f"cm_{tag}_mean"], row[f"cm_{tag}_sd"] = float(v.mean()), float(v.std())
    row["consistency"] = seed_consistency(fits, ff_fit)["mean"] if len(seeds) > 1 else None
    row.update(per_seed=runs, seconds=time.perf_counter() - t0)
    print(f"  {name}: {row['cm_k_by_median']} / {row['cm_k_by_r2']} cm, shares "
          + ", ".join(f"{k} {v:.3f}" for k, v in shares.items()), flush=True)
    return row


def merge(rows: list[dict[str, Any]], x: dict[str, Any], split: str = "inner") -> None:
    """Merge ``rows`` into benchmarks/results/exp_rat_flowuse.json by (split, method); the input per split."""
    path = RESULTS / "exp_rat_flowuse.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    keep = {(r.get("split", "inner"), r["method"]): {"split": "inner", **r} for r in old.get("rows", [])}
    keep.update({(split, r["method"]): {**r, "split": split} for r in rows})
    inputs = {**old.get("inputs", {"inner": old["input"]} if "input" in old else {}), split: x}
    write_json("exp_rat_flowuse", {"splits": SPLITS, "inputs": inputs, "rows": list(keep.values())})


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Score the chosen candidates beside the input, print them and merge them into the JSON."""
    import torch

    from exp_rat_screen import inner_fields
    from seed_stability import decode_position, rat_flow_fields

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..n-1")
    parser.add_argument("--only", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES)[:5])
    parser.add_argument("--split", choices=list(SPLITS), default="inner",
                        help="inner: the screen (choices); protocol: the benchmark's split, once, for the chosen one")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ff_fit, ff_val = inner_fields() if args.split == "inner" else rat_flow_fields()
    x = decode_position(ff_fit["x"].values, ff_val["x"].values, ff_fit, ff_val)
    print(f"  input PCA-10: {x}", flush=True)
    command = "python benchmarks/exp_rat_flowuse.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    rows = []
    for name in args.only:
        rows.append(run(name, tuple(range(args.seeds)), ff_fit, ff_val, command))
        merge(rows, x, args.split)  # after every candidate, so an interrupted screen keeps what it measured
    print_table(rows, ["method", "v_scale", "cm_k_by_median", "cm_k_by_r2", "consistency", "seconds"])
    return rows


if __name__ == "__main__":
    main()
