"""Confirm a rat candidate chosen on the inner split once on the protocol split (issue 16).

The protocol of ``benchmarks/fidelity.py`` / ``seed_stability.py``: preprocessing and MARBLE fitted on the first
80 % of the session, the last 20 % embedded with its own graph and decoded (cosine kNN; k by median error and
by R^2 on the training part). A candidate of ``benchmarks/exp_rat_screen.py`` (its CANDIDATES: rat_recommended
+ flow-field / MARBLE / ensemble changes) is scored over seeds (ensembles: ensemble seeds, members e*m+i), with
the recipe's PCA-10 input and the candidate's own input decoded in the same run, plus the single members and
the seed-to-seed consistency. Rows merge into benchmarks/results/seed_stability.json, key ``outer_candidates``.

Run: ``python benchmarks/exp_rat_outer.py NAME [--seeds 5] [--cache-dir DIR] [--fit-only SEED ...]``
(``--fit-only`` fills the cache with those member seeds and exits: split the fits over processes).
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


def protocol_fields(**changes: Any) -> tuple[Any, Any]:
    """Flow fields of the first 80 % and the last 20 % (preprocessing fitted on the first); input changes."""
    from fidelity import flow_pair, rat_parts

    inputs = {**recipes.get("rat_recommended").flow_field, **changes}
    return flow_pair(*rat_parts(), inputs["n_components"], inputs["smooth"])


def summary(name: str, runs: list[dict[str, Any]], embeddings: list[np.ndarray], ff_tr: Any) -> dict[str, Any]:
    """Mean ± SD of both k rules over seeds, and the seed-to-seed consistency."""
    from seed_stability import seed_consistency

    row: dict[str, Any] = {"method": name}
    for tag in ("k_by_median", "k_by_r2"):
        v = np.array([r[f"cm_{tag}"] for r in runs])
        row[f"cm_{tag}_mean"], row[f"cm_{tag}_sd"] = float(v.mean()), float(v.std())
    row["consistency"] = seed_consistency(embeddings, ff_tr) if len(embeddings) > 1 else None
    row["per_seed"] = runs
    return row


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Score one candidate on the protocol split next to the inputs; merge the rows into seed_stability.json."""
    import torch

    from exp_rat_screen import CANDIDATES, cache_for, embeddings, split_changes
    from seed_stability import cached_fit, decode_position

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=list(CANDIDATES))
    parser.add_argument("--seeds", type=int, default=5, help="seeds, or ensemble seeds for an ensemble candidate")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "marble_widgets_bench" / "rat_outer")
    parser.add_argument("--fit-only", type=int, nargs="+", metavar="SEED", help="fit these member seeds and exit")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    flow_changes, marble_changes, ensemble = split_changes(CANDIDATES[args.name])
    params = {**recipes.get("rat_recommended").marble, **marble_changes}
    cache = cache_for(args.cache_dir, flow_changes)
    ff_tr, ff_te = protocol_fields(**flow_changes)
    if args.fit_only:
        for seed in args.fit_only:
            cached_fit(ff_tr, ff_te, params, seed, cache)
        return []
    t0 = time.perf_counter()
    base_tr, base_te = protocol_fields()
    rows = [{"method": "input: PCA-10 (250 ms), the recipe's", **decode_position(
        base_tr["x"].values, base_te["x"].values, base_tr, base_te)}]
    if flow_changes:
        rows.append({"method": f"input: the candidate's {flow_changes}", **decode_position(
            ff_tr["x"].values, ff_te["x"].values, ff_tr, ff_te)})
    seeds = tuple(range(args.seeds))
    fits = embeddings(ff_tr, ff_te, params, ensemble, seeds, cache)
    rows.append(summary(args.name, [{"seed": s, **decode_position(*z, ff_tr, ff_te)} for s, z in zip(seeds, fits)],
                        [z for z, _ in fits], ff_tr))
    if ensemble:  # the members alone, every member seed
        members = range(int(ensemble["n_members"]) * args.seeds)
        singles = [cached_fit(ff_tr, ff_te, params, s, cache) for s in members]
        rows.append(summary(f"{args.name}: its single members", [{"seed": s, **decode_position(*z, ff_tr, ff_te)}
                                                                 for s, z in zip(members, singles)],
                            [z for z, _ in singles], ff_tr))
    command = "python benchmarks/exp_rat_outer.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    for r in rows:
        r.update(candidate=args.name, changes=CANDIDATES[args.name], command=command)
        if "cm_k_by_median_mean" not in r:
            r.update(cm_k_by_median_mean=r["cm_k_by_median"], cm_k_by_r2_mean=r["cm_k_by_r2"])
    for r in rows:
        has_sd = "cm_k_by_median_sd" in r
        sd = (f" ± {r['cm_k_by_median_sd']:.2f}", f" ± {r['cm_k_by_r2_sd']:.2f}") if has_sd else ("", "")
        r["cm (k by median)"] = f"{r['cm_k_by_median_mean']:.2f}{sd[0]}"
        r["cm (k by R2)"] = f"{r['cm_k_by_r2_mean']:.2f}{sd[1]}"
        r["consistency (mean / min)"] = (f"{r['consistency']['mean']:.4f} / {r['consistency']['min']:.4f}"
                                         if r.get("consistency") else "")
    print_table(rows, ["method", "cm (k by median)", "cm (k by R2)", "consistency (mean / min)"])
    print(f"{time.perf_counter() - t0:.0f} s")
    merge(rows)
    return rows


def merge(rows: list[dict[str, Any]]) -> None:
    """Merge rows into seed_stability.json's ``outer_candidates`` by (candidate, method); other keys untouched."""
    import fcntl
    import tempfile

    path = RESULTS / "seed_stability.json"
    with open(Path(tempfile.gettempdir()) / "marble_seed_stability.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(path.read_text())
        part = old.get("outer_candidates", {"rows": []})
        keep = {(r["candidate"], r["method"]): r for r in part["rows"]}
        keep.update({(r["candidate"], r["method"]): r for r in rows})
        old["outer_candidates"] = {"rows": list(keep.values()), "protocol": "fit first 80 %, test last 20 %"}
        write_json("seed_stability", {k: v for k, v in old.items() if k not in ("machine", "date")})


if __name__ == "__main__":
    main()
