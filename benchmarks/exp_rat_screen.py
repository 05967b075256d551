"""Screen of rat settings on the training part only (issue 16: a 10 % margin over the input, 3-D consistency).

Inner split of the rat protocol: MARBLE and the preprocessing are fitted on the first 60 % of the session,
decoded on the next 20 % (the last 20 %, the protocol's test part, is never read). Every candidate is
rat_recommended + changes: MARBLE parameters, flow-field inputs (``flow_field``: ``n_components``, ``smooth``;
the row then also carries that input's own figures) and/or an ensemble (``ensemble``: ``n_members`` models of
seeds ``e*m .. e*m+m-1`` side by side or averaged, as :class:`marble_widgets.MARBLEEnsemble` combines them).
Reports the median error with k chosen by median error and by R^2 (mean ± SD over seeds / ensembles), the
error at a fixed k = 10 (a diagnostic: the median rule picks k = 5 for every recommended model, where k = 10
decodes the validation part better), the input's figures, and the seed-to-seed consistency of the fitted
embeddings (100 position bins per direction).

Run: ``python benchmarks/exp_rat_screen.py [--seeds 2] [--only NAME ...] [--out-dim 32] [--cache-dir DIR]``;
writes benchmarks/results/exp_rat_screen.json (rows merged by name and out_dim, under a file lock).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, print_table, write_json  # noqa: E402

from marble_widgets import recipes  # noqa: E402

#: rat_recommended + these changes (issue 16, 4 seeds; results/exp_rat_screen.json). Keys ``flow_field`` and
#: ``ensemble`` change the input / combine seeds; every other key is a MARBLE parameter. The temperature
#: divides the logits of the unit-norm embedding (emb_norm). Best with k by median error: "n_components 8,
#: concat of 2" (6.32 cm vs input 7.01); on the protocol split it decoded 6.95 cm, worse than the shipped
#: rat_ensemble_concat (benchmarks/exp_rat_outer.py, seed_stability.json key outer_candidates).
CANDIDATES: dict[str, dict[str, Any]] = {
    "recommended": {},
    "300 epochs": {"epochs": 300},
    "300 epochs, average last third": {"epochs": 300, "average_from": 0.67},
    "200 epochs": {"epochs": 200},
    "out_dim 64": {"out_dim": 64},
    "lr 0.003": {"lr": 0.003},
    "temperature 0.2": {"temperature": 0.2},
    "smooth 0.15": {"flow_field": {"smooth": 0.15}},
    "smooth 0.1": {"flow_field": {"smooth": 0.1}},
    "diffusion": {"diffusion": True},
    "graph k 400": {"k": 400},
    "vec_norm": {"vec_norm": True},
    "smooth 0.3": {"flow_field": {"smooth": 0.3}},
    "n_components 8": {"flow_field": {"n_components": 8}},
    "n_components 8, concat of 2": {"flow_field": {"n_components": 8},
                                    "ensemble": {"n_members": 2, "combine": "concat"}},
    "300 epochs, average last third, concat of 2": {"epochs": 300, "average_from": 0.67,
                                                    "ensemble": {"n_members": 2, "combine": "concat"}},
    "concat of 2": {"ensemble": {"n_members": 2, "combine": "concat"}},
    "300 epochs, concat of 2": {"epochs": 300, "ensemble": {"n_members": 2, "combine": "concat"}},
    "out_dim 64, concat of 2": {"out_dim": 64, "ensemble": {"n_members": 2, "combine": "concat"}},
    "out_dim 64, 300 epochs": {"out_dim": 64, "epochs": 300},
    "concat of 4": {"ensemble": {"n_members": 4, "combine": "concat"}},
    "300 epochs, concat of 4": {"epochs": 300, "ensemble": {"n_members": 4, "combine": "concat"}},
    "out_dim 64, concat of 4": {"out_dim": 64, "ensemble": {"n_members": 4, "combine": "concat"}},
}
#: fixed k of the diagnostic column (the median rule's usual pick is 5)
K_DIAGNOSTIC = 10


def inner_fields(**changes: Any) -> tuple[Any, Any]:
    """Flow fields of the first 60 % (fit) and the next 20 % (validation); ``changes`` to the recipe's inputs."""
    from fidelity import flow_pair, rat_parts

    fit, val = rat_parts(0.6, stop=0.8)
    inputs = {**recipes.get("rat_recommended").flow_field, **changes}
    return flow_pair(fit, val, inputs["n_components"], inputs["smooth"])


def split_changes(changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A candidate's (flow-field changes, MARBLE changes, ensemble settings)."""
    marble = {k: v for k, v in changes.items() if k not in ("flow_field", "ensemble")}
    return dict(changes.get("flow_field", {})), marble, dict(changes.get("ensemble", {}))


def cache_for(cache: Path, flow_changes: dict[str, Any]) -> Path:
    """The cache folder of one flow field (the recipe's own: ``cache`` itself, so older caches stay valid)."""
    if not flow_changes:
        return cache
    return cache / ("ff_" + "_".join(f"{k}{v}" for k, v in sorted(flow_changes.items())))


def embeddings(ff_fit: Any, ff_val: Any, params: dict[str, Any], ensemble: dict[str, Any],
               seeds: tuple[int, ...], cache: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (fit, validation) embedding pair per seed, or per ensemble seed (members e*m .. e*m+m-1)."""
    from seed_stability import cached_fit, combine_members

    if not ensemble:
        return [cached_fit(ff_fit, ff_val, params, s, cache) for s in seeds]
    ens = dict(ensemble)
    m, combine = int(ens.pop("n_members")), ens.pop("combine", "mean")
    return [combine_members([cached_fit(ff_fit, ff_val, params, e * m + i, cache) for i in range(m)],
                            ff_fit, ens, ens.pop("n_components", None), combine) for e in seeds]


def fixed_k_cm(z_fit: np.ndarray, z_val: np.ndarray, ff_fit: Any, ff_val: Any, k: int = K_DIAGNOSTIC) -> float:
    """Validation median position error (cm) of the cosine kNN with a fixed ``k`` (diagnostic only)."""
    from marble_widgets.analysis import train_test_decode
    from seed_stability import _latent

    res = train_test_decode(_latent(z_fit), ff_fit["position"].values, _latent(z_val), ff_val["position"].values,
                            kind="knn", k=k, metric="cosine", task="regression")
    return float(res["median_abs_error"].values.ravel()[0]) * 100


def run(name: str, seeds: tuple[int, ...], out_dim: int, cache: Path,
        fields: dict[str, tuple[Any, Any]], command: str = "") -> dict[str, Any]:
    """Decoding and consistency of one candidate over seeds (ensemble seeds for ensembles)."""
    from seed_stability import decode_position, seed_consistency

    flow_changes, marble_changes, ensemble = split_changes(CANDIDATES[name])
    key = json.dumps(flow_changes, sort_keys=True)
    if key not in fields:
        fields[key] = inner_fields(**flow_changes)
    ff_fit, ff_val = fields[key]
    # --out-dim sets the width unless the candidate is about the width itself ("out_dim 64")
    params = {**recipes.get("rat_recommended").marble, "out_dim": out_dim, **marble_changes}
    t0 = time.perf_counter()
    fits = embeddings(ff_fit, ff_val, params, ensemble, seeds, cache_for(cache, flow_changes))
    runs = [{"seed": s, **decode_position(*z, ff_fit, ff_val), f"cm_k{K_DIAGNOSTIC}": fixed_k_cm(*z, ff_fit, ff_val)}
            for s, z in zip(seeds, fits)]
    row: dict[str, Any] = {"method": name, "out_dim": params["out_dim"], "changes": CANDIDATES[name],
                           "command": command}
    for tag in ("k_by_median", "k_by_r2", f"k{K_DIAGNOSTIC}"):
        v = np.array([r[f"cm_{tag}"] for r in runs])
        row[f"cm_{tag}"] = f"{v.mean():.2f} ± {v.std():.2f}"
        row[f"cm_{tag}_mean"] = float(v.mean())
    row["consistency"] = seed_consistency([z for z, _ in fits], ff_fit)["mean"] if len(seeds) > 1 else None
    if flow_changes:  # this input's own figures, to compare the row with
        row["input"] = decode_position(ff_fit["x"].values, ff_val["x"].values, ff_fit, ff_val)
    row.update(per_seed=runs, seconds=time.perf_counter() - t0)
    print(f"  {name} (out_dim {params['out_dim']}): {row['cm_k_by_median']} / {row['cm_k_by_r2']} cm "
          f"(k {K_DIAGNOSTIC}: {row[f'cm_k{K_DIAGNOSTIC}']}), consistency {row['consistency']}"
          + (f", its input {row['input']['cm_k_by_median']:.2f} / {row['input']['cm_k_by_r2']:.2f}"
             if flow_changes else ""), flush=True)
    return row


def merge_rows(rows: list[dict[str, Any]], x: dict[str, Any]) -> None:
    """Merge ``rows`` into the JSON by (method, out_dim) under a file lock (screens may run side by side)."""
    import fcntl
    import tempfile

    path = RESULTS / "exp_rat_screen.json"
    with open(Path(tempfile.gettempdir()) / "marble_exp_rat_screen.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(path.read_text()) if path.is_file() else {}
        keep = {(r["method"], r["out_dim"]): r for r in old.get("rows", [])}
        keep.update({(r["method"], r["out_dim"]): r for r in rows})
        write_json("exp_rat_screen", {"input": x, "split": "fit 0-60 %, validate 60-80 %",
                                      "rows": list(keep.values())})


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Score the chosen candidates, print them and merge them into the JSON."""
    import torch

    from seed_stability import decode_position

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="seeds (ensemble seeds for ensembles) 0..n-1")
    parser.add_argument("--out-dim", type=int, default=32)
    parser.add_argument("--only", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "marble_widgets_bench" / "rat_inner")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    fields = {json.dumps({}): inner_fields()}
    ff_fit, ff_val = fields[json.dumps({})]
    x = decode_position(ff_fit["x"].values, ff_val["x"].values, ff_fit, ff_val)
    print(f"  input: {x}", flush=True)
    command = "python benchmarks/exp_rat_screen.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    rows = [run(n, tuple(range(args.seeds)), args.out_dim, args.cache_dir, fields, command) for n in args.only]
    print_table(rows, ["method", "out_dim", "cm_k_by_median", "cm_k_by_r2", f"cm_k{K_DIAGNOSTIC}", "consistency",
                       "seconds"])
    merge_rows(rows, x)
    return rows


if __name__ == "__main__":
    main()
