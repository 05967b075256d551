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
in ``--cache-dir``/<hash of the committed marble_widgets tree>, so embeddings of other package commits are never
reused (uncommitted package edits are not seen: clear the cache); run folds in separate processes, then once
more to pool them. Rows (velocity R^2 pooled over the folds per seed, mean ± SD over seeds; per-fold means) are
printed and merged into
benchmarks/results/exp_macaque_outer.json (outer) or exp_macaque_recipes_inner.json (inner), each row carrying
its command.

``--consistency``: each row also carries the seed-to-seed consistency of its held-out embeddings (>= 2 seeds) and
the rows go to exp_macaque_recipes_consistency.json (``_inner`` for inner splits), so the 2-seed rows the recipe
sources cite stay as they are. Consistency is CEBRA's measure as ``mw.analysis.consistency`` computes it for the
rat: the SAME held-out trials embedded by two seeds, each embedding averaged in behaviour bins (unit norm per bin),
R^2 of a least-squares affine map between the two, every ordered pair of seeds. Bins: reach condition (the 6
sectors the folds stratify on) x time from movement onset (one per 20-ms step, 34 steps: 204 bins), the behaviour
every trial repeats, as the rat's position x direction (hand velocity is what the rows decode already). Views:
``full`` (all latents); ``N axes`` (``--axes``, default 3: the N leading principal axes of each seed's training
rows, as the rat's rows); ``N behaviour axes`` (the leading axes of the training rows' condition x time means:
trial-averaged PCA, training labels only). Each view also scored sample by sample without bins (``<view>,
samples``: CEBRA's ``between="runs"``), with its chance level (10 random Gaussian embeddings of the held-out
shape); per row also the training rows' scores (what the rat's rows score), their variance spectrum and, for
ensembles side by side, each member's own columns. Per fold the mean over seed pairs; rows: mean ± SD over
folds and the lowest pair. Binned full-dimension scores of wide embeddings sit on a high chance level (d + 1
parameters per output fitted to 204 bins: about d / 203, 0.59 for 120 latents; sample by sample d / (n - 1)).
Committed run (cache filled first with ``--embed-only``, one process per fold): ``python
benchmarks/exp_macaque_recipes.py --split outer --folds 0 1 2 3 4 --only macaque_tuned macaque_ensemble_diverse6
--seeds 0 1 2 3 4 --consistency --axes 2 3 4 5 10``.
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
SHIPPED = ("macaque_tuned", "macaque_ensemble_concat", "macaque_ensemble_diverse", "macaque_ensemble_diverse6")


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


#: random Gaussian embeddings per chance level
N_CHANCE = 10
#: leading eigenvalues of the training rows' covariance kept per row (is there a gap after the Nth axis?)
N_SPECTRUM = 10


def behaviour_labelled(z: np.ndarray, ff: xr.Dataset, trials: xr.Dataset) -> xr.DataArray:
    """Embedding rows labelled with their time from movement onset and their trial's reach condition."""
    condition = trials["condition"].sel(trial=ff["trial"].values).values
    return xr.DataArray(np.asarray(z, dtype=float), dims=("sample", "latent"),
                        coords={"time": ("sample", ff["time"].values), "condition": ("sample", condition)})


def time_bins(times: np.ndarray, step: float) -> tuple[int, tuple[float, float]]:
    """One bin per time step: the number of bins and a range centred on the steps (robust to rounding)."""
    lo, hi = float(np.min(times)), float(np.max(times))
    return int(round((hi - lo) / step)) + 1, (lo - step / 2, hi + step / 2)


def _off_diagonal(scores: np.ndarray) -> dict[str, float]:
    off = scores[~np.eye(len(scores), dtype=bool)]
    return {"mean": float(np.mean(off)), "min": float(np.min(off)), "max": float(np.max(off))}


def seed_consistency(embeddings: list[np.ndarray], ff: xr.Dataset, trials: xr.Dataset) -> dict[str, float]:
    """Consistency over every ordered pair of embeddings of the same samples, binned by condition x time."""
    from marble_widgets.analysis import consistency

    bins, lo_hi = time_bins(ff["time"].values, trials.attrs["bin_size"])
    named = {str(i): behaviour_labelled(z, ff, trials) for i, z in enumerate(embeddings)}
    return _off_diagonal(consistency(named, "time", by="condition", bins=bins, range=lo_hi).values)


def runs_consistency(embeddings: list[np.ndarray]) -> dict[str, float]:
    """CEBRA's ``consistency_score(between="runs")``: affine R^2 sample by sample, every ordered pair, no labels."""
    from sklearn.linear_model import LinearRegression

    scores = np.array([[LinearRegression().fit(a, b).score(a, b) if i != j else np.nan
                        for j, b in enumerate(embeddings)] for i, a in enumerate(embeddings)])
    return _off_diagonal(scores)


#: a part's labels: its flow field (trial and time per sample) and its trials (reach condition, bin size)
Labels = tuple[xr.Dataset, xr.Dataset]


def behaviour_axes(z: np.ndarray, labels: Labels, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre and ``n`` leading principal axes of the condition x time means of ``z`` (trial-averaged PCA)."""
    from marble_widgets.analysis import binned_means

    bins, lo_hi = time_bins(labels[0]["time"].values, labels[1].attrs["bin_size"])
    means = binned_means(behaviour_labelled(z, *labels), "time", bins, lo_hi, by="condition", normalize=False)
    means = means.values.reshape(-1, z.shape[1])
    centre = means.mean(axis=0)
    return centre, np.linalg.svd(means - centre, full_matrices=False)[2][:n].T


def on_axes(emb: dict[str, np.ndarray], part: str, n: int, fit: Labels | None = None) -> np.ndarray:
    """``emb[part]`` on the ``n`` leading principal axes of the training rows ``emb["fit"]`` (of their condition x
    time means when their labels ``fit`` are given)."""
    if fit is None:
        return projected(emb, n)[part]
    centre, basis = behaviour_axes(emb["fit"], fit, n)
    return (emb[part] - centre) @ basis


def view_scores(embs: list[dict[str, np.ndarray]], part: str, held: Labels, fit: Labels,
                axes: tuple[int, ...] = (3,)) -> dict[str, dict[str, float]]:
    """Binned and label-free consistency of ``part`` (labelled by ``held``) in every view.

    ``full``: all latents. ``N axes``: each embedding on the N leading principal axes of its own training rows
    (``fit``), as the rat's. ``N behaviour axes``: on the N leading principal axes of its training rows' condition
    x time means (``fit`` labels; trial-averaged PCA, the usual view of motor cortex).
    """
    views = {"full": (None, False), **{f"{n} axes": (n, False) for n in axes},
             **{f"{n} behaviour axes": (n, True) for n in axes}}
    out = {}
    for name, (n, behaviour) in views.items():
        zs = [e[part] if n is None else on_axes(e, part, n, fit if behaviour else None) for e in embs]
        out[name] = seed_consistency(zs, *held)
        out[f"{name}, samples"] = runs_consistency(zs)
    return out


def chance_scores(shapes: tuple[tuple[int, int], tuple[int, int]], held: Labels, fit: Labels,
                  axes: tuple[int, ...] = (3,), n: int = N_CHANCE) -> dict[str, dict[str, float]]:
    """The chance level of :func:`view_scores`: ``n`` random Gaussian embeddings of the (held, fit) ``shapes``."""
    rng = np.random.default_rng(0)
    embs = [{"held": rng.standard_normal(shapes[0]), "fit": rng.standard_normal(shapes[1])} for _ in range(n)]
    return view_scores(embs, "held", held, fit, axes)


def spectrum(z: np.ndarray, n: int = N_SPECTRUM) -> list[float]:
    """Fraction of the variance on each of the ``n`` leading principal axes."""
    ev = np.linalg.svd(z - z.mean(axis=0), compute_uv=False) ** 2
    return (ev[:n] / ev.sum()).tolist()


def member_columns(recipe: Recipe, width: int) -> list[slice]:
    """Each member's columns of an ensemble side by side (none for single models or averaged members)."""
    ens = recipe.extra.get("ensemble", {})
    if ens.get("combine") != "concat":
        return []
    n = len(ens.get("members", ())) or ens["n_members"]
    return [slice(i * width // n, (i + 1) * width // n) for i in range(n)]


def split_consistency(split: str, names: list[str], seeds: list[int], cache: Path, axes: tuple[int, ...] = (3,),
                      ) -> dict[str, dict[str, Any]]:
    """Per row (candidate x own/support): seed-to-seed consistency of the held-out embeddings, chance, members.

    Also the training rows' consistency (what the rat's rows score) and their variance spectrum (mean over seeds).
    """
    parts = split_parts(split)
    (fit_ff,), (held_ff,) = recipe_flow_fields(recipes.get("macaque_tuned"), *parts)
    fit, held = (fit_ff, parts[0]), (held_ff, parts[1])
    chance: dict[tuple, dict] = {}
    out = {}
    for name in names:
        embs = [cached_embedding(split, name, s, parts, cache) for s in seeds]
        members = [] if name in PROJECTED else member_columns(candidate(name), embs[0]["fit"].shape[1])
        for mode in ("own", "support"):
            shapes = (embs[0][mode].shape, embs[0]["fit"].shape)
            if shapes not in chance:
                chance[shapes] = chance_scores(shapes, held, fit, axes)
            out[f"package: {name} ({mode})"] = {
                **view_scores(embs, mode, held, fit, axes), "chance": chance[shapes],
                "training rows": view_scores(embs, "fit", fit, fit, axes),
                "spectrum": np.mean([spectrum(e["fit"]) for e in embs], axis=0).tolist(),
                "members": [view_scores([{k: v[:, c] for k, v in e.items()} for e in embs], mode, held, fit, axes)
                            for c in members]}
    return out


def consistency_summary(per_fold: list[Any]) -> Any:
    """Mean ± SD over folds of each fold's mean over seed pairs, and the lowest pair, for every score."""
    first = per_fold[0]
    if isinstance(first, list) and first and not isinstance(first[0], dict):  # a spectrum
        return np.mean(per_fold, axis=0).tolist()
    if "mean" in first:
        means = [f["mean"] for f in per_fold]
        return {"mean": float(np.mean(means)), "sd": float(np.std(means)), "per_fold": means,
                "min": float(min(f["min"] for f in per_fold)), "max": float(max(f["max"] for f in per_fold))}
    if isinstance(first, list):
        return [consistency_summary([f[i] for f in per_fold]) for i in range(len(first))]
    return {k: consistency_summary([f[k] for f in per_fold]) for k in first}


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


def print_consistency(rows: list[dict[str, Any]]) -> None:
    """One line per row and view: held-out consistency mean ± SD over folds (lowest pair), chance, training rows,
    members' means."""
    lines = []
    for r in rows:
        cons = r.get("consistency")
        for view in ([*cons["chance"]] if cons else []):
            lines.append({"method": r["method"], "view": view, "consistency": _pm(cons[view]),
                          "lowest pair": cons[view]["min"], "chance (max)": f"{cons['chance'][view]['mean']:.3f} "
                          f"({cons['chance'][view]['max']:.3f})", "training rows": _pm(cons["training rows"][view]),
                          "members": " ".join(f"{m[view]['mean']:.3f}" for m in cons["members"])})
    print_table(lines, ["method", "view", "consistency", "lowest pair", "chance (max)", "training rows", "members"])


def _pm(score: dict[str, Any]) -> str:
    return f"{score['mean']:.3f} ± {score['sd']:.3f}"


def code_version() -> str:
    """Content hash of the committed ``marble_widgets`` tree (12 hex digits; ``unversioned`` outside git)."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD:marble_widgets"], cwd=Path(__file__).resolve().parents[1],
                             capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unversioned"
    return out.stdout.strip()[:12]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Embed (or read cached) every candidate on every fold, print the pooled rows and merge them."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["outer", "inner"], default="outer")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--only", nargs="+", default=list(SHIPPED), choices=[*SHIPPED, *CANDIDATES, *PROJECTED])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--embed-only", action="store_true", help="fill the cache, no rows (one process per fold)")
    parser.add_argument("--consistency", action="store_true",
                        help="rows also carry the seed-to-seed consistency (exp_macaque_recipes_consistency*.json)")
    parser.add_argument("--axes", type=int, nargs="+", default=[3],
                        help="with --consistency: also score each embedding on this many leading principal axes")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "marble_widgets_bench" / "macaque_recipes")
    args = parser.parse_args(argv)
    args.cache_dir = args.cache_dir / code_version()
    torch.set_num_threads(1)
    if args.consistency and len(args.seeds) < 2:
        parser.error("--consistency compares seeds: give at least 2 (--seeds 0 1 2 3 4)")
    truths, preds, consistencies = [], [], []
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
        if args.consistency:
            consistencies.append(split_consistency(f"{args.split}{fold}", args.only, args.seeds, args.cache_dir,
                                                   tuple(args.axes)))
    if args.embed_only:
        return []
    command = shlex.join(["python", "benchmarks/exp_macaque_recipes.py", *(argv if argv is not None else sys.argv[1:])])
    rows = pooled_rows(truths, preds, args.folds, args.seeds, command)
    for r in rows:
        r["split"] = args.split
    print_table(rows, ["method", "r2_mean", "r2_sd", "per_fold"])
    out = RESULTS / ("exp_macaque_outer.json" if args.split == "outer" else "exp_macaque_recipes_inner.json")
    if args.consistency:
        for r in rows:
            if r["method"] in consistencies[0]:
                r["consistency"] = consistency_summary([c[r["method"]] for c in consistencies])
        print_consistency(rows)
        out = RESULTS / f"exp_macaque_recipes_consistency{'' if args.split == 'outer' else '_inner'}.json"
    merge_rows(rows, out)
    return rows


if __name__ == "__main__":
    main()
