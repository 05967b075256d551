"""Macaque ensembles on training trials only: single macaque_tuned models, their aligned mean, side by side.

The inner split of ``benchmarks/exp_macaque_screen.py`` (outer fold 0's training trials, one stratified
fifth held out; the outer test trials never read). Members are seeds 0..n-1 of ``macaque_tuned`` on one
graph over all trials; velocity R^2 of ``fidelity.py``'s ridge decoder on the inner holdout for every
single member, and for the first 3 and the first 5 members averaged after Procrustes, concatenated, and
with their ridge predictions averaged.

Run: ``python benchmarks/exp_macaque_ensemble.py [--seeds 5]``; prints the figures.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from marble_widgets import recipes  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Fit the members, print single and combined R^2."""
    import torch
    from sklearn.metrics import r2_score

    from exp_macaque_screen import inner_split
    from fidelity import flow_pair, marble_embed, ridge_velocity, unlabelled
    from seed_stability import combine_members

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    recipe = recipes.get("macaque_tuned")
    fit, val = inner_split()
    ff_fit, ff_val = flow_pair(fit, val, recipe.flow_field["n_components"], recipe.flow_field["smooth"],
                               condition="condition")
    ff_fit, ff_val = unlabelled(ff_fit), unlabelled(ff_val)
    truth = ff_val["hand_velocity"].values

    def r2(z_fit: np.ndarray, z_val: np.ndarray) -> float:
        return float(r2_score(truth, ridge_velocity(z_fit, ff_fit, z_val, ff_val)))

    members = [marble_embed(ff_fit, ff_val, dict(recipe.marble), s)[:2] for s in range(args.seeds)]
    out = {f"single seed {s}": r2(*z) for s, z in enumerate(members)}
    for m in (3, 5):
        if m <= args.seeds:
            group = members[:m]
            out[f"mean of {m}"] = r2(*combine_members(group, ff_fit, {}))
            out[f"concat of {m}"] = r2(*combine_members(group, ff_fit, {}, combine="concat"))
            preds = np.mean([ridge_velocity(a, ff_fit, b, ff_val) for a, b in group], axis=0)
            out[f"mean prediction of {m}"] = float(r2_score(truth, preds))
    for name, value in out.items():
        print(f"{name}: R2 {value:.3f}")
    return out


if __name__ == "__main__":
    main()
