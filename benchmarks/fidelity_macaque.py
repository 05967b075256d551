"""MC_Maze_Small section of ``benchmarks/fidelity.py``: trial-wise 5-fold CV, velocity R^2, sectors, ring.

Preprocessing, model and decoders are fitted on each fold's training trials; the MARBLE candidate is
chosen on an inner split of those trials only.
"""
from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import xarray as xr

from fidelity_common import (
    _row,
    cebra_available,
    cebra_embed,
    CEBRA_ITERATIONS,
    flow_pair,
    marble_embed,
    MC_CANDIDATES,
    MC_FOLDS,
    MC_INPUT,
    MC_MARBLE,
    MC_RECOMMENDED,
    permuted,
    SEED,
)

from marble_widgets.data.containers import as_embedding


def trial_folds(conditions: np.ndarray, n_folds: int = MC_FOLDS, seed: int = SEED) -> np.ndarray:
    """Test fold of every trial: stratified by reach sector, shuffled with ``seed`` (whole trials held out)."""
    from sklearn.model_selection import StratifiedKFold

    fold = np.empty(len(conditions), dtype=np.int64)
    for f, (_, te) in enumerate(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(
            np.zeros(len(conditions)), conditions)):
        fold[te] = f
    return fold


def ridge_velocity(z_tr: np.ndarray, ff_tr: xr.Dataset, z_te: np.ndarray, ff_te: xr.Dataset,
                   v_tr: np.ndarray | None = None) -> np.ndarray:
    """Per-bin velocity decoder: the library's standardised RidgeCV, alpha chosen over training trials.

    ``v_tr`` replaces the training velocities (the label-permutation control).
    """
    from marble_widgets.analysis import train_test_decode

    v_tr = ff_tr["hand_velocity"] if v_tr is None else ff_tr["hand_velocity"].copy(data=v_tr)
    result = train_test_decode(as_embedding(ff_tr, z_tr), v_tr, as_embedding(ff_te, z_te),
                               ff_te["hand_velocity"], kind="ridge_cv", groups="trial")
    return result["prediction"].values


def trial_features(z: np.ndarray, ff: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-trial vectors: each trial's embedding over time, flattened (trials, time * latent), and labels."""
    trials = ff["trial"].values
    ids = np.unique(trials)
    rows, labels = [], []
    for t in ids:
        sel = np.flatnonzero(trials == t)
        sel = sel[np.argsort(ff["time"].values[sel])]
        rows.append(z[sel].ravel())
        labels.append(str(ff["condition"].values[sel[0]]))
    width = min(len(r) for r in rows)
    return np.stack([r[:width] for r in rows]), np.array(labels), ids


def sector_classifier(f_tr: np.ndarray, y_tr: np.ndarray, f_te: np.ndarray) -> np.ndarray:
    """Reach sector of held-out trials from per-trial embeddings (standardised logistic regression)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000, random_state=SEED))
    return model.fit(f_tr, y_tr).predict(f_te)


def sector_distances(z: np.ndarray, ff: xr.Dataset) -> xr.DataArray:
    """OT distances between the reach sectors' embedded distributions (k-means 50 histograms, docs/spec.md §13.2)."""
    from marble_widgets.analysis import distances

    return distances(as_embedding(ff, z), by="condition", method="kmeans", n_clusters=50, seed=SEED)


def ring_score(dist: xr.DataArray) -> dict[str, Any]:
    """How well the 2-D MDS of the sector distances puts the sectors on a ring in reach-angle order.

    Angles of the MDS points about their centroid are matched to the sectors' reach angles up to a
    rotation and a reflection; reports the mean absolute angular error (deg; 0 = perfect ring
    order, ~90 = random) and whether the cyclic order of the sectors is preserved exactly.
    """
    from marble_widgets.analysis import mds

    pts = mds(dist, 2, seed=SEED).values
    pts = pts - pts.mean(axis=0)
    theta = np.arctan2(pts[:, 1], pts[:, 0])
    phi = np.radians([float(str(c).replace("deg", "")) for c in dist[dist.dims[0]].values])
    best = np.inf
    for sign in (1.0, -1.0):
        diff = np.angle(np.exp(1j * (sign * theta - phi)))
        shift = np.angle(np.mean(np.exp(1j * diff)))
        best = min(best, float(np.mean(np.abs(np.angle(np.exp(1j * (diff - shift)))))))
    order_true = list(np.argsort(phi))
    order_mds = list(np.argsort(theta))
    cyclic = any(order_mds == order_true[i:] + order_true[:i] or order_mds[::-1] == order_true[i:] + order_true[:i]
                 for i in range(len(order_true)))
    return {"ring_error_deg": float(np.degrees(best)), "ring_order_ok": bool(cyclic),
            "mds": {str(c): [float(a), float(b)] for c, (a, b) in zip(dist[dist.dims[0]].values, pts)}}


def _mc_counts(ds: xr.Dataset, ff: xr.Dataset) -> np.ndarray:
    """Spike counts of a trial-aligned recording at the flow field's (trial, time) samples."""
    idx = {"trial": xr.DataArray(ff["trial"].values, dims="s"), "time": xr.DataArray(ff["time"].values, dims="s")}
    return ds["spike_counts"].sel(idx).transpose("s", "unit").values


def unlabelled(ff: xr.Dataset) -> xr.Dataset:
    """The held-out trials as one condition: their graph must not be built from their (test) sector labels."""
    return ff.assign_coords(condition=("sample", np.full(ff.sizes["sample"], "heldout")))


def mc_methods(quick: bool, use_cebra: bool) -> dict[str, Any]:
    """name -> function(train trials, test trials) -> (z_tr, ff_tr, z_te, ff_te); all fitted on train only."""
    recipe = dict(MC_MARBLE, epochs=30 if quick else MC_MARBLE["epochs"])

    def direct(n_comp, smooth):
        def run(tr, te):
            ff_tr, ff_te = flow_pair(tr, te, n_comp, smooth, condition="condition")
            return ff_tr["x"].values, ff_tr, ff_te["x"].values, ff_te
        return run

    def marble(tr, te):
        ff_tr, ff_te = flow_pair(tr, te, MC_INPUT["n_components"], MC_INPUT["smooth"], condition="condition")
        z_tr, z_te, info = marble_embed(ff_tr, unlabelled(ff_te), recipe)
        return z_tr, ff_tr, z_te, ff_te

    def marble_tuned(tr, te):
        ff_tr, ff_te = flow_pair(tr, te, MC_INPUT["n_components"], MC_INPUT["smooth"], condition="condition")
        choice = choose_mc_candidate(tr, recipe)
        MC_CHOICES.append(choice)
        params = {**recipe, **MC_CANDIDATES[choice]}
        z_tr, z_te, info = marble_embed(unlabelled(ff_tr), unlabelled(ff_te), params)
        return z_tr, ff_tr, z_te, ff_te

    def marble_recommended(tr, te):
        ff_tr, ff_te = flow_pair(tr, te, MC_INPUT["n_components"], MC_INPUT["smooth"], condition="condition")
        z_tr, z_te, info = marble_embed(ff_tr, unlabelled(ff_te), {**recipe, **MC_RECOMMENDED})
        return z_tr, ff_tr, z_te, ff_te

    def cebra_time(tr, te):
        ff_tr, ff_te = flow_pair(tr, te, None, None, condition="condition")
        z_tr, z_te = cebra_embed(_mc_counts(tr, ff_tr), _mc_counts(te, ff_te), None, MC_MARBLE["out_dim"],
                                 CEBRA_ITERATIONS["quick_macaque" if quick else "macaque"], arch="offset5-model")
        return z_tr, ff_tr, z_te, ff_te

    methods = {"smoothed spikes (50 ms)": direct(None, 0.05),
               "MARBLE input: PCA-5 (100 ms)": direct(MC_INPUT["n_components"], MC_INPUT["smooth"]),
               "PCA-20 (50 ms)": direct(20, 0.05), "PCA-20 (100 ms)": direct(20, 0.1),
               "MARBLE recipe (spec 2.3)": marble, "MARBLE recipe + recommended changes": marble_recommended,
               "MARBLE tuned on training trials": marble_tuned}
    if use_cebra:
        methods["CEBRA-Time"] = cebra_time
    return methods


#: the candidate chosen in each outer fold by :func:`choose_mc_candidate` (filled while running)
MC_CHOICES: list[str] = []


def choose_mc_candidate(tr: xr.Dataset, recipe: dict[str, Any]) -> str:
    """The :data:`MC_CANDIDATES` entry with the best velocity R^2 on an inner holdout of training trials.

    Nested and leak-free: the inner split (one stratified fifth of ``tr``'s trials) never sees the
    outer fold's test trials; both the inner model and its graph ignore the sector labels.
    """
    from sklearn.metrics import r2_score

    inner = trial_folds(tr["condition"].values, MC_FOLDS, SEED + 1)
    fit, val = tr.isel(trial=np.flatnonzero(inner != 0)), tr.isel(trial=np.flatnonzero(inner == 0))
    ff_fit, ff_val = flow_pair(fit, val, MC_INPUT["n_components"], MC_INPUT["smooth"], condition="condition")
    scores = {}
    for name, change in MC_CANDIDATES.items():
        z_fit, z_val, _ = marble_embed(unlabelled(ff_fit), unlabelled(ff_val), {**recipe, **change})
        v_hat = ridge_velocity(z_fit, ff_fit, z_val, ff_val)
        scores[name] = r2_score(ff_val["hand_velocity"].values, v_hat)
    return max(scores, key=scores.get)


#: methods whose reach-sector distances (k-means + OT, the slow part) are computed
RING_METHODS = ("MARBLE input: PCA-5 (100 ms)", "PCA-20 (100 ms)", "MARBLE recipe (spec 2.3)",
                "MARBLE recipe + recommended changes",
                "MARBLE tuned on training trials", "CEBRA-Time")


def _mc_fold(run, tr: xr.Dataset, te: xr.Dataset, ring: bool) -> dict[str, Any]:
    """One fold of one method: velocity predictions, sector predictions, training-part distances."""
    z_tr, ff_tr, z_te, ff_te = run(tr, te)
    v_hat = ridge_velocity(z_tr, ff_tr, z_te, ff_te)
    f_tr, y_tr, _ = trial_features(z_tr, ff_tr)
    f_te, y_te, ids = trial_features(z_te, ff_te)
    return {"v_true": ff_te["hand_velocity"].values, "v_hat": v_hat, "sector_true": y_te,
            "sector_hat": sector_classifier(f_tr, y_tr, f_te), "dist": sector_distances(z_tr, ff_tr) if ring else None,
            "v_hat_permuted": ridge_velocity(z_tr, ff_tr, z_te, ff_te, permuted(ff_tr["hand_velocity"].values)),
            "sector_hat_permuted": sector_classifier(f_tr, permuted(y_tr), f_te)}


def run_macaque(quick: bool, use_cebra: bool) -> dict[str, Any]:
    """Trial-wise 5-fold CV of every method; pooled velocity R^2, sector accuracy, ring of sectors."""
    from sklearn.metrics import r2_score

    from marble_widgets.datasets import mc_maze_small

    ds = mc_maze_small(bin_size=0.02)
    fold = trial_folds(ds["condition"].values)
    note = cebra_available() if use_cebra else "disabled with --no-cebra"
    rows = []
    for name, run in mc_methods(quick, use_cebra and note is None).items():
        t0 = time.perf_counter()
        MC_CHOICES.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parts = [_mc_fold(run, ds.isel(trial=np.flatnonzero(fold != f)), ds.isel(trial=np.flatnonzero(fold == f)),
                              name in RING_METHODS) for f in range(MC_FOLDS)]
        v_true = np.concatenate([p["v_true"] for p in parts])
        v_hat = np.concatenate([p["v_hat"] for p in parts])
        correct = np.concatenate([p["sector_true"] == p["sector_hat"] for p in parts])
        ring: dict[str, Any] = {"ring_error_deg": None, "ring_order_ok": None}
        if name in RING_METHODS:
            dist = sum(p["dist"] for p in parts) / MC_FOLDS  # OT distances ignore isometries: average folds
            ring = {**ring_score(dist), "distances": dist.values.round(6).tolist(),
                    "sectors": [str(c) for c in dist["condition"].values]}
        per_fold = [float(r2_score(p["v_true"], p["v_hat"])) for p in parts]
        v_perm = np.concatenate([p["v_hat_permuted"] for p in parts])
        control = {"velocity_r2_permuted": float(r2_score(v_true, v_perm)),
                   "sector_acc_permuted": float(np.concatenate([p["sector_true"] == p["sector_hat_permuted"]
                                                                for p in parts]).mean())}
        rows.append(_row(name, {"velocity_r2": float(r2_score(v_true, v_hat)), "velocity_r2_per_fold": per_fold,
                                "velocity_r2_fold_mean": float(np.mean(per_fold)),
                                "velocity_r2_fold_sd": float(np.std(per_fold)),
                                "sector_acc": float(correct.mean()), **control, **ring}, time.perf_counter() - t0,
                         **({"chosen_per_fold": list(MC_CHOICES)} if MC_CHOICES else {})))
        print(f"  {name}: R2 {rows[-1]['velocity_r2']:.3f} (folds {np.mean(per_fold):.3f} ± {np.std(per_fold):.3f}; "
              f"permuted {control['velocity_r2_permuted']:.3f}), sectors {rows[-1]['sector_acc']:.3f} (permuted "
              f"{control['sector_acc_permuted']:.3f}), ring {ring['ring_error_deg']} deg ({rows[-1]['seconds']:.0f} s)",
              flush=True)
    counts = dict(zip(*np.unique(ds["condition"].values, return_counts=True)))
    return {"rows": rows, "cebra_note": note, "folds": MC_FOLDS, "fold_seed": SEED,
            "sector_counts": {str(k): int(v) for k, v in counts.items()},
            "chance_sector_acc": max(counts.values()) / ds.sizes["trial"],
            "recipe": {**MC_INPUT, **{k: list(v) if isinstance(v, tuple) else v for k, v in MC_MARBLE.items()},
                       "epochs": 30 if quick else MC_MARBLE["epochs"], "bin_size": 0.02}}
