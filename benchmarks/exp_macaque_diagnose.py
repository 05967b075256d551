"""What limits the macaque velocity R^2 (issue 16): lag, time in the trial, multi-scale inputs, ridge grid.

Inner split of ``exp_macaque_screen.py`` (outer fold 0's training trials, a stratified fifth held out); the
MARBLE rows read the member embeddings cached by ``exp_macaque_members.py`` (run it first with
``--members tuned:0-7`` and the same ``--cache-dir``). Prints, and writes benchmarks/results/exp_macaque_diagnose.json:

- ``lag``: features at bin t - lag decode the velocity at t (the rows where t - lag exists), PCA-5 input, one
  tuned model and 3 tuned side by side;
- ``time``: the 3 tuned side by side, per 100-ms window of the trial: velocity variance, error, bias;
- ``inputs``: the flow field without MARBLE: PCA-5 at one or several smoothings, positions with/without the
  forward-difference vectors, and all units (no PCA);
- ``ridge``: the library's alpha grid (8 values) vs a fine one (33) on side-by-side groups.

Run: ``python benchmarks/exp_macaque_diagnose.py [--cache-dir /tmp/mc_members]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_json  # noqa: E402


def ridge(z_fit: np.ndarray, v_fit: np.ndarray, groups: np.ndarray, alphas: np.ndarray) -> Any:
    """fidelity's decoder by hand (standardised RidgeCV, trial-grouped 5-fold alpha choice) with any alpha grid."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cv = list(GroupKFold(5).split(z_fit, groups=groups))
    return make_pipeline(StandardScaler(), RidgeCV(alphas=alphas, cv=cv)).fit(z_fit, v_fit)


def lagged_rows(ff: Any, lag: int, bin_size: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """(target rows, feature rows): the feature row of each target is the same trial's bin ``lag`` bins earlier."""
    trial, step = ff["trial"].values, np.round(ff["time"].values / bin_size).astype(int)
    where = {(a, b): i for i, (a, b) in enumerate(zip(trial, step))}
    pairs = [(i, where[(a, b - lag)]) for i, (a, b) in enumerate(zip(trial, step)) if (a, b - lag) in where]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the four diagnostics and write their JSON."""
    from sklearn.metrics import r2_score

    from exp_macaque_members import flow_fields, split_trials
    from fidelity import ridge_velocity

    from marble_widgets.analysis.decoding import RIDGE_ALPHAS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "marble_widgets_bench" / "macaque_members")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    parts = split_trials("inner")
    ff_fit, ff_val = flow_fields(*parts, {})
    v_fit, v_val, groups = ff_fit["hand_velocity"].values, ff_val["hand_velocity"].values, ff_fit["trial"].values
    members = [dict(np.load(args.cache_dir / f"inner_tuned_{s}.npz")) for s in range(8)]
    coarse, fine = np.array(RIDGE_ALPHAS), np.logspace(-3, 5, 33)
    feats = {"input PCA-5": (ff_fit["x"].values, ff_val["x"].values),
             "tuned seed 0": (members[0]["fit"], members[0]["own"]),
             "3 tuned side by side": (np.hstack([m["fit"] for m in members[:3]]),
                                      np.hstack([m["own"] for m in members[:3]]))}
    out: dict[str, Any] = {"lag": [], "time": [], "inputs": [], "ridge": []}
    for lag in (-4, -2, 0, 2, 4, 6, 8):
        (tf, sf), (tv, sv) = lagged_rows(ff_fit, lag), lagged_rows(ff_val, lag)
        row = {"lag_bins": lag}
        for name, (zf, zv) in feats.items():
            model = ridge(zf[sf], v_fit[tf], groups[tf], coarse)
            row[name] = float(r2_score(v_val[tv], model.predict(zv[sv])))
        out["lag"].append(row)
        print("lag", row, flush=True)
    zf, zv = feats["3 tuned side by side"]
    pred, t = ridge(zf, v_fit, groups, coarse).predict(zv), ff_val["time"].values
    for lo in np.arange(-0.24, 0.44, 0.1):
        sel = (t >= lo - 1e-9) & (t < lo + 0.1 - 1e-9)
        out["time"].append({"from_s": float(lo), "variance": v_val[sel].var(0).tolist(),
                            "mse": ((v_val[sel] - pred[sel]) ** 2).mean(0).tolist(),
                            "bias": (pred[sel] - v_val[sel]).mean(0).tolist()})
        print("time", {k: np.round(v, 1) for k, v in out["time"][-1].items()}, flush=True)
    for n_comp, smooths in ((5, (0.1,)), (5, (0.05,)), (5, (0.05, 0.1)), (5, (0.03, 0.05, 0.1, 0.15)),
                            (None, (0.05,)), (None, (0.1,))):
        ffs = [flow_fields(*parts, {"smooth": s, "n_components": n_comp}) for s in smooths]
        for with_v in (False, True):
            cols = ("x", "v") if with_v else ("x",)
            zf = np.hstack([f[0][c].values for f in ffs for c in cols])
            zv = np.hstack([f[1][c].values for f in ffs for c in cols])
            r2 = float(r2_score(v_val, ridge_velocity(zf, ff_fit, zv, ff_val)))
            out["inputs"].append({"n_components": n_comp, "smooth": list(smooths), "vectors": with_v, "r2": r2})
            print("inputs", out["inputs"][-1], flush=True)
    for name, idx in (("tuned 0-2", range(3)), ("tuned 3-5", range(3, 6)), ("tuned 0-4", range(5)),
                      ("tuned 0-7", range(8))):
        zf = np.hstack([members[i]["fit"] for i in idx])
        zv = np.hstack([members[i]["own"] for i in idx])
        row = {"members": name}
        for grid_name, grid in (("library grid", coarse), ("fine grid", fine)):
            model = ridge(zf, v_fit, groups, grid)
            row[grid_name] = float(r2_score(v_val, model.predict(zv)))
            row[f"{grid_name} alpha"] = float(model[-1].alpha_)
        out["ridge"].append(row)
        print("ridge", row, flush=True)
    write_json("exp_macaque_diagnose", {**out, "split": "fold 0 training trials, inner fold 0"})
    return out


if __name__ == "__main__":
    main()
