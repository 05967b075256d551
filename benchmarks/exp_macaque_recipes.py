"""Macaque recipes measured through the package (issue 16): recipe -> flow fields -> fit -> transform(support=).

Every row is what a user gets from the public API: ``recipe.builders()`` fitted on the training trials (one
condition: labels unused) and applied to the held-out trials, ``recipe.model()`` / ``recipe.ensemble()`` fitted
on the training flow field(s), held-out trials embedded on their own graph (``own``) or on one graph with the
training trials (``support``: ``transform(test, support=train)``). Decoder: ``fidelity.ridge_velocity``
(standardised RidgeCV, alpha by trial-grouped CV on the training trials). Baseline in the same run: the PCA-5
input decoded directly (row ``package: input PCA-5``; every row of this script starts with ``package:``).

Splits: ``outerF`` = fidelity.py's trial-wise fold F held out (the confirmation: never used for a choice);
``innerF`` = outer fold F's training trials with a stratified fifth held out (``exp_macaque_screen.inner_split``
for F = 0): the candidates of :data:`CANDIDATES` are chosen on the inner splits of all 5 outer folds.

Run: ``python benchmarks/exp_macaque_recipes.py --split outer --folds 0 1 2 3 4`` (``--only`` names
recipes/candidates, ``--seeds`` the model/ensemble seeds). Embeddings are cached per (split, candidate, seed)
in ``--cache-dir`` (run folds in separate processes, then once more to pool them). Rows (velocity R^2 pooled
over the folds per seed, mean ± SD over seeds; per-fold means) are printed and merged into
benchmarks/results/exp_macaque_outer.json (outer) or exp_macaque_recipes_inner.json (inner), each row carrying
its command.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, merge_rows, print_table  # noqa: E402

from marble_widgets import recipes  # noqa: E402
from marble_widgets.recipes import Recipe  # noqa: E402

_DIVERSE = recipes.get("macaque_ensemble_diverse")


def _variant(name: str, members: list[tuple[dict[str, Any], dict[str, Any]]]) -> Recipe:
    """The diverse recipe with other members: (flow-field changes, MARBLE changes) per member."""
    extra = {**_DIVERSE.extra, "member_flow_fields": tuple(f for f, _ in members),
             "ensemble": {**_DIVERSE.extra["ensemble"], "members": tuple(m for _, m in members)}}
    return dataclasses.replace(_DIVERSE, name=name, source="candidate of benchmarks/exp_macaque_recipes.py",
                               notes="", extra=extra)


_FIVE = list(zip(_DIVERSE.extra["member_flow_fields"], _DIVERSE.extra["ensemble"]["members"]))
#: candidates screened on the inner splits (choices made on training trials only), beside the shipped recipes
CANDIDATES: dict[str, Recipe] = {
    "diverse x2 seeds": _variant("diverse x2 seeds", _FIVE * 2),
    "diverse + 150 ms": _variant("diverse + 150 ms", _FIVE + [({"smooth": 0.15}, {})]),
    "diverse + 150 ms + order 1 at 50 ms": _variant(
        "diverse + 150 ms + order 1 at 50 ms", _FIVE + [({"smooth": 0.15}, {}), ({"smooth": 0.05}, {"order": 1})]),
    "diverse + 150 ms + order 1 at 50 ms + k 15 at 50 ms": _variant(
        "diverse + 150 ms + order 1 at 50 ms + k 15 at 50 ms",
        _FIVE + [({"smooth": 0.15}, {}), ({"smooth": 0.05}, {"order": 1}), ({"smooth": 0.05}, {"k": 15})]),
    "diverse + no diffusion + hidden 256": _variant(
        "diverse + no diffusion + hidden 256", _FIVE + [({}, {"diffusion": False}), ({}, {"hidden_channels": (256,)})]),
}
#: candidates without new fits: the diverse ensemble cut to the N leading principal axes of its training
#: embedding, i.e. ``recipe.ensemble(n_components=N)`` (same members and rotations; the projection is
#: ``ensemble.principal_axes`` of the same combined training embedding, applied to the held-out rows)
PROJECTED: dict[str, tuple[str, int]] = {f"diverse, {n} leading axes": ("macaque_ensemble_diverse", n)
                                         for n in (10, 20, 40, 60)}
SHIPPED = ("macaque_tuned", "macaque_ensemble_concat", "macaque_ensemble_diverse")


def candidate(name: str) -> Recipe:
    """A shipped recipe or a screening candidate by name."""
    return CANDIDATES[name] if name in CANDIDATES else recipes.get(name)


def split_parts(split: str) -> tuple[xr.Dataset, xr.Dataset]:
    """Fit and held-out trials of ``outerF`` (fidelity's fold F held out) or ``innerF`` (a fifth of its training)."""
    from fidelity import MC_FOLDS, SEED, trial_folds

    from marble_widgets.datasets import mc_maze_small

    kind, fold = split[:5], int(split[5:])
    ds = mc_maze_small(bin_size=recipes.get("macaque_paper").extra["bin_size"])
    outer = trial_folds(ds["condition"].values)
    if kind == "outer":
        return ds.isel(trial=np.flatnonzero(outer != fold)), ds.isel(trial=np.flatnonzero(outer == fold))
    tr = ds.isel(trial=np.flatnonzero(outer != fold))
    inner = trial_folds(tr["condition"].values, MC_FOLDS, SEED + 1)
    return tr.isel(trial=np.flatnonzero(inner != 0)), tr.isel(trial=np.flatnonzero(inner == 0))


def recipe_flow_fields(recipe: Recipe, fit: xr.Dataset, val: xr.Dataset) -> tuple[list[xr.Dataset], list[xr.Dataset]]:
    """The recipe's flow fields of both parts, one condition (labels unused), preprocessing fitted on ``fit``."""
    builders = recipe.builders(condition=None)
    return [b.fit_transform(fit) for b in builders], [b.transform(val) for b in builders]


def embed(recipe: Recipe, seed: int, train: list[xr.Dataset], test: list[xr.Dataset]) -> dict[str, np.ndarray]:
    """Fit the recipe's model (or ensemble) with ``seed``; the training rows and the held-out rows both ways."""
    quiet = {**recipe.marble, "verbose": False}
    if "ensemble" in recipe.extra:
        model = recipe.ensemble(seed=seed, base=quiet).fit(train)
        fields, held, support = train, test, train
    else:
        model = recipe.model(seed=seed, verbose=False).fit(train[0])
        fields, held, support = train[0], test[0], train[0]
    return {"fit": model.transform(fields).values, "own": model.transform(held).values,
            "support": model.transform(held, support=support).values}


def cached_embedding(split: str, name: str, seed: int, parts: tuple[xr.Dataset, xr.Dataset], cache: Path,
                     ) -> dict[str, np.ndarray]:
    """:func:`embed` of one (split, candidate, seed), read from ``cache`` when there."""
    if name in PROJECTED:
        return projected(cached_embedding(split, PROJECTED[name][0], seed, parts, cache), PROJECTED[name][1])
    path = cache / f"{split}_{name.replace(' ', '_')}_{seed}.npz"
    if path.exists():
        return dict(np.load(path))
    t0 = time.perf_counter()
    recipe = candidate(name)
    train, test = recipe_flow_fields(recipe, *parts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = embed(recipe, seed, train, test)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    print(f"  {split} {name} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def projected(emb: dict[str, np.ndarray], n_components: int) -> dict[str, np.ndarray]:
    """Every part of an ensemble's embedding on the ``n_components`` leading axes of its training rows."""
    from marble_widgets.ensemble import principal_axes

    centre, axes = principal_axes(emb["fit"], n_components)
    return {part: (z - centre) @ axes for part, z in emb.items()}


def split_predictions(split: str, names: list[str], seeds: list[int], cache: Path,
                      ) -> tuple[np.ndarray, dict[str, list[np.ndarray]]]:
    """Held-out velocity and, per row (candidate x own/support), one ridge prediction per seed."""
    from fidelity import ridge_velocity

    parts = split_parts(split)
    ff_fit, ff_val = recipe_flow_fields(recipes.get("macaque_tuned"), *parts)
    ff_fit, ff_val = ff_fit[0], ff_val[0]
    direct = ridge_velocity(ff_fit["x"].values, ff_fit, ff_val["x"].values, ff_val)
    preds = {"package: input PCA-5": [direct] * len(seeds)}
    for name in names:
        embs = [cached_embedding(split, name, s, parts, cache) for s in seeds]
        for mode in ("own", "support"):
            preds[f"package: {name} ({mode})"] = [ridge_velocity(e["fit"], ff_fit, e[mode], ff_val) for e in embs]
    return ff_val["hand_velocity"].values, preds


def pooled_rows(truths: list[np.ndarray], preds: list[dict[str, list[np.ndarray]]], folds: list[int], seeds: list[int],
                command: str) -> list[dict[str, Any]]:
    """Velocity R^2 pooled over the folds per seed, mean ± SD over seeds; per-fold means (sklearn's r2_score)."""
    from sklearn.metrics import r2_score

    truth, rows = np.concatenate(truths), []
    for name in preds[0]:
        pooled = [float(r2_score(truth, np.concatenate([p[name][g] for p in preds]))) for g in range(len(seeds))]
        per_fold = [float(np.mean([r2_score(t, g) for g in p[name]])) for t, p in zip(truths, preds)]
        mode = "support" if name.endswith("(support)") else "own"
        rows.append({"method": name, "mode": mode, "groups": [f"seed {s}" for s in seeds], "folds": folds,
                     "r2_mean": float(np.mean(pooled)), "r2_sd": float(np.std(pooled)), "per_group": pooled,
                     "per_fold": per_fold, "command": command})
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Embed (or read cached) every candidate on every fold, print the pooled rows and merge them."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["outer", "inner"], default="outer")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--only", nargs="+", default=list(SHIPPED), choices=[*SHIPPED, *CANDIDATES, *PROJECTED])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--embed-only", action="store_true", help="fill the cache, no rows (one process per fold)")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "marble_widgets_bench" / "macaque_recipes")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    truths, preds = [], []
    for fold in args.folds:
        if args.embed_only:
            parts = split_parts(f"{args.split}{fold}")
            for name in args.only:
                for s in args.seeds:
                    cached_embedding(f"{args.split}{fold}", name, s, parts, args.cache_dir)
            continue
        t, p = split_predictions(f"{args.split}{fold}", args.only, args.seeds, args.cache_dir)
        truths.append(t)
        preds.append(p)
    if args.embed_only:
        return []
    command = shlex.join(["python", "benchmarks/exp_macaque_recipes.py", *(argv if argv is not None else sys.argv[1:])])
    rows = pooled_rows(truths, preds, args.folds, args.seeds, command)
    for r in rows:
        r["split"] = args.split
    print_table(rows, ["method", "r2_mean", "r2_sd", "per_fold"])
    out = RESULTS / ("exp_macaque_outer.json" if args.split == "outer" else "exp_macaque_recipes_inner.json")
    merge_rows(rows, out)
    return rows


if __name__ == "__main__":
    main()
