"""Macaque member screen (issue 16): cached member embeddings, single and side-by-side velocity R^2.

Each member = ``macaque_tuned`` + changes, one seed, fitted on the fit trials only (one graph, labels unused).
Held-out trials are embedded two ways: ``own`` = their own graph (``fidelity.py``'s protocol), ``joint`` =
one graph over the fit trials and the held-out trials together, the held-out rows kept (the fit trials are
unlabelled support, as a kNN decoder's training points are; no held-out label is read). Decoder:
``fidelity.ridge_velocity`` (standardised RidgeCV, alpha by trial-grouped CV on the fit trials).

Split ``inner`` = ``exp_macaque_screen.inner_split`` (outer fold 0's training trials, a stratified fifth held
out); ``outer F`` = fidelity's fold F held out (the confirmation, never used for choices).

Run: ``python benchmarks/exp_macaque_members.py --split inner --members tuned:0-4 --groups "tuned:0-2" ...``
(see ``--help``); embeddings cached in ``--cache-dir``; prints rows and merges them into
benchmarks/results/exp_macaque_members.json (keyed by split, row, mode). ``--summary`` prints every member
pattern's mean ± SD over its seed groups from the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, print_table  # noqa: E402

from marble_widgets import recipes  # noqa: E402

#: name -> (flow-field changes, MARBLE changes) on top of macaque_tuned
CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "tuned": ({}, {}),
    "order1": ({}, {"order": 1}),
    "k15": ({}, {"k": 15}),
    "k50": ({}, {"k": 50}),
    "s50": ({"smooth": 0.05}, {}),
    "s150": ({"smooth": 0.15}, {}),
    "out40": ({}, {"out_dim": 40}),
    "nodiff": ({}, {"diffusion": False}),
    "pca8": ({"n_components": 8}, {}),
    "o1s50": ({"smooth": 0.05}, {"order": 1}),
    "o1s150": ({"smooth": 0.15}, {"order": 1}),
    "s30": ({"smooth": 0.03}, {}),
}


def parse_members(spec: str) -> list[tuple[str, int]]:
    """``"tuned:0-4"`` -> [("tuned", 0) ... ("tuned", 4)]; ``"k15:3"`` -> [("k15", 3)]; comma-joined lists."""
    out = []
    for part in spec.split(","):
        name, _, seeds = part.strip().partition(":")
        if name not in CONFIGS or not seeds:
            raise ValueError(f"member spec {part!r}: need NAME:SEEDS with NAME one of {sorted(CONFIGS)}, "
                             f"e.g. 'tuned:0-4' or 'k15:2'.")
        lo, _, hi = seeds.partition("-")
        out += [(name, s) for s in range(int(lo), int(hi or lo) + 1)]
    return out


def split_trials(split: str) -> tuple[xr.Dataset, xr.Dataset]:
    """Fit and held-out trials: the inner split of fold 0's training trials, or outer fold F."""
    if split == "inner":
        from exp_macaque_screen import inner_split

        return inner_split()
    from fidelity import trial_folds

    from marble_widgets.datasets import mc_maze_small

    fold = int(split.removeprefix("outer"))
    ds = mc_maze_small(bin_size=recipes.get("macaque_paper").extra["bin_size"])
    f = trial_folds(ds["condition"].values)
    return ds.isel(trial=np.flatnonzero(f != fold)), ds.isel(trial=np.flatnonzero(f == fold))


def flow_fields(fit: xr.Dataset, val: xr.Dataset, ff_change: dict[str, Any]) -> tuple[xr.Dataset, xr.Dataset]:
    """Unlabelled flow fields of both parts, preprocessing fitted on the fit trials."""
    from fidelity import flow_pair, unlabelled

    inputs = {**recipes.get("macaque_tuned").flow_field, **ff_change}
    ff_fit, ff_val = flow_pair(fit, val, inputs["n_components"], inputs["smooth"], condition="condition")
    return unlabelled(ff_fit), unlabelled(ff_val)


def member(split: str, name: str, seed: int, parts: tuple[xr.Dataset, xr.Dataset], cache: Path) -> dict[str, Any]:
    """One member's embeddings (fit rows; held-out rows by own and by joint graph), cached on disk."""
    import warnings

    from marble_widgets import MARBLE

    path = cache / f"{split}_{name}_{seed}.npz"
    if path.exists():
        return dict(np.load(path))
    ff_change, m_change = CONFIGS[name]
    ff_fit, ff_val = flow_fields(*parts, ff_change)
    joint = xr.concat([ff_fit, ff_val], dim="sample")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MARBLE(**{**recipes.get("macaque_tuned").marble, **m_change}, seed=seed, verbose=False).fit(ff_fit)
        out = {"fit": model.transform(ff_fit).values, "own": model.transform(ff_val).values,
               "joint": model.transform(joint).values[ff_fit.sizes["sample"]:]}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    print(f"  fitted {name} seed {seed} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def r2_parts(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Pooled velocity R^2 (sklearn's uniform average over x and y) and per component."""
    from sklearn.metrics import r2_score

    return {"r2": float(r2_score(truth, pred)), "r2_x": float(r2_score(truth[:, 0], pred[:, 0])),
            "r2_y": float(r2_score(truth[:, 1], pred[:, 1]))}


def score_group(name: str, members: list[dict[str, Any]], ff_fit: xr.Dataset, ff_val: xr.Dataset,
                mode: str, with_input: bool = False) -> dict[str, Any]:
    """Members side by side (plain concatenation; ridge standardises each column), decoded with fidelity's ridge."""
    from fidelity import ridge_velocity

    z_fit = np.hstack([m["fit"] for m in members] + ([ff_fit["x"].values] if with_input else []))
    z_val = np.hstack([m[mode] for m in members] + ([ff_val["x"].values] if with_input else []))
    pred = ridge_velocity(z_fit, ff_fit, z_val, ff_val)
    return {"row": name, "mode": mode, "n_members": len(members), "with_input": with_input,
            **r2_parts(ff_val["hand_velocity"].values, pred)}


def merge_rows(split: str, rows: list[dict[str, Any]], path: Path = RESULTS / "exp_macaque_members.json") -> None:
    """Merge rows into the JSON, keyed by (split, row, mode, with_input); existing other rows kept."""
    old = json.loads(path.read_text()) if path.exists() else {"rows": []}
    key = lambda r: (r["split"], r["row"], r["mode"], r["with_input"])  # noqa: E731
    merged = {key(r): r for r in old["rows"]}
    merged.update({key(r): r for r in ({**r, "split": split} for r in rows)})
    path.write_text(json.dumps({"machine": machine(), "date": time.strftime("%Y-%m-%d"),
                                "rows": list(merged.values())}, indent=2) + "\n")
    print(f"wrote {path}")


def pattern(row: str) -> str:
    """A row's member names without seeds ("tuned:0,s50:0" -> "tuned+s50"; "tuned:0-2" -> "tuned x3")."""
    names = [m for m, _ in parse_members(row)] if ":" in row else [row]
    return "+".join(names) if len(set(names)) > 1 or len(names) == 1 else f"{names[0]} x{len(names)}"


def summary(split: str, path: Path = RESULTS / "exp_macaque_members.json") -> list[dict[str, Any]]:
    """Mean ± SD over seed groups of every member pattern in the JSON (one split, both modes), printed."""
    rows = [r for r in json.loads(path.read_text())["rows"] if r["split"] == split and not r["with_input"]]
    out = []
    for key in sorted({(pattern(r["row"]), r["mode"]) for r in rows if r["n_members"]}):
        vals = [r["r2"] for r in rows if r["n_members"] and (pattern(r["row"]), r["mode"]) == key]
        out.append({"members": key[0], "mode": key[1], "r2_mean": float(np.mean(vals)), "r2_sd": float(np.std(vals)),
                    "groups": len(vals)})
    print_table(sorted(out, key=lambda r: r["r2_mean"]), ["members", "mode", "r2_mean", "r2_sd", "groups"])
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Fit (or load) the members, score single members and the named groups, print and merge the rows."""
    import torch

    from fidelity import ridge_velocity

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="inner", help="'inner' or 'outerF' (F = 0..4)")
    parser.add_argument("--members", default="tuned:0-4", help="members to fit and score singly, e.g. tuned:0-4,k15:0")
    parser.add_argument("--groups", nargs="*", default=[], help="side-by-side groups, e.g. 'tuned:0-2'")
    parser.add_argument("--modes", nargs="+", default=["own", "joint"], choices=["own", "joint"])
    parser.add_argument("--with-input", action="store_true", help="also score each group with the PCA input beside it")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "marble_widgets_bench" / "macaque_members")
    parser.add_argument("--summary", action="store_true", help="only print the JSON's rows of --split by pattern")
    args = parser.parse_args(argv)
    if args.summary:
        summary(args.split)
        return []
    torch.set_num_threads(1)
    parts = split_trials(args.split)
    ff_fit, ff_val = flow_fields(*parts, {})
    truth = ff_val["hand_velocity"].values
    rows = [{"row": "input PCA-5", "mode": "own", "n_members": 0, "with_input": True,
             **r2_parts(truth, ridge_velocity(ff_fit["x"].values, ff_fit, ff_val["x"].values, ff_val))}]
    embs = {m: member(args.split, *m, parts, args.cache_dir) for m in parse_members(args.members)}
    for (name, seed), emb in embs.items():
        rows += [score_group(f"{name}:{seed}", [emb], ff_fit, ff_val, mode) for mode in args.modes]
    for spec in args.groups:
        group = [embs.get(m) or member(args.split, *m, parts, args.cache_dir) for m in parse_members(spec)]
        for mode in args.modes:
            rows.append(score_group(spec, group, ff_fit, ff_val, mode))
            if args.with_input:
                rows.append(score_group(spec, group, ff_fit, ff_val, mode, with_input=True))
    for r in rows:
        print(f"{r['row']:<40} {r['mode']:<6} input={int(r['with_input'])}  R2 {r['r2']:.3f}  "
              f"(x {r['r2_x']:.3f}, y {r['r2_y']:.3f})", flush=True)
    merge_rows(args.split, rows)
    return rows


if __name__ == "__main__":
    main()
