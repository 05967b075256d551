"""Seed-stability benchmark, shared part: the settings compared, the rat split, decoding and consistency.

Why: the rat, ensemble, recipe and macaque parts (``seed_stability_rat``, ``_ensembles``, ``_macaque``) and the
experiment scripts score embeddings the same way; ``benchmarks/seed_stability.py`` runs them and re-exports every name.
"""
from __future__ import annotations

import os
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

from marble_widgets import recipes  # noqa: E402


#: the recommended changes, applied to the tuned rat settings (and to the macaque recipe). Chosen
#: from exploratory 3-6-seed runs on this split (report of issue 16): a wider graph (k 200) makes
#: the embedding smoother, so k chosen by R^2 no longer costs median error; a cosine schedule with
#: the weight average of the second half makes the kept state independent of the epoch picked.
#: They are the recipe table's "rat_recommended" minus "rat_tuned".
STABLE_CHANGES: dict[str, Any] = {k: v for k, v in recipes.get("rat_recommended").marble.items()
                                  if recipes.get("rat_tuned").marble.get(k, "unset") != v}
#: the settings compared on the rat: name -> MARBLE parameters
RAT_SETTINGS: dict[str, dict[str, Any]] = {
    "paper recipe (spec 2.4)": dict(recipes.get("rat_paper").marble),
    "tuned on train part": dict(recipes.get("rat_tuned").marble),
}
RAT_INPUT = dict(recipes.get("rat_paper").flow_field)
#: the setting the recommended changes are applied to, and the name of the result
RECOMMENDED_BASE = "tuned on train part"
RECOMMENDED = "recommended"
PARTS = ("rat", "consistency_3d", "macaque", "ensemble", "recipes")
#: epochs at which the one-seed curve is measured
CURVE_EPOCHS = (10, 20, 40, 60, 80, 100)
#: random Gaussian embeddings for the chance level of the consistency
N_CHANCE = 10
POSITION_RANGE = (0.0, 1.6)  # metres: Buddy's track


# ============================================================================ rat
def rat_flow_fields(shuffle_seed: int | None = None) -> tuple[xr.Dataset, xr.Dataset]:
    """Flow fields of the training 80 % and test 20 % (preprocessing fitted on the training part).

    ``shuffle_seed``: permute the spike-count bins in time within each part first (behaviour
    kept in place) - the time-shuffled control.
    """
    from fidelity import flow_pair, rat_parts

    train, test = rat_parts()
    if shuffle_seed is not None:
        rng = np.random.default_rng(shuffle_seed)
        train, test = (part.assign(spike_counts=part["spike_counts"].isel(
            time=rng.permutation(part.sizes["time"])).assign_coords(time=part["time"]))
            for part in (train, test))
    return flow_pair(train, test, RAT_INPUT["n_components"], RAT_INPUT["smooth"])


def _latent(z: np.ndarray) -> xr.DataArray:
    return xr.DataArray(np.asarray(z), dims=("sample", "latent"))


def decode_position(z_tr: np.ndarray, z_te: np.ndarray, ff_tr: xr.Dataset, ff_te: xr.Dataset,
                    criteria: tuple[str, ...] = ("median_abs_error", "r2"),
                    y_tr: np.ndarray | None = None) -> dict[str, Any]:
    """Test median position error (cm) and the k used, with k chosen by each criterion."""
    from marble_widgets.analysis import train_test_decode

    y_tr = ff_tr["position"].values if y_tr is None else y_tr
    out: dict[str, Any] = {}
    for crit in criteria:
        res = train_test_decode(_latent(z_tr), y_tr, _latent(z_te), ff_te["position"].values, kind="knn",
                                metric="cosine", task="regression", k_criterion=crit)
        tag = "k_by_median" if crit == "median_abs_error" else "k_by_r2"
        out[f"cm_{tag}"] = float(res["median_abs_error"].values.ravel()[0]) * 100
        out[f"k_{tag}"] = int(res["k"].values[0])
    return out


def fit_embed(ff_tr: xr.Dataset, ff_te: xr.Dataset, params: dict[str, Any], seed: int,
              ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Fit MARBLE on the training flow field with ``seed``; embeddings of both parts and fit facts."""
    from marble_widgets import MARBLE

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MARBLE(**{**params, "seed": seed, "verbose": False}).fit(ff_tr)
        z_tr, z_te = model.transform(ff_tr).values, model.transform(ff_te).values
    hist = model.loss_history_
    return z_tr, z_te, {"fit_s": time.perf_counter() - t0, "kept_epoch": int(model.best_epoch_),
                        "final_train_loss": float(hist["train_loss"].values[-1])}


def labelled(z: np.ndarray, ff: xr.Dataset) -> xr.DataArray:
    """Embedding with the flow field's position and running direction on ``sample``."""
    return xr.DataArray(np.asarray(z, dtype=float), dims=("sample", "latent"),
                        coords={k: ("sample", ff[k].values) for k in ("position", "direction")})


def seed_consistency(embeddings: list[np.ndarray], ff: xr.Dataset) -> dict[str, Any]:
    """Consistency over all ordered pairs of seeds' embeddings of the same flow field."""
    from marble_widgets.analysis import consistency

    scores = consistency({str(i): labelled(z, ff) for i, z in enumerate(embeddings)}, label="position",
                         by="direction", range=POSITION_RANGE).values
    off = scores[~np.eye(len(scores), dtype=bool)]
    return {"mean": float(np.mean(off)), "min": float(np.min(off)), "matrix": np.round(scores, 4).tolist()}


def chance_consistency(ff: xr.Dataset, dim: int, n: int = N_CHANCE) -> dict[str, float]:
    """Consistency of pairs of random Gaussian embeddings of dimension ``dim`` (mean, max over pairs)."""
    rng = np.random.default_rng(0)
    res = seed_consistency([rng.standard_normal((ff.sizes["sample"], dim)) for _ in range(n)], ff)
    return {"mean": res["mean"], "max": float(np.nanmax(np.asarray(res["matrix"], dtype=float))), "dim": dim}


def rat_setting(name: str, params: dict[str, Any], ff_tr: xr.Dataset, ff_te: xr.Dataset,
                seeds: tuple[int, ...]) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Every seed's figures for one setting, their mean/SD and the seed-to-seed consistency."""
    t0 = time.perf_counter()
    runs, embeddings = [], []
    for seed in seeds:
        z_tr, z_te, info = fit_embed(ff_tr, ff_te, params, seed)
        runs.append({"seed": seed, **decode_position(z_tr, z_te, ff_tr, ff_te), **info})
        embeddings.append(z_tr)
        print(f"  {name} seed {seed}: {runs[-1]['cm_k_by_median']:.2f} cm (k {runs[-1]['k_k_by_median']}), "
              f"{runs[-1]['cm_k_by_r2']:.2f} cm (k {runs[-1]['k_k_by_r2']}), kept epoch {info['kept_epoch']}",
              flush=True)
    row: dict[str, Any] = {"method": name, "params": _jsonable(params)}
    for tag in ("k_by_median", "k_by_r2"):
        values = np.array([r[f"cm_{tag}"] for r in runs])
        row[f"cm_{tag}_mean"], row[f"cm_{tag}_sd"] = float(values.mean()), float(values.std())
    row["consistency"] = seed_consistency(embeddings, ff_tr)
    row.update(per_seed=runs, seconds=time.perf_counter() - t0)
    return row, embeddings


def epoch_curve(params: dict[str, Any], ff_tr: xr.Dataset, ff_te: xr.Dataset, seed: int,
                epochs: tuple[int, ...]) -> list[dict[str, Any]]:
    """Decoding after ``E`` epochs for each ``E`` (see the module docstring for what it means)."""
    plateau = params.get("lr_schedule", "plateau") == "plateau"
    curve = []
    for n in epochs:
        change = {"epochs": n, "selection": "last", "patience": None} if plateau else {"epochs": n}
        z_tr, z_te, info = fit_embed(ff_tr, ff_te, {**params, **change}, seed)
        curve.append({"epochs": n, **decode_position(z_tr, z_te, ff_tr, ff_te, ("median_abs_error",)),
                      "final_train_loss": info["final_train_loss"]})
    return curve


def controls(params: dict[str, Any], ff_tr: xr.Dataset, ff_te: xr.Dataset, seed: int,
             z: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Time-shuffled control (fit on shuffled data) and label-permutation chance (one seed)."""
    sh_tr, sh_te = rat_flow_fields(shuffle_seed=seed)
    z_tr, z_te, _ = fit_embed(sh_tr, sh_te, params, seed)
    perm = np.random.default_rng(seed).permutation(ff_tr.sizes["sample"])
    return {"time_shuffled": decode_position(z_tr, z_te, sh_tr, sh_te),
            "time_shuffled_input": decode_position(sh_tr["x"].values, sh_te["x"].values, sh_tr, sh_te),
            "labels_permuted": decode_position(*z, ff_tr, ff_te, y_tr=ff_tr["position"].values[perm])}


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One printed row per (data set, setting)."""
    rows = []
    three = {r["method"]: r["consistency"] for r in results.get("consistency_3d", {}).get("rows", [])}
    for r in results.get("rat", {}).get("rows", []):
        cons = r.get("consistency", {})
        rows.append({"data": "rat", "method": r["method"],
                     "cm (k by median)": f"{r['cm_k_by_median_mean']:.2f} ± {r['cm_k_by_median_sd']:.2f}",
                     "cm (k by R2)": f"{r['cm_k_by_r2_mean']:.2f} ± {r['cm_k_by_r2_sd']:.2f}",
                     "consistency mean/min": f"{cons['mean']:.3f} / {cons['min']:.3f}" if cons else "",
                     "3-D consistency": (f"{three[r['method']]['mean']:.3f} / {three[r['method']]['min']:.3f}"
                                         if r["method"] in three else ""),
                     "seconds": r.get("seconds", 0.0)})
    listed = {r["method"] for r in rows}
    for name, cons in three.items():
        if name not in listed:  # 3-D part run alone
            rows.append({"data": "rat", "method": name,
                         "3-D consistency": f"{cons['mean']:.3f} / {cons['min']:.3f}"})
    for r in results.get("macaque", {}).get("rows", []):
        rows.append({"data": "macaque", "method": r["method"],
                     "velocity R2": f"{r['velocity_r2_mean']:.3f} ± {r['velocity_r2_sd']:.3f}",
                     "seconds": r.get("seconds", 0.0)})
    ens = results.get("ensemble", {})
    for r in results.get("recipes", {}).get("rows", []):
        cons, cons_3d = r.get("consistency"), r.get("consistency_3d")
        n = len(r.get("per_seed", []))
        unit = "ensembles" if r.get("n_models", 1) > 1 else "seeds"
        rows.append({"data": f"rat, recipe table ({n} {unit})" if n else "rat, recipe table", "method": r["method"],
                     "cm (k by median)": f"{r['cm_k_by_median_mean']:.2f} ± {r['cm_k_by_median_sd']:.2f}",
                     "cm (k by R2)": f"{r['cm_k_by_r2_mean']:.2f} ± {r['cm_k_by_r2_sd']:.2f}",
                     "consistency mean/min": (f"{cons['mean']:.3f} / {cons['min']:.3f} ({r['out_dim']}-D)"
                                              if cons else ""),
                     "3-D consistency": f"{cons_3d['mean']:.3f} / {cons_3d['min']:.3f}" if cons_3d else "",
                     "seconds": r.get("seconds", 0.0)})
    for r in ens.get("rows", []):
        cons, cons_3d = r.get("consistency"), r.get("consistency_3d")
        n = len(r.get("per_seed", [])) or ""
        rows.append({"data": f"rat, ensemble part ({n} {'ensembles' if r.get('n_models', 1) > 1 else 'seeds'})"
                     if n else "rat, ensemble part", "method": r["method"],
                     "cm (k by median)": f"{r['cm_k_by_median_mean']:.2f} ± {r['cm_k_by_median_sd']:.2f}",
                     "cm (k by R2)": f"{r['cm_k_by_r2_mean']:.2f} ± {r['cm_k_by_r2_sd']:.2f}",
                     "consistency mean/min": f"{cons['mean']:.3f} / {cons['min']:.3f}" if cons else "",
                     "3-D consistency": f"{cons_3d['mean']:.3f} / {cons_3d['min']:.3f}" if cons_3d else ""})
    for r in results.get("infonce", {}).get("rows", []):
        if "consistency" not in r:
            continue  # the input row: already listed under "rat"
        cons, cons_3d = r["consistency"], r["consistency_3d"]
        rows.append({"data": f"rat ({len(r['per_seed'])} seeds)", "method": r["method"],
                     "cm (k by median)": f"{r['cm_k_by_median_mean']:.2f} ± {r['cm_k_by_median_sd']:.2f}",
                     "cm (k by R2)": f"{r['cm_k_by_r2_mean']:.2f} ± {r['cm_k_by_r2_sd']:.2f}",
                     "consistency mean/min": f"{cons['mean']:.3f} / {cons['min']:.3f}",
                     "3-D consistency": f"{cons_3d['mean']:.3f} / {cons_3d['min']:.3f}",
                     "seconds": r.get("seconds", 0.0) + r.get("seconds_3d", 0.0)})
    return rows


def settings_for(data: str) -> dict[str, dict[str, Any]]:
    """The compared settings: the paper's recipe, the tuned one (rat) and the recommended changes on top.

    On the macaque only the training changes are applied (its graph ``k`` is the recipe's 30).
    """
    if data == "macaque":
        paper = dict(recipes.get("macaque_paper").marble)
        out = {"paper recipe (spec 2.3)": paper}
        if STABLE_CHANGES:
            out[RECOMMENDED] = {**paper, **{k: v for k, v in STABLE_CHANGES.items() if k != "k"}}
        return out
    out = dict(RAT_SETTINGS)
    if STABLE_CHANGES:
        out[RECOMMENDED] = {**RAT_SETTINGS[RECOMMENDED_BASE], **STABLE_CHANGES}
    return out
