"""Rat: how much of rat_recommended's embedding comes from the flow (derivative) features? (issue 16 diagnostic)

Why: embedding the held-out part on one graph with the training part (benchmarks/exp_rat_transductive.py)
changes its derivative features by about half their norm yet hardly moves the embedding. This asks the
network directly: per fitted model (inner split: fit 0-60 %, validate 60-80 %), the MLP input of every row
(positions, the signal v, its order-1 derivatives; ``MARBLE.results``) is fed to the trained network as is,
and with one block permuted across rows (permutation importance: the block keeps its marginal distribution
but loses its link to the row) in both the training and the held-out part, and with the held-out part's
derivatives from the joint graph. Each variant is decoded like the benchmark (cosine kNN, k by median error
and by R^2 on the training part, and k = 10). Also prints each block's share of the input's norm.

Run: ``python benchmarks/exp_rat_feature_ablation.py [--seeds 4]``; merges into
benchmarks/results/exp_rat_transductive.json, key ``feature_ablation``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, print_table, write_json  # noqa: E402

from marble_widgets import recipes  # noqa: E402

#: feature_order values of each block of the MLP input (-1 positions, 0 the signal, 1 first derivatives)
BLOCKS = {"positions": -1, "signal v": 0, "derivatives": 1}


def network_embedding(model: Any, features: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The trained network applied to rows of the MLP input (positions first, as ``results`` gives them)."""
    import torch

    net = model.network_.eval()
    with torch.no_grad():
        feats = torch.as_tensor(features[:, order >= 0], dtype=torch.float32)
        pos = torch.as_tensor(features[:, order == -1], dtype=torch.float32) if (order == -1).any() else None
        return net(feats, pos).numpy().astype(float)


def permuted(features: np.ndarray, order: np.ndarray, block: int, seed: int) -> np.ndarray:
    """``features`` with the columns of one block permuted across rows (one permutation for the block)."""
    out = features.copy()
    cols = order == block
    out[:, cols] = features[np.random.default_rng(seed).permutation(len(features))][:, cols]
    return out


def variants(model: Any, ff_fit: Any, ff_val: Any, seed: int) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]],
                                                                       dict[str, float]]:
    """(training, held-out) embeddings of each input variant, and each block's share of the input norm."""
    from exp_rat_transductive import joint_field

    fit, val = model.results(ff_fit), model.results(ff_val)
    joint = model.results(joint_field(ff_val, ff_fit))
    order = fit["feature_order"].values
    f_fit, f_val = fit["features"].values, val["features"].values
    f_joint = joint["features"].values[:ff_val.sizes["sample"]]
    z_fit, z_val = network_embedding(model, f_fit, order), network_embedding(model, f_val, order)
    np.testing.assert_allclose(z_val, val["embedding"].values, atol=1e-4)  # the network as transform applies it
    out = {"as fitted": (z_fit, z_val)}
    for name, block in BLOCKS.items():
        out[f"{name} permuted"] = (network_embedding(model, permuted(f_fit, order, block, seed), order),
                                   network_embedding(model, permuted(f_val, order, block, seed + 1), order))
    mixed = np.where(order == 1, f_joint, f_val)
    out["held-out derivatives from the joint graph"] = (z_fit, network_embedding(model, mixed, order))
    share = {name: float(np.linalg.norm(f_fit[:, order == b]) / np.linalg.norm(f_fit)) for name, b in BLOCKS.items()}
    share["derivatives: relative change on the joint graph"] = float(
        np.linalg.norm((f_joint - f_val)[:, order == 1]) / np.linalg.norm(f_val[:, order == 1]))
    return out, share


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Fit each seed, decode every variant, print the table and merge it into the JSON."""
    import torch

    from exp_rat_transductive import FIXED_K, scores, split_fields, summarise
    from marble_widgets import MARBLE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ff_fit, ff_val = split_fields("inner")
    params = dict(recipes.get("rat_recommended").marble)
    t0 = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {}
    shares = []
    for seed in range(args.seeds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = MARBLE(**{**params, "seed": seed, "verbose": False}).fit(ff_fit)
            embs, share = variants(model, ff_fit, ff_val, seed)
        shares.append(share)
        for name, (z_tr, z_te) in embs.items():
            runs.setdefault(name, []).append({"seed": seed, **scores(z_tr, z_te, ff_fit, ff_val)})
        print(f"  seed {seed}: " + "; ".join(f"{n} {r[-1]['cm_k_by_median']:.2f}" for n, r in runs.items()),
              flush=True)
    rows = [summarise(name, "", r) for name, r in runs.items()]
    share = {k: float(np.mean([s[k] for s in shares])) for k in shares[0]}
    print_table(rows, ["method", "cm (k_by_median)", "cm (k_by_r2)", *(f"cm (k{k})" for k in FIXED_K)])
    print("share of the MLP input's norm (training rows): " + "; ".join(f"{k} {v:.3f}" for k, v in share.items()))
    command = f"python benchmarks/exp_rat_feature_ablation.py {shlex.join(sys.argv[1:] if argv is None else argv)}"
    path = RESULTS / "exp_rat_transductive.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    keep = {k: v for k, v in old.items() if k not in ("machine", "date")}
    keep["feature_ablation"] = {"split": "fit 0-60 %, validate 60-80 %", "rows": rows, "input_norm_share": share,
                                "command": command, "seconds": time.perf_counter() - t0}
    write_json("exp_rat_transductive", keep)
    return rows


if __name__ == "__main__":
    main()
