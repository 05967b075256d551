"""Seed-stability benchmark, parts ``ensemble`` and ``recipes``: seed ensembles and every shipped rat recipe.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from seed_stability_common import (
    _jsonable,
    chance_consistency,
    decode_position,
    fit_embed,
    rat_flow_fields,
    RECOMMENDED,
    seed_consistency,
    settings_for,
)
from seed_stability_rat import _as_row

from marble_widgets import recipes


#: part "ensemble": (members per ensemble, ensemble seeds); members of ensemble e: seeds e*m .. e*m+m-1, so
#: both shapes come from the same 15 fits per output dimension
ENSEMBLE_SHAPES = ((3, 5), (5, 3))
#: the paper recipe's single models in part "ensemble": 3 seeds, 32-D only (its fits took 5-6 min each on the
#: shared machine; its 3-D consistency over 5 seeds is part "consistency_3d")
PAPER_SEEDS_ENSEMBLE_PART = range(3)
#: how the members are matched for the Procrustes rotations: training samples row by row, or their
#: mean embeddings in 100 position bins per running direction
ENSEMBLE_ALIGN: dict[str, dict[str, Any]] = {"rows": {}, "position bins": {"align_on": "position", "by": "direction"}}


def _cache_name(params: dict[str, Any], seed: int) -> str:
    """File name of one fit's embeddings: a hash of the settings (epochs, dims ... all of them) and the seed."""
    import hashlib
    import json

    key = json.dumps(_jsonable({k: v for k, v in params.items() if k != "seed"}), sort_keys=True, default=str)
    return f"fit_{hashlib.sha1(key.encode()).hexdigest()[:16]}_s{seed}.npz"


def cached_fit(ff_tr: xr.Dataset, ff_te: xr.Dataset, params: dict[str, Any], seed: int,
               cache_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_embed`'s two embeddings, read from ``cache_dir`` when this exact fit was run before."""
    path = None if cache_dir is None else Path(cache_dir) / _cache_name(params, seed)
    if path is not None and path.is_file():
        with np.load(path) as f:
            return f["z_tr"], f["z_te"]
    z_tr, z_te, info = fit_embed(ff_tr, ff_te, params, seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, z_tr=z_tr, z_te=z_te)
    print(f"  fitted seed {seed} ({info['fit_s']:.0f} s)", flush=True)
    return z_tr, z_te


def combine_members(members: list[tuple[np.ndarray, np.ndarray]], ff_tr: xr.Dataset,
                    align: dict[str, Any], n_components: int | None = None,
                    combine: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """What :class:`marble_widgets.ensemble.MARBLEEnsemble` does with its members' embeddings.

    Rotations fitted on the training embeddings only (:func:`marble_widgets.ensemble.align_members`),
    applied to both parts, members averaged (or rotated side by side, ``combine="concat"``); with ``n_components``
    both parts projected on the leading principal axes of the combined training embedding.
    ``tests/test_ensemble.py`` checks the estimator equals this.
    """
    from marble_widgets.ensemble import MARBLEEnsemble, align_members, combine_aligned

    helper = MARBLEEnsemble(**align)
    labels, by = helper._labels(ff_tr)
    _, fits = align_members([helper._points(z_tr, labels, by) for z_tr, _ in members], helper.n_iter)
    rot, shift = [r for r, _ in fits], [t for _, t in fits]
    z_tr, z_te = (combine_aligned([z[part] for z in members], rot, shift, combine) for part in (0, 1))
    return (z_tr, z_te) if n_components is None else project(z_tr, z_te, n_components)


def project(z_tr: np.ndarray, z_te: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Both parts on the ``n_components`` leading principal axes of the training embedding."""
    from marble_widgets.ensemble import principal_axes

    mean, axes = principal_axes(z_tr, n_components)
    return (z_tr - mean) @ axes, (z_te - mean) @ axes


def _decoding_row(name: str, runs: list[dict[str, Any]], embeddings: list[np.ndarray], ff_tr: xr.Dataset,
                  **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"method": name, **extra}
    for tag in ("k_by_median", "k_by_r2"):
        values = np.array([r[f"cm_{tag}"] for r in runs])
        row[f"cm_{tag}_mean"], row[f"cm_{tag}_sd"] = float(values.mean()), float(values.std())
    row.update(consistency=seed_consistency(embeddings, ff_tr), per_seed=runs)
    return row


def run_ensemble(shapes: tuple[tuple[int, int], ...], quick: bool, cache_dir: Path | None) -> dict[str, Any]:
    """Ensembles against single models, the paper's recipe and the input, in one run (rat, both k rules).

    ``shapes``: (members, ensembles) pairs. Single models: the recommended settings with every member's
    seed (0-14) and the paper's recipe with seeds 0-2. Ensembles: seeds 0..n_ensembles-1, disjoint members.
    Consistency: all ordered pairs of the seeds' / ensembles' training embeddings, out_dim as
    the recipe (32) and 3 (the paper's consistency models).
    """
    ff_tr, ff_te = rat_flow_fields()
    settings = settings_for("rat")
    rec, paper = settings[RECOMMENDED], settings["paper recipe (spec 2.4)"]
    if quick:
        rec, paper = {**rec, "epochs": 10}, {**paper, "epochs": 10}
    t0 = time.perf_counter()
    rows = [{"method": "input: PCA-10 (250 ms)", **_as_row(decode_position(ff_tr["x"].values, ff_te["x"].values,
                                                                           ff_tr, ff_te))}]
    n_fits = max(m * n for m, n in shapes)  # the single models are the members themselves
    for name, params, seeds, with_3d in (("paper recipe (spec 2.4)", paper, PAPER_SEEDS_ENSEMBLE_PART, False),
                                         (f"{RECOMMENDED}, single model", rec, range(n_fits), True)):
        seeds = range(2) if quick else seeds
        fits = [cached_fit(ff_tr, ff_te, params, s, cache_dir) for s in seeds]
        runs = [{"seed": s, **decode_position(*z, ff_tr, ff_te)} for s, z in zip(seeds, fits)]
        three = [cached_fit(ff_tr, ff_te, {**params, "out_dim": 3}, s, cache_dir)[0] for s in seeds] if with_3d else []
        rows.append(_decoding_row(name, runs, [z for z, _ in fits], ff_tr, n_models=1,
                                  consistency_3d=seed_consistency(three, ff_tr) if three else None))
        print(f"  {name}: {_summary(rows[-1])}", flush=True)
    members = {dim: [cached_fit(ff_tr, ff_te, {**rec, "out_dim": dim}, s, cache_dir) for s in range(n_fits)]
               for dim in (int(rec["out_dim"]), 3)}
    for n_members, n_ensembles in shapes:
        for label, align in ENSEMBLE_ALIGN.items():
            ens = {dim: [combine_members(m[e * n_members:(e + 1) * n_members], ff_tr, align)
                         for e in range(n_ensembles)] for dim, m in members.items()}
            full = ens[int(rec["out_dim"])]
            runs = [{"ensemble_seed": e, "member_seeds": list(range(e * n_members, (e + 1) * n_members)),
                     **decode_position(*z, ff_tr, ff_te)} for e, z in enumerate(full)]
            rows.append(_decoding_row(f"{RECOMMENDED}, ensemble of {n_members} (aligned on {label})", runs,
                                      [z for z, _ in full], ff_tr, consistency_3d=seed_consistency(
                                          [z for z, _ in ens[3]], ff_tr), n_models=n_members, align=align))
            print(f"  {rows[-1]['method']}: {_summary(rows[-1])}", flush=True)
    return {"rows": rows, "shapes": [list(s) for s in shapes], "seconds": time.perf_counter() - t0,
            "chance_3d": chance_consistency(ff_tr, 3), "quick": quick}


def _summary(row: dict[str, Any]) -> str:
    three = row.get("consistency_3d")
    return (f"{row['cm_k_by_median_mean']:.2f} ± {row['cm_k_by_median_sd']:.2f} / "
            f"{row['cm_k_by_r2_mean']:.2f} ± {row['cm_k_by_r2_sd']:.2f} cm, consistency "
            f"{row['consistency']['mean']:.3f}"
            + (f", 3-D {three['mean']:.3f} (min {three['min']:.3f})" if three else ""))


# --- the recipe table (part "recipes") ---
#: part "recipes": the recipe table's rat recipes as shipped, in one run with the input. Single-model recipes
#: over seeds 0..n-1 (the paper's over :data:`PAPER_SEEDS_ENSEMBLE_PART`: its fits are slow), ensemble recipes
#: over ensemble seeds 0..2 (members e*m .. e*m+m-1, shared with the single models through the cache)
RECIPE_PART = ("rat_paper", "rat_recommended", "rat_ensemble", "rat_ensemble_concat", "rat_consistent")
RECIPE_PART_ENSEMBLES = 3


def recipe_fits(name: str, ff_tr: xr.Dataset, ff_te: xr.Dataset, seeds: range,
                cache_dir: Path | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The recipe's embeddings of both parts, one per seed (single models) or ensemble seed (ensembles)."""
    recipe = recipes.get(name)
    params = dict(recipe.marble)
    if "ensemble" not in recipe.extra:
        return [cached_fit(ff_tr, ff_te, params, s, cache_dir) for s in seeds]
    settings = dict(recipe.extra["ensemble"])
    m = settings.pop("n_members")
    n_components, combine = settings.pop("n_components", None), settings.pop("combine", "mean")
    members = [cached_fit(ff_tr, ff_te, params, s, cache_dir) for s in range(m * len(seeds))]
    return [combine_members(members[e * m:(e + 1) * m], ff_tr, settings, n_components, combine) for e in seeds]


def run_recipes(names: tuple[str, ...], n_seeds: int, quick: bool, cache_dir: Path | None) -> dict[str, Any]:
    """Every named rat recipe as shipped: decoding both ways, consistency (own dimension and 3 leading axes)."""
    ff_tr, ff_te = rat_flow_fields()
    t0 = time.perf_counter()
    rows = [{"method": "input: PCA-10 (250 ms)", **_as_row(decode_position(ff_tr["x"].values, ff_te["x"].values,
                                                                           ff_tr, ff_te))}]
    for name in names:
        recipe = recipes.get(name)
        ensemble = "ensemble" in recipe.extra
        seeds = range(2 if quick else (RECIPE_PART_ENSEMBLES if ensemble else
                                       len(PAPER_SEEDS_ENSEMBLE_PART) if name == "rat_paper" else n_seeds))
        t1 = time.perf_counter()
        fits = recipe_fits(name, ff_tr, ff_te, seeds, cache_dir)
        runs = [{"seed": s, **decode_position(*z, ff_tr, ff_te)} for s, z in zip(seeds, fits)]
        three = [project(*z, 3)[0] if z[0].shape[1] > 3 else z[0] for z in fits]
        rows.append(_decoding_row(name, runs, [z for z, _ in fits], ff_tr, n_models=recipe.extra.get(
            "ensemble", {}).get("n_members", 1), out_dim=int(fits[0][0].shape[1]),
            consistency_3d=seed_consistency(three, ff_tr), seconds=time.perf_counter() - t1))
        print(f"  {name}: {_summary(rows[-1])}", flush=True)
    return {"rows": rows, "seconds": time.perf_counter() - t0, "chance_3d": chance_consistency(ff_tr, 3),
            "consistency_3d_means": "consistency of each embedding's 3 leading principal axes (fitted on its "
                                    "training part); for 3-D embeddings the embedding itself", "quick": quick}
