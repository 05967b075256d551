"""Cross-animal alignment benchmark: two real rats on linear tracks, aligned on track position and direction.

Question (the analysis issue's real cross-animal case): do separately trained MARBLE models of two
rats give embeddings that are linearly related once matched on normalised track position and
running direction, and does a joint model put the two animals' embeddings close together?

Protocol
--------
Data. Rat "Buddy" (``marble_widgets.datasets.rat_hippocampus()``: CA1, 48 units, 25 ms bins, all
6,577 bins, position in metres 0..1.6 -> normalised ``position / 1.6``) and the linear-track rat
(``marble_widgets.datasets.linear_track()``: 31 units, 25 ms bins, track epoch; position already
normalised 0..1; only its ``running`` bins, speed >= 5 % of the track per s).
Flow fields. Per rat PCA-10 of 250-ms-smoothed rates (Gaussian sigma 0.25 s), forward differences
(``marble_widgets.flow_field(rec, n_components=10, smooth=0.25)``). For the linear-track rat the
rates are smoothed over the whole track epoch first, then non-running bins are set to NaN, so the
PCA is fitted on running bins only and no difference spans a stop (each running stretch is a segment).
Models. One MARBLE per rat with the rat recipe (docs/spec.md §2.4) and ``out_dim=3`` as in the paper's
consistency analysis: ``MARBLE(order=1, k=15, delta=1.5, hidden_channels=(64,), out_dim=3,
epochs=100, diffusion=False, include_positions=True, emb_norm=True, seed=0, verbose=False)``
(estimator defaults otherwise: best-validation checkpoint, early stopping after 20 epochs without
validation gain; ``--patience 0`` trains all epochs as the reference does).
Scores. ``consistency({"buddy": e1, "track_rat": e2}, label="position", by="direction",
range=(0, 1))`` (100 position bins per direction, unit-norm bin means, R^2 of an affine map from
source bins to target bins, both directions). Then the same after ``procrustes_align`` of source
onto target (on matched position x direction bin means), plus the rigid R^2 of that alignment
(aligned source bins vs target bins, no fitted map). Joint model: the same recipe trained on
``combine_flow_fields({"buddy": ff1, "track_rat": ff2})`` (one graph per animal); Wasserstein-1
distances (``analysis.distances``, exact EMD, 1,000 points per group, seed 0) between each
animal's two split halves (alternate 20-s blocks of its own clock, "A"/"B") and across animals;
plus the consistency of the joint embedding split by animal.
Baselines (same run). Input space: the same consistency on the PCA-10 flow-field positions
themselves (10-D) and on their first 3 PCs (3-D, the embeddings' dimension). Chance: random Gaussian embeddings (3-D and 10-D, 20 seeds, mean and sd) with
the real labels. Synthetic control (clearly not a second animal): Buddy vs a copy of Buddy whose
PCA space is rotated by a random SO(10) matrix (seed 0) and which keeps every other sample (odd
indices), embedded by its own model (recipe, seed 1); should score near 1. A second control,
Buddy vs Buddy embedded by a model with seed 1 (same flow field), isolates training randomness.
In-sample R^2 grows with the number of latent dims (10-D inputs vs 3-D embeddings): compare each
score with the chance level of the same dimension.

Second setting ("tuned"): the same protocol with the MARBLE settings chosen for decoding by
``benchmarks/fidelity_tuning.py`` on Buddy's training 80 % (batch size, k, hidden widths; the
input and ``out_dim=3`` kept), stored under ``"tuned"`` in the JSON. Nothing is tuned on these scores.

Run: ``.venv/bin/python benchmarks/cross_animal.py [--epochs 100]``. Prints a table and writes
``benchmarks/results/cross_animal.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, print_table, write_json  # noqa: E402

import marble_widgets as mw  # noqa: E402

from marble_widgets.analysis import consistency, distances, procrustes_align  # noqa: E402
from marble_widgets import recipes  # noqa: E402
from marble_widgets.analysis.alignment import binned_means  # noqa: E402
from marble_widgets.data.flow import combine_flow_fields  # noqa: E402
from marble_widgets.data.synthetic import random_rotation  # noqa: E402

#: the paper's rat recipe with 3-D embeddings (as the paper's consistency figures)
RECIPE: dict[str, Any] = {**recipes.get("rat_paper").marble, "out_dim": 3, "seed": 0, "verbose": False}
N_COMPONENTS, SMOOTH = (recipes.get("rat_paper").flow_field[k] for k in ("n_components", "smooth"))
BUDDY_TRACK_M = 1.6
BLOCK_S = 20.0
OT_POINTS = 1000
N_CHANCE = 20
NAMES = ("buddy", "track_rat")
LABELS = dict(label="position", by="direction", range=(0.0, 1.0))


# ----------------------------------------------------------------------------- flow fields
def _slim(ff: xr.Dataset, position: np.ndarray) -> xr.Dataset:
    """x, v, normalised position, direction and split-half block of a flow field (a new Dataset)."""
    t = ff["time"].values
    block = np.where(((t - t.min()) // BLOCK_S).astype(int) % 2 == 0, "A", "B")
    return ff[["x", "v"]].assign(position=("sample", np.asarray(position, dtype=np.float64)),
                                 direction=("sample", ff["direction"].values.astype("<U5")),
                                 block=("sample", block))


def buddy_flow() -> xr.Dataset:
    """Buddy's PCA-10 flow field of 250-ms-smoothed rates, position normalised to 0..1."""
    ff = mw.flow_field(mw.datasets.rat_hippocampus(), n_components=N_COMPONENTS, smooth=SMOOTH)
    return _slim(ff, ff["position"].values / BUDDY_TRACK_M)


def track_rat_flow() -> xr.Dataset:
    """The linear-track rat's PCA-10 flow field on running bins (rates smoothed over the whole epoch)."""
    rec = mw.datasets.linear_track()
    rated = rec.marble.rates(sigma=SMOOTH)
    rates = rated["rates"].where(rec["running"]).assign_attrs(rated["rates"].attrs)
    running = rec.drop_vars("spike_counts").assign(rates=rates)
    ff = mw.flow_field(running, n_components=N_COMPONENTS, smooth=0, variable="rates")
    return _slim(ff, ff["position"].values).assign_attrs(smooth=SMOOTH)


def rotated_resampled(ff: xr.Dataset, seed: int = 0) -> xr.Dataset:
    """Synthetic control: ``ff`` with its PCA space rotated by a random SO(d) matrix, every other sample."""
    rot = random_rotation(ff.sizes["dim"], np.random.default_rng(seed))
    keep = ff.isel(sample=slice(1, None, 2))
    return keep.assign(x=(("sample", "dim"), keep["x"].values @ rot.T),
                       v=(("sample", "dim"), keep["v"].values @ rot.T))


# ----------------------------------------------------------------------------- embeddings
def labelled(values: np.ndarray, ff: xr.Dataset) -> xr.DataArray:
    """(sample, latent) array with the flow field's position, direction and block as sample coords."""
    return xr.DataArray(np.asarray(values, dtype=np.float64), dims=("sample", "latent"), name="embedding",
                        coords={k: ("sample", ff[k].values) for k in ("position", "direction", "block")})


def fit_embed(ff: xr.Dataset, settings: dict[str, Any], **overrides: Any) -> tuple[xr.DataArray, dict[str, Any]]:
    """Fit one MARBLE (``settings`` + overrides) on ``ff``; its embedding of ``ff`` and fit facts."""
    t0 = time.perf_counter()
    model = mw.MARBLE(**{**settings, **overrides}).fit(ff)
    emb = model.transform(ff)
    info = {"seconds": time.perf_counter() - t0, "epochs_run": int(model.loss_history_.sizes["epoch"]),
            "best_epoch": int(model.best_epoch_), "n_samples": int(ff.sizes["sample"]),
            "final_train_loss": float(model.loss_history_["train_loss"].values[-1])}
    return labelled(emb.values, ff), info


def pair(scores: xr.DataArray, a: str = NAMES[0], b: str = NAMES[1]) -> dict[str, float]:
    """Both off-diagonal entries of a (source, target) consistency matrix."""
    return {f"{a}->{b}": float(scores.sel(source=a, target=b)), f"{b}->{a}": float(scores.sel(source=b, target=a))}


def consistency_pair(ea: xr.DataArray, eb: xr.DataArray, names: tuple[str, str] = NAMES) -> dict[str, float]:
    """Consistency of two labelled embeddings in both directions."""
    return pair(consistency({names[0]: ea, names[1]: eb}, **LABELS), *names)


def _rigid_r2(aligned: xr.DataArray, target: xr.DataArray) -> float:
    """R^2 of aligned source bin means against target bin means (no fitted map), matched bins only."""
    a = binned_means(aligned, **LABELS, normalize=False)
    b = binned_means(target, **LABELS, normalize=False)
    groups = [g for g in a["direction"].values if g in set(b["direction"].values)]
    x = a.sel(direction=groups).values.reshape(-1, a.sizes["latent"])
    y = b.sel(direction=groups).values.reshape(-1, b.sizes["latent"])
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    resid = np.sum((x[ok] - y[ok]) ** 2)
    return float(1.0 - resid / np.sum((y[ok] - y[ok].mean(axis=0)) ** 2))


def procrustes_scores(ea: xr.DataArray, eb: xr.DataArray) -> dict[str, dict[str, float]]:
    """Consistency after Procrustes-aligning source onto target, and the rigid R^2, both directions."""
    out: dict[str, dict[str, float]] = {"consistency": {}, "rigid_r2": {}}
    for (sa, a), (sb, b) in (((NAMES[0], ea), (NAMES[1], eb)), ((NAMES[1], eb), (NAMES[0], ea))):
        aligned = procrustes_align(a, b, **LABELS).aligned
        key = f"{sa}->{sb}"
        out["consistency"][key] = pair(consistency({sa: aligned, sb: b}, **LABELS), sa, sb)[key]
        out["rigid_r2"][key] = _rigid_r2(aligned, b)
    return out


def chance(ffa: xr.DataArray, ffb: xr.DataArray, dim: int) -> dict[str, float]:
    """Mean and sd over ``N_CHANCE`` seeds of the consistency of random Gaussian embeddings."""
    vals = []
    for seed in range(N_CHANCE):
        rng = np.random.default_rng(seed)
        ea = labelled(rng.standard_normal((ffa.sizes["sample"], dim)), ffa)
        eb = labelled(rng.standard_normal((ffb.sizes["sample"], dim)), ffb)
        vals.append(list(consistency_pair(ea, eb).values()))
    arr = np.asarray(vals)
    return {"mean": float(arr.mean()), "sd": float(arr.std()), "max": float(arr.max()), "dim": dim}


# ----------------------------------------------------------------------------- joint model
def joint_model(ffa: xr.Dataset, ffb: xr.Dataset, settings: dict[str, Any]) -> dict[str, Any]:
    """One model on both rats: W1 distances between split halves within and across animals."""
    joint = combine_flow_fields(dict(zip(NAMES, (ffa, ffb))))
    emb, info = fit_embed(joint, settings)
    animal = joint["animal"].values.astype(str)
    group = np.char.add(np.char.add(animal, "|"), joint["block"].values.astype(str))
    d = distances(emb.assign_coords(group=("sample", group)), by="group", method="exact",
                  max_points=OT_POINTS, seed=0)
    g = lambda a, b: float(d.sel(group=a, group_other=b))  # noqa: E731
    within = {n: g(f"{n}|A", f"{n}|B") for n in NAMES}
    across = [g(f"{NAMES[0]}|{x}", f"{NAMES[1]}|{y}") for x in "AB" for y in "AB"]
    parts = {n: emb.isel(sample=np.flatnonzero(animal == n)) for n in NAMES}
    return {"fit": info, "w1_within": within, "w1_across_mean": float(np.mean(across)),
            "w1_across": across, "across_over_within": float(np.mean(across) / np.mean(list(within.values()))),
            "consistency": consistency_pair(parts[NAMES[0]], parts[NAMES[1]]),
            "distance_matrix": {"groups": [str(x) for x in d["group"].values], "values": d.values.tolist()}}


# ----------------------------------------------------------------------------- main
def _rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    a, b = f"{NAMES[0]}->{NAMES[1]}", f"{NAMES[1]}->{NAMES[0]}"
    c = res["consistency"]
    rows = [{"score": k, a: v[a], b: v[b]} for k, v in c.items() if isinstance(v, dict) and a in v]
    for k in ("chance_3d", "chance_10d"):
        rows.append({"score": f"{k} (mean+-sd)", a: f"{c[k]['mean']:.3f}+-{c[k]['sd']:.3f}", b: ""})
    ctrl = res["control_rotated_buddy"]
    rows.append({"score": "CONTROL buddy vs rotated/resampled buddy (MARBLE)",
                 a: ctrl["marble"]["buddy->buddy_rot"], b: ctrl["marble"]["buddy_rot->buddy"]})
    rows.append({"score": "CONTROL (input PCA-10)", a: ctrl["input_pca10"]["buddy->buddy_rot"],
                 b: ctrl["input_pca10"]["buddy_rot->buddy"]})
    rows.append({"score": "CONTROL buddy vs buddy, model seed 1 (MARBLE)", a: ctrl["seed_only"]["buddy->buddy_seed1"],
                 b: ctrl["seed_only"]["buddy_seed1->buddy"]})
    return rows


#: MARBLE settings the decoding search may change (the input and the 3-D output stay the protocol's)
TUNABLE = ("batch_size", "k", "delta", "hidden_channels", "order", "emb_norm", "include_positions")


def tuned_overrides() -> dict[str, Any]:
    """The decoding-tuned MARBLE settings from benchmarks/results/fidelity_tuning.json ({} when absent)."""
    path = Path(__file__).resolve().parent / "results" / "fidelity_tuning.json"
    if not path.is_file():
        return {}
    chosen = json.loads(path.read_text())["chosen"]
    out = {k: chosen[k] for k in TUNABLE if k in chosen}
    if "hidden_channels" in out:
        out["hidden_channels"] = tuple(out["hidden_channels"])
    return out


def run(epochs: int, patience: int | None = 20, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole protocol (see the module docstring); a JSON-ready dict of results and timings."""
    settings = {**RECIPE, "epochs": int(epochs), "patience": patience, **(overrides or {})}
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    ffa, ffb = buddy_flow(), track_rat_flow()
    timing["flow_fields"] = time.perf_counter() - t0
    ea, fit_a = fit_embed(ffa, settings)
    eb, fit_b = fit_embed(ffb, settings)
    timing["fit_per_rat"] = fit_a["seconds"] + fit_b["seconds"]
    t1 = time.perf_counter()
    scores: dict[str, Any] = {"marble": consistency_pair(ea, eb)}
    proc = procrustes_scores(ea, eb)
    scores["marble_procrustes"], scores["procrustes_rigid_r2"] = proc["consistency"], proc["rigid_r2"]
    scores["input_pca10"] = consistency_pair(labelled(ffa["x"].values, ffa), labelled(ffb["x"].values, ffb))
    scores["input_pca3"] = consistency_pair(labelled(ffa["x"].values[:, :3], ffa),
                                            labelled(ffb["x"].values[:, :3], ffb))
    scores["chance_3d"], scores["chance_10d"] = chance(ffa, ffb, 3), chance(ffa, ffb, 10)
    timing["scores"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    joint = joint_model(ffa, ffb, settings)
    scores["joint_model"] = joint["consistency"]
    timing["joint_model"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    ffr = rotated_resampled(ffa, seed=0)
    er, fit_r = fit_embed(ffr, settings, seed=1)
    es, fit_s = fit_embed(ffa, settings, seed=1)
    names = ("buddy", "buddy_rot")
    control = {"marble": consistency_pair(ea, er, names), "fit": fit_r,
               "input_pca10": consistency_pair(labelled(ffa["x"].values, ffa), labelled(ffr["x"].values, ffr), names),
               "seed_only": consistency_pair(ea, es, ("buddy", "buddy_seed1")), "fit_seed_only": fit_s}
    timing["control"] = time.perf_counter() - t3
    timing["total"] = time.perf_counter() - t0
    return {"recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
            "samples": {NAMES[0]: int(ffa.sizes["sample"]), NAMES[1]: int(ffb.sizes["sample"]),
                        "track_rat_segments": int(np.unique(ffb["trial"].values).size)},
            "fits": {NAMES[0]: fit_a, NAMES[1]: fit_b},
            "consistency": scores, "joint_model": joint, "control_rotated_buddy": control,
            "timing_s": timing, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100, help="maximum epochs of every model (recipe: 100)")
    parser.add_argument("--patience", type=int, default=20,
                        help="early-stopping patience (estimator default 20); 0 = none, all epochs as the reference")
    args = parser.parse_args()
    res = run(args.epochs, args.patience or None)
    _report("recipe (spec 2.4, out_dim 3)", res)
    overrides = tuned_overrides()
    if overrides:
        res["tuned"] = run(args.epochs, args.patience or None, overrides)
        res["tuned"]["overrides"] = {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}
        _report(f"decoding-tuned settings {overrides}", res["tuned"])
    write_json("cross_animal", res)


def _report(title: str, res: dict[str, Any]) -> None:
    """Print one setting's consistency table, joint-model distances and timings."""
    a, b = f"{NAMES[0]}->{NAMES[1]}", f"{NAMES[1]}->{NAMES[0]}"
    print(f"\n== {title}")
    print_table(_rows(res), ["score", a, b])
    j = res["joint_model"]
    print(f"\njoint model W1: within buddy {j['w1_within']['buddy']:.3f}, within track_rat "
          f"{j['w1_within']['track_rat']:.3f}, across (mean) {j['w1_across_mean']:.3f} "
          f"(across/within {j['across_over_within']:.2f})")
    print("timing (s): " + ", ".join(f"{k} {v:.1f}" for k, v in res["timing_s"].items()))


if __name__ == "__main__":
    main()
