"""Outer confirmation of the macaque member screen (issue 16): trial-wise folds, baselines and recipes in one run.

For each outer fold of ``fidelity.py`` (the fold's trials held out, never used for a choice), the members named
in :data:`ROWS` are fitted on the training trials once (cached by ``exp_macaque_members.member``: macaque_tuned
plus the member's changes, one graph, labels unused) and combined into every row: the PCA-5 input and the
no-MARBLE baselines (:func:`neuron_space_baselines`), single ``macaque_tuned`` models and
``macaque_ensemble_concat`` (held-out trials on their own graph, as ``fidelity.py``), and the candidates chosen on
the inner split (``exp_macaque_members.py``), held-out trials on their own graph (``own``) or on one graph with the
unlabelled training trials (``joint``). Velocity R^2 of ``fidelity.ridge_velocity``, pooled over the folds run
(as ``fidelity.py``) per seed group, mean ± SD over the groups; per-fold R^2 (mean over groups) too. Members are
put side by side unrotated (the recipe's ensemble rotates them; the standardised ridge barely notices).

Run: ``python benchmarks/exp_macaque_outer.py --folds 0 1 2 3 4`` (``--fit-only SPEC --folds F`` first to fit
members in parallel processes); prints a table and merges its rows (by method and folds) into
benchmarks/results/exp_macaque_outer.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, merge_rows, print_table  # noqa: E402


#: row name -> (how held-out trials are embedded ["+rates": the neuron-space flow field beside], one member spec
#: per seed group; see exp_macaque_members)
ROWS: dict[str, tuple[str, list[str]]] = {
    "macaque_tuned": ("own", [f"tuned:{s}" for s in range(6)]),
    "macaque_tuned (joint graph)": ("joint", [f"tuned:{s}" for s in range(6)]),
    "macaque_ensemble_concat (3 tuned, own graph)": ("own", ["tuned:0-2", "tuned:3-5"]),
    "3 tuned side by side (joint graph)": ("joint", ["tuned:0-2", "tuned:3-5"]),
    "tuned + 50 ms (own graph)": ("own", [f"tuned:{s},s50:{s}" for s in range(3)]),
    "tuned + 50 ms (joint graph)": ("joint", [f"tuned:{s},s50:{s}" for s in range(3)]),
    "tuned + order 1 + 50 ms (own graph)": ("own", [f"tuned:{s},order1:{s},s50:{s}" for s in range(3)]),
    "tuned + order 1 + 50 ms (joint graph)": ("joint", [f"tuned:{s},order1:{s},s50:{s}" for s in range(3)]),
    "tuned + k 15 + k 50 + 50 ms + order 1 (own graph)": (
        "own", [f"tuned:{s},k15:{s},k50:{s},s50:{s},order1:{s}" for s in range(2)]),
    "tuned + k 15 + k 50 + 50 ms + order 1 (joint graph)": (
        "joint", [f"tuned:{s},k15:{s},k50:{s},s50:{s},order1:{s}" for s in range(2)]),
    "tuned + order 1 + 50 ms (joint graph) + rates + differences (100 ms)": (
        "joint+rates", [f"tuned:{s},order1:{s},s50:{s}" for s in range(3)]),
}


def neuron_space_baselines(parts: tuple[Any, Any], ff_fit: Any, ff_val: Any) -> dict[str, list[np.ndarray]]:
    """Baselines without MARBLE, same samples and decoder: the flow field in neuron space and multi-scale inputs.

    ``rates`` = the smoothed spike counts at each sample (all units, no PCA); ``rates + differences`` = the flow
    field itself before the PCA (positions and forward-difference vectors); ``input PCA-5 at 50 + 100 ms`` = the
    inputs of the multi-scale MARBLE members side by side (each PCA fitted on the fit trials), the matched baseline
    of the tuned + 50-ms ensembles.
    """
    from fidelity import flow_pair, ridge_velocity

    out = {}
    for smooth in (0.05, 0.1):
        a, b = flow_pair(*parts, None, smooth, condition="condition")
        if not (np.array_equal(a["trial"].values, ff_fit["trial"].values)
                and np.allclose(a["time"].values, ff_fit["time"].values)):
            raise RuntimeError("neuron-space flow field has other samples than the PCA-5 one; cannot compare rows.")
        ms = int(smooth * 1000)
        out[f"rates ({ms} ms)"] = [ridge_velocity(a["x"].values, ff_fit, b["x"].values, ff_val)]
        out[f"rates + differences ({ms} ms)"] = [ridge_velocity(
            np.hstack([a["x"].values, a["v"].values]), ff_fit, np.hstack([b["x"].values, b["v"].values]), ff_val)]
    a, b = flow_pair(*parts, ff_fit.sizes["dim"], 0.05, condition="condition")
    out["input PCA-5 at 50 + 100 ms"] = [ridge_velocity(np.hstack([a["x"].values, ff_fit["x"].values]), ff_fit,
                                                        np.hstack([b["x"].values, ff_val["x"].values]), ff_val)]
    out["input PCA-5 at 50 + 100 ms, positions + vectors"] = [ridge_velocity(
        np.hstack([a["x"].values, ff_fit["x"].values, a["v"].values, ff_fit["v"].values]), ff_fit,
        np.hstack([b["x"].values, ff_val["x"].values, b["v"].values, ff_val["v"].values]), ff_val)]
    return out


def fold_predictions(fold: int, rows: dict[str, tuple[str, list[str]]], cache: Path,
                     ) -> tuple[np.ndarray, dict[str, list[np.ndarray]]]:
    """Held-out velocity and, per row, one prediction per seed group on outer fold ``fold`` (members cached)."""
    from exp_macaque_members import flow_fields, member, parse_members, split_trials
    from fidelity import flow_pair, ridge_velocity

    split = f"outer{fold}"
    parts = split_trials(split)
    ff_fit, ff_val = flow_fields(*parts, {})
    preds: dict[str, list[np.ndarray]] = {
        "input PCA-5": [ridge_velocity(ff_fit["x"].values, ff_fit, ff_val["x"].values, ff_val)]}
    preds.update(neuron_space_baselines(parts, ff_fit, ff_val))
    raw = [np.hstack([f["x"].values, f["v"].values]) for f in flow_pair(*parts, None, 0.1, condition="condition")]
    for name, (how, specs) in rows.items():
        mode, _, extra = how.partition("+")
        preds[name] = []
        for spec in specs:
            group = [member(split, *m, parts, cache) for m in parse_members(spec)]
            z_fit, z_val = np.hstack([g["fit"] for g in group]), np.hstack([g[mode] for g in group])
            if extra == "rates":  # the neuron-space flow field beside the embedding: does MARBLE add to it?
                z_fit, z_val = np.hstack([z_fit, raw[0]]), np.hstack([z_val, raw[1]])
            preds[name].append(ridge_velocity(z_fit, ff_fit, z_val, ff_val))
    return ff_val["hand_velocity"].values, preds


def summarise(truths: list[np.ndarray], preds: list[dict[str, list[np.ndarray]]], folds: list[int],
              rows_plan: dict[str, tuple[str, list[str]]]) -> list[dict[str, Any]]:
    """Pooled R^2 over the folds per seed group, then mean ± SD over groups; per-fold means too."""
    from sklearn.metrics import r2_score

    rows = []
    truth = np.concatenate(truths)
    for name in preds[0]:
        n = len(preds[0][name])
        pooled = [float(r2_score(truth, np.concatenate([p[name][g] for p in preds]))) for g in range(n)]
        per_fold = [float(np.mean([r2_score(t, p[name][g]) for g in range(n)])) for t, p in zip(truths, preds)]
        mode, groups = rows_plan.get(name, ("none", ["no MARBLE"]))
        rows.append({"method": name, "mode": mode, "groups": groups, "folds": folds,
                     "r2_mean": float(np.mean(pooled)), "r2_sd": float(np.std(pooled)), "per_group": pooled,
                     "per_fold": per_fold})
    return rows


def merge(rows: list[dict[str, Any]], path: Path = RESULTS / "exp_macaque_outer.json") -> None:
    """Merge rows by (method, folds) into the JSON; other rows kept."""
    merge_rows(rows, path)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Fit/load members per fold, print the pooled rows and merge them into the JSON."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "marble_widgets_bench" / "macaque_members")
    parser.add_argument("--fit-only", metavar="SPEC", help="only fit and cache these members, e.g. tuned:0-5 "
                        "(run one process per fold to fit in parallel)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.fit_only:
        from exp_macaque_members import member, parse_members, split_trials

        for fold in args.folds:
            parts = split_trials(f"outer{fold}")
            for m in parse_members(args.fit_only):
                member(f"outer{fold}", *m, parts, args.cache_dir)
        return []
    plan = {name: ROWS[name] for name in args.rows}
    truths, preds = [], []
    for fold in args.folds:
        t, p = fold_predictions(fold, plan, args.cache_dir)
        truths.append(t)
        preds.append(p)
        print(f"fold {fold} done", flush=True)
    rows = summarise(truths, preds, args.folds, plan)
    print_table(rows, ["method", "mode", "r2_mean", "r2_sd", "per_fold"])
    merge(rows)
    return rows


if __name__ == "__main__":
    main()
