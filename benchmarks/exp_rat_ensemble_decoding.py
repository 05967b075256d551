"""How to decode an ensemble of rat models: single members, their aligned mean, or side by side (concatenated).

Reads the fits that ``benchmarks/exp_rat_screen.py`` (inner split: fit on the first 60 %, validate on the
next 20 %) or ``benchmarks/seed_stability.py --cache-dir`` (protocol split: first 80 % / last 20 %) cached,
groups seeds 0..n-1 into ensembles of ``m`` disjoint members and decodes position with both k rules.
The choice of ``rat_ensemble_concat`` was made on the inner split (the protocol's test part unread).

Run: ``python benchmarks/exp_rat_ensemble_decoding.py inner CACHE_DIR [--seeds 4] [--members 2]``
(``protocol`` instead of ``inner`` for the 80/20 split's fits). Prints the figures.
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


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Decode single members, aligned means and concatenations of the cached rat_recommended fits."""
    import seed_stability as S

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split", choices=("inner", "protocol"))
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="the fits' epochs if not the recipe's")
    args = parser.parse_args(argv)
    if args.split == "inner":
        from exp_rat_screen import inner_fields

        ff_tr, ff_te = inner_fields()
    else:
        ff_tr, ff_te = S.rat_flow_fields()
    params = {**recipes.get("rat_recommended").marble, **({"epochs": args.epochs} if args.epochs else {})}
    fits = []
    for seed in range(args.seeds):
        path = args.cache_dir / S._cache_name(params, seed)
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run exp_rat_screen.py / seed_stability.py with this cache first")
        with np.load(path) as f:
            fits.append((f["z_tr"], f["z_te"]))
    m = args.members
    groups = [fits[e * m:(e + 1) * m] for e in range(args.seeds // m)]
    variants = {"single": fits,
                f"mean of {m} (aligned rows)": [S.combine_members(g, ff_tr, {}) for g in groups],
                f"concat of {m}": [S.combine_members(g, ff_tr, {}, combine="concat") for g in groups]}
    out = {}
    for name, zs in variants.items():
        runs = [S.decode_position(a, b, ff_tr, ff_te) for a, b in zs]
        out[name] = {tag: float(np.mean([r[f"cm_{tag}"] for r in runs])) for tag in ("k_by_median", "k_by_r2")}
        print(f"{name}: {out[name]['k_by_median']:.2f} / {out[name]['k_by_r2']:.2f} cm "
              f"(per group {[round(r['cm_k_by_median'], 2) for r in runs]})", flush=True)
    x = S.decode_position(ff_tr["x"].values, ff_te["x"].values, ff_tr, ff_te)
    print(f"input: {x['cm_k_by_median']:.2f} / {x['cm_k_by_r2']:.2f} cm")
    return out


if __name__ == "__main__":
    main()
