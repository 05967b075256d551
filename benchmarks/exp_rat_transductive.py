"""Rat: embed the held-out part on one graph with the (unlabelled) training part (issue 16, the 10 % margin).

Today the held-out part is embedded on its own graph: its derivative features come from held-out neighbours
only. Here the fitted model also embeds the held-out flow field stacked with the training flow field (one
condition label, so one graph; no labels read) and keeps the held-out rows - the same thing as
``MARBLE.transform(ff, support=ff_train)``. Three ways to decode, all with the cosine kNN and k chosen on the
training part (by median error and by R^2), plus fixed k values as diagnostics:

- ``own graph``: training rows from the fitted graph, held-out rows from their own graph (the protocol today);
- ``joint test``: training rows from the fitted graph, held-out rows from the joint graph;
- ``joint both``: both from the joint graph (the decoder's training set = the support's own joint embeddings).

Single models over seeds and concatenations of ``m`` members (seeds e*m .. e*m+m-1; side by side is
rotation-free for the cosine kNN, so members are stacked as they are), the input decoded in the same run, and
the seed-to-seed consistency of the held-out embeddings under each graph (100 position bins per direction).

Splits: ``inner`` (fit 0-60 %, validate 60-80 %, support = the 0-60 % part; the last 20 % never read) and
``protocol`` (fit the first 80 %, test the last 20 %). ``--fit-on-both``: transductive training - the model is
fitted on the joint field (the held-out part's flow trained on, its labels never read; not the benchmark's
protocol, which fits on the first part only); "joint both" is then the graph the network was trained on.
``--drop-first F`` (with ``--fit-on-both``): the first fraction F of the fitted part is left out of training
(its labels still train the decoder) - with F = 1/3 on ``inner`` the network trains on as many rows as
without ``--fit-on-both``, so a gain then comes from training on the held-out part, not from more data.

Result (results/exp_rat_transductive.json, every row with its command): no help. Inner split, input 7.01 / 7.09 cm
(k by median / R^2): single models 6.63 / 6.65 own graph vs 6.67 / 6.67 joint test, 6.74 / 6.63 joint both;
concat of 2 6.42 / 6.22 vs 6.49 / 6.37 and 6.49 / 6.29. The joint graph changes the held-out derivative features
by 54 % of their norm (the JSON's ``input_norm_share``) but the decoding hardly: the trained network barely reads
them (benchmarks/exp_rat_feature_ablation.py). Fitting on both parts helped on the inner split (6.16 / 6.33), half of
it from the extra rows (control of equal size 6.38 / 6.53), and hurt on the protocol split (6.96 / 7.09 vs 6.67 /
6.89).

Run: ``python benchmarks/exp_rat_transductive.py inner [--seeds 5] [--members 2 3 4 5] [--fit-only SEED ...]``
(``--fit-only`` fills the cache with those seeds and exits: split the fits over processes). Rows merge into
benchmarks/results/exp_rat_transductive.json by (split, method, graph).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, print_table, write_json  # noqa: E402

from marble_widgets import recipes  # noqa: E402

#: how the held-out part is embedded and which training rows the decoder reads (see the module docstring)
GRAPHS = ("own graph", "joint test", "joint both")
#: k of the diagnostic columns
FIXED_K = (1, 5, 10, 20)
JOINT_CONDITION = "joint"


def split_fields(split: str) -> tuple[xr.Dataset, xr.Dataset]:
    """(fitted part, held-out part) flow fields of ``split`` with the rat_recommended inputs."""
    if split == "inner":
        from exp_rat_screen import inner_fields

        return inner_fields()
    if split == "protocol":
        from exp_rat_outer import protocol_fields

        return protocol_fields()
    raise ValueError(f"split must be 'inner' or 'protocol'; got {split!r}.")


def joint_field(ff: xr.Dataset, support: xr.Dataset) -> xr.Dataset:
    """``ff``'s rows followed by ``support``'s, all under one condition label (one graph, labels unread)."""
    parts = [f.assign_coords(condition=("sample", np.full(f.sizes["sample"], JOINT_CONDITION))) for f in (ff, support)]
    joint = xr.concat(parts, dim="sample", coords="minimal", compat="override", join="override")
    return joint.assign_coords(sample=np.arange(joint.sizes["sample"]))


def joint_transform(model: Any, ff: xr.Dataset, support: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of ``ff``'s rows and of ``support``'s rows from one graph over both."""
    z = model.transform(joint_field(ff, support)).values
    n = ff.sizes["sample"]
    return z[:n], z[n:]


def fit_all(ff_fit: xr.Dataset, ff_val: xr.Dataset, params: dict[str, Any], seed: int,
            fit_on_both: bool = False, drop_first: float = 0.0) -> dict[str, np.ndarray]:
    """Fit on ``ff_fit`` with ``seed``; the fitted-graph, own-graph and joint-graph embeddings.

    ``fit_on_both``: fit on the joint field instead (the held-out part unlabelled but trained on), without
    the first ``drop_first`` fraction of ``ff_fit``'s rows (a control of the same size as ``ff_fit``).
    """
    from marble_widgets import MARBLE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = int(round(drop_first * ff_fit.sizes["sample"]))
        model = MARBLE(**{**params, "seed": seed, "verbose": False}).fit(
            joint_field(ff_val, ff_fit.isel(sample=slice(start, None))) if fit_on_both else ff_fit)
        z_val_joint, z_fit_joint = joint_transform(model, ff_val, ff_fit)
        return {"z_fit": model.transform(ff_fit).values, "z_val_own": model.transform(ff_val).values,
                "z_val_joint": z_val_joint, "z_fit_joint": z_fit_joint}


def cached(split: str, ff_fit: xr.Dataset, ff_val: xr.Dataset, params: dict[str, Any], seed: int,
           cache: Path, fit_on_both: bool = False, drop_first: float = 0.0) -> dict[str, np.ndarray]:
    """:func:`fit_all`'s embeddings, read from ``cache`` when this exact fit was run before."""
    from seed_stability import _cache_name

    folder = f"{split}_fit_on_both" + (f"_drop{drop_first:g}" if drop_first else "") if fit_on_both else split
    path = cache / folder / _cache_name(params, seed)
    if path.is_file():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    t0 = time.perf_counter()
    out = fit_all(ff_fit, ff_val, params, seed, fit_on_both, drop_first)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    print(f"  {split}: fitted seed {seed} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def pair(fit: dict[str, np.ndarray], graph: str) -> tuple[np.ndarray, np.ndarray]:
    """(decoder's training rows, held-out rows) of one fit under ``graph``."""
    if graph == "own graph":
        return fit["z_fit"], fit["z_val_own"]
    if graph == "joint test":
        return fit["z_fit"], fit["z_val_joint"]
    if graph == "joint both":
        return fit["z_fit_joint"], fit["z_val_joint"]
    raise ValueError(f"graph must be one of {GRAPHS}; got {graph!r}.")


def side_by_side(fits: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Members stacked along the latent axis (the cosine kNN on it = the members' summed dot products)."""
    return {key: np.hstack([f[key] for f in fits]) for key in fits[0]}


def scores(z_tr: np.ndarray, z_te: np.ndarray, ff_fit: xr.Dataset, ff_val: xr.Dataset) -> dict[str, Any]:
    """Both k rules' held-out median error (cm, k) and the error at each fixed k."""
    from exp_rat_screen import fixed_k_cm
    from seed_stability import decode_position

    return {**decode_position(z_tr, z_te, ff_fit, ff_val),
            **{f"cm_k{k}": fixed_k_cm(z_tr, z_te, ff_fit, ff_val, k) for k in FIXED_K}}


def summarise(method: str, graph: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± SD over seeds / ensembles of every figure in ``runs``."""
    row: dict[str, Any] = {"method": method, "graph": graph}
    for tag in ("k_by_median", "k_by_r2", *(f"k{k}" for k in FIXED_K)):
        v = np.array([r[f"cm_{tag}"] for r in runs])
        row[f"cm_{tag}_mean"], row[f"cm_{tag}_sd"] = float(v.mean()), float(v.std())
        row[f"cm ({tag})"] = f"{v.mean():.2f} ± {v.std():.2f}" if len(v) > 1 else f"{v.mean():.2f}"
    row["per_seed"] = runs
    return row


def consistency_rows(fits: list[dict[str, np.ndarray]], ff_fit: xr.Dataset, ff_val: xr.Dataset) -> dict[str, Any]:
    """Seed-to-seed consistency of the training rows and of the held-out rows under each graph."""
    from seed_stability import seed_consistency

    return {"fit (fitted graph)": seed_consistency([f["z_fit"] for f in fits], ff_fit),
            "fit (joint graph)": seed_consistency([f["z_fit_joint"] for f in fits], ff_fit),
            "held-out (own graph)": seed_consistency([f["z_val_own"] for f in fits], ff_val),
            "held-out (joint graph)": seed_consistency([f["z_val_joint"] for f in fits], ff_val)}


def evaluate(fits: list[dict[str, np.ndarray]], members: tuple[int, ...], ff_fit: xr.Dataset,
             ff_val: xr.Dataset) -> list[dict[str, Any]]:
    """Rows of single models and of concatenations of each size in ``members``, under every graph."""
    groups: dict[str, list[dict[str, np.ndarray]]] = {"single": fits}
    for m in members:
        if len(fits) >= m:
            groups[f"concat of {m}"] = [side_by_side(fits[e * m:(e + 1) * m]) for e in range(len(fits) // m)]
    rows = []
    for method, embs in groups.items():
        for graph in GRAPHS:
            rows.append(summarise(method, graph, [{"seed": i, **scores(*pair(z, graph), ff_fit, ff_val)}
                                                  for i, z in enumerate(embs)]))
            print(f"  {method}, {graph}: {rows[-1]['cm (k_by_median)']} / {rows[-1]['cm (k_by_r2)']} cm "
                  f"(k 10: {rows[-1]['cm (k10)']})", flush=True)
    return rows


def input_row(ff_fit: xr.Dataset, ff_val: xr.Dataset) -> dict[str, Any]:
    """The PCA input decoded the same way (no graph: one row)."""
    return summarise("input: PCA-10 (250 ms)", "", [scores(ff_fit["x"].values, ff_val["x"].values, ff_fit, ff_val)])


def merge(split: str, rows: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    """Merge rows into benchmarks/results/exp_rat_transductive.json by (split, method, graph)."""
    path = RESULTS / "exp_rat_transductive.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    keep = {(r["split"], r["method"], r["graph"]): r for r in old.get("rows", [])}
    keep.update({(split, r["method"], r["graph"]): {**r, "split": split} for r in rows})
    others = {k: v for k, v in old.items() if k not in ("machine", "date", "rows", "runs")}
    write_json("exp_rat_transductive", {**others, "rows": list(keep.values()),
                                        "runs": {**old.get("runs", {}), split: extra}})


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Fit (or read) the seeds, decode every variant next to the input, print and merge the rows."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split", choices=("inner", "protocol"))
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..n-1 (members of the concatenations)")
    parser.add_argument("--singles", type=int, default=None, help="single-model rows from seeds 0..n-1 only")
    parser.add_argument("--members", type=int, nargs="+", default=[2, 3, 4, 5])
    parser.add_argument("--fit-on-both", action="store_true",
                        help="transductive training: fit on the fitted and the held-out part (labels unread)")
    parser.add_argument("--drop-first", type=float, default=0.0, metavar="FRACTION",
                        help="with --fit-on-both: leave this first fraction of the fitted part out of training")
    parser.add_argument("--fit-only", type=int, nargs="+", metavar="SEED", help="fit these seeds and exit")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "marble_widgets_bench" / "rat_transductive")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    params = dict(recipes.get("rat_recommended").marble)
    ff_fit, ff_val = split_fields(args.split)
    seeds = args.fit_only or range(args.seeds)
    t0 = time.perf_counter()
    if args.drop_first and not args.fit_on_both:
        parser.error("--drop-first is a control of --fit-on-both: give both")
    fits = [cached(args.split, ff_fit, ff_val, params, s, args.cache_dir, args.fit_on_both, args.drop_first)
            for s in seeds]
    if args.fit_only:
        return []
    singles = fits[:args.singles] if args.singles else fits
    rows = [input_row(ff_fit, ff_val)] + [r for r in evaluate(singles, (), ff_fit, ff_val)]
    rows += [r for r in evaluate(fits, tuple(args.members), ff_fit, ff_val) if r["method"] != "single"]
    cons = consistency_rows(singles, ff_fit, ff_val)
    command = f"python benchmarks/exp_rat_transductive.py {shlex.join(sys.argv[1:] if argv is None else argv)}"
    print_table(rows, ["method", "graph", "cm (k_by_median)", "cm (k_by_r2)",
                       *(f"cm (k{k})" for k in FIXED_K)])
    print("seed-to-seed consistency (single models, mean / min): " + "; ".join(
        f"{k} {v['mean']:.3f} / {v['min']:.3f}" for k, v in cons.items()))
    split = f"{args.split}, fitted on both parts" if args.fit_on_both else args.split
    if args.drop_first:
        split += f" without the first {args.drop_first:.0%} of the fitted part"
    merge(split, [{**r, "command": command} for r in rows],
          {"command": command, "seeds": len(fits), "singles": len(singles), "params": _jsonable(params),
           "consistency": cons, "n_fit": int(ff_fit.sizes["sample"]), "n_held_out": int(ff_val.sizes["sample"]),
           "seconds": time.perf_counter() - t0})
    return rows


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


if __name__ == "__main__":
    main()
