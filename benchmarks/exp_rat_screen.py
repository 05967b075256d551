"""Screen of rat settings on the training part only (issue 16: a 10 % margin over the input, 3-D consistency).

Inner split of the rat protocol: MARBLE and the preprocessing are fitted on the first 60 % of the session,
decoded on the next 20 % (the last 20 %, the protocol's test part, is never read). Every candidate is
rat_recommended + changes; reports median error (k by median error and by R^2) over seeds, the input's
figures, and the seed-to-seed consistency of the fitted embeddings (100 position bins per direction).

Run: ``python benchmarks/exp_rat_screen.py [--seeds 2] [--only NAME ...] [--out-dim 32]``; writes
benchmarks/results/exp_rat_screen.json (rows merged by name and out_dim).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, print_table, write_json  # noqa: E402

from marble_widgets import recipes  # noqa: E402

#: rat_recommended + these changes (issue 16, 4 seeds; results/exp_rat_screen.json); "300 epochs, average
#: last third" has not been run. The temperature divides the logits of the unit-norm embedding (emb_norm).
CANDIDATES: dict[str, dict[str, Any]] = {
    "recommended": {},
    "300 epochs": {"epochs": 300},
    "300 epochs, average last third": {"epochs": 300, "average_from": 0.67},
    "200 epochs": {"epochs": 200},
    "out_dim 64": {"out_dim": 64},
    "lr 0.003": {"lr": 0.003},
    "temperature 0.2": {"temperature": 0.2},
}


def inner_fields() -> tuple[Any, Any]:
    """Flow fields of the first 60 % (fit) and the next 20 % (validation) of the session."""
    from fidelity import flow_pair, rat_parts

    fit, val = rat_parts(0.6, stop=0.8)
    inputs = recipes.get("rat_recommended").flow_field
    return flow_pair(fit, val, inputs["n_components"], inputs["smooth"])


def run(name: str, ff_fit: Any, ff_val: Any, seeds: tuple[int, ...], out_dim: int,
        cache: Path) -> dict[str, Any]:
    """Decoding and consistency of one candidate over seeds."""
    from seed_stability import cached_fit, decode_position, seed_consistency

    # --out-dim sets the width unless the candidate is about the width itself ("out_dim 64")
    params = {**recipes.get("rat_recommended").marble, "out_dim": out_dim, **CANDIDATES[name]}
    t0 = time.perf_counter()
    fits = [cached_fit(ff_fit, ff_val, params, s, cache) for s in seeds]
    runs = [{"seed": s, **decode_position(*z, ff_fit, ff_val)} for s, z in zip(seeds, fits)]
    row: dict[str, Any] = {"method": name, "out_dim": params["out_dim"], "changes": CANDIDATES[name]}
    for tag in ("k_by_median", "k_by_r2"):
        v = np.array([r[f"cm_{tag}"] for r in runs])
        row[f"cm_{tag}"] = f"{v.mean():.2f} ± {v.std():.2f}"
        row[f"cm_{tag}_mean"] = float(v.mean())
    row["consistency"] = seed_consistency([z for z, _ in fits], ff_fit)["mean"] if len(seeds) > 1 else None
    row.update(per_seed=runs, seconds=time.perf_counter() - t0)
    print(f"  {name} (out_dim {out_dim}): {row['cm_k_by_median']} / {row['cm_k_by_r2']} cm, "
          f"consistency {row['consistency']}", flush=True)
    return row


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Score the chosen candidates, print them and merge them into the JSON."""
    import torch

    from seed_stability import decode_position

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out-dim", type=int, default=32)
    parser.add_argument("--only", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/h4/cache_inner"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ff_fit, ff_val = inner_fields()
    x = decode_position(ff_fit["x"].values, ff_val["x"].values, ff_fit, ff_val)
    print(f"  input: {x}", flush=True)
    rows = [run(n, ff_fit, ff_val, tuple(range(args.seeds)), args.out_dim, args.cache_dir) for n in args.only]
    print_table(rows, ["method", "out_dim", "cm_k_by_median", "cm_k_by_r2", "consistency", "seconds"])
    path = RESULTS / "exp_rat_screen.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    keep = {(r["method"], r["out_dim"]): r for r in old.get("rows", [])}
    keep.update({(r["method"], r["out_dim"]): r for r in rows})
    write_json("exp_rat_screen", {"input": x, "split": "fit 0-60 %, validate 60-80 %", "rows": list(keep.values())})
    return rows


if __name__ == "__main__":
    main()
