"""Toy and recurrent-network sections of ``benchmarks/fidelity.py``: van der Pol mu-ordering, rotated
copies (embedding-aware vs -agnostic), and the RNN gain study at smaller settings than ``rnn_study.py``.
"""
from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import xarray as xr

from fidelity_common import RNN_QUICK, RNN_SETTINGS, SEED

from marble_widgets.data.containers import as_embedding


VDP_MARBLE = {"order": 2, "k": 20, "spacing": 0.03, "epochs": 50, "hidden_channels": (32,), "out_dim": 5,
              "inner_product_features": False, "diffusion": False, "patience": None}
AWARE = {"local_gauges": False, "inner_product_features": False}
AGNOSTIC = {"local_gauges": True, "inner_product_features": True}


def _fit_embed(ff: xr.Dataset, params: dict[str, Any]) -> xr.DataArray:
    from marble_widgets import MARBLE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MARBLE(**params, seed=SEED, verbose=False).fit_transform(ff)


def run_van_der_pol(quick: bool) -> dict[str, Any]:
    """Spec §15.2: 40 values of mu; Spearman of MDS axis 1 of the exact OT distances with mu (pass >= 0.9)."""
    from scipy.stats import spearmanr

    from marble_widgets.analysis import distances, mds
    from marble_widgets.datasets import van_der_pol

    t0 = time.perf_counter()
    mus = np.linspace(-1.0, 1.0, 20 if quick else 40)
    ff = van_der_pol(mus, n_initial=50 if quick else 100, seed=SEED)
    emb = _fit_embed(ff, dict(VDP_MARBLE, epochs=20 if quick else VDP_MARBLE["epochs"]))
    dist = distances(emb, by="condition", method="exact", max_points=300, seed=SEED)
    axis = mds(dist, 1, seed=SEED).values[:, 0]
    mu = np.array([float(str(c).split("=")[1]) for c in dist["condition"].values])
    rho = float(abs(spearmanr(axis, mu)[0]))
    # baseline: the same distances on the raw vectors (the flow field itself, no embedding)
    raw = distances(as_embedding(ff, ff["v"].values), by="condition", method="exact", max_points=300, seed=SEED)
    rho_raw = float(abs(spearmanr(mds(raw, 1, seed=SEED).values[:, 0], mu)[0]))
    return {"spearman_mds1_mu": rho, "pass": rho >= 0.9, "baseline_raw_vectors_spearman": rho_raw,
            "n_mu": len(mus), "n_samples": int(ff.sizes["sample"]), "seconds": time.perf_counter() - t0,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in VDP_MARBLE.items()}}


def copy_separation(dist: xr.DataArray, system: np.ndarray) -> dict[str, float]:
    """Mean OT distance between rotated copies of one system over that between different systems, and
    the fraction of conditions whose nearest other condition is a copy of the same system."""
    d = dist.values
    same = system[:, None] == system[None, :]
    off = ~np.eye(len(d), dtype=bool)
    nearest = np.where(off, d, np.inf).argmin(axis=1)
    return {"within_over_between": float(d[same & off].mean() / d[~same].mean()),
            "nearest_is_copy": float(np.mean(system[nearest] == system))}


def run_rotated(quick: bool) -> dict[str, Any]:
    """Rotated copies of van der Pol systems: agnostic mode should merge copies, aware mode separate them."""
    from marble_widgets.analysis import distances
    from marble_widgets.datasets import rotated_copies, van_der_pol

    t0 = time.perf_counter()
    base = van_der_pol(np.array([-1.0, -0.3, 0.3, 1.0]), n_initial=40 if quick else 60, seed=SEED)
    ff = rotated_copies(base, n_copies=2, seed=SEED)
    params = dict(order=1, k=15, epochs=20 if quick else 40, hidden_channels=(32,), out_dim=5, diffusion=False,
                  patience=None)
    out: dict[str, Any] = {"n_conditions": int(len(np.unique(ff["condition"].values)))}
    for mode, extra in (("aware", AWARE), ("agnostic", AGNOSTIC)):
        emb = _fit_embed(ff, {**params, **extra})
        dist = distances(emb, by="condition", method="exact", max_points=300, seed=SEED)
        system = np.array([str(c).split("|")[0] for c in dist["condition"].values])
        out[mode] = {**copy_separation(dist, system), "params": {**extra}}
    out["pass"] = bool(out["agnostic"]["within_over_between"] < 0.5 < out["aware"]["within_over_between"])
    out["seconds"] = time.perf_counter() - t0
    return out


# ============================================================================ recurrent networks
def run_rnn(quick: bool) -> dict[str, Any]:
    """The RNN study's table at :data:`RNN_SETTINGS` (4 networks; per network, jointly, control, baselines)."""
    import rnn_study

    from marble_widgets.datasets import rnn_gain_modulation

    t0 = time.perf_counter()
    cfg = RNN_QUICK if quick else RNN_SETTINGS
    gains = np.linspace(1.0, 0.0, cfg["n_gains"])
    params = dict(rnn_study.MARBLE_RNN, epochs=cfg["epochs"])
    n_control = max(1, round(cfg["n_trajectories"] * rnn_study.STIM_STEPS / rnn_study.UNSTIM_STEPS))
    ds = rnn_gain_modulation("all", gains=gains, n_trajectories=cfg["n_trajectories"], seed=SEED)
    networks = [str(n) for n in ds["rnn"].values]
    within = rnn_study.within_networks(ds, networks, params, n_control)
    joint = rnn_study.across_networks(ds, networks, params, n_control)
    return {"rows": rnn_study.table(within, joint), "settings": cfg, "networks": networks,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
            "n_trajectories_control": n_control,
            "distance_matrix_consistency": within["distance_matrix_consistency"],
            "accuracy_vs_gain": {n: [float(a) for a in ds["accuracy"].sel(rnn=n).values] for n in networks},
            "seconds": time.perf_counter() - t0}


# ============================================================================ report
