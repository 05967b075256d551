"""Across-animal decoding: a position decoder fitted on one rat's embedding, scored on the other's.

Rats: Buddy (CEBRA's hippocampus data) and the linear-track rat, positions normalised to 0..1
of each track (so the error is a fraction of the track; x 100 = % of its length). Each model is
fitted on one whole rat (``--recipe``, default ``rat_tuned``, from ``mw.recipes``); the decoder
(cosine kNN, k chosen on the training rat by median error) is fitted on one rat and applied to
the other, both ways, after:
- ``procrustes``: the test rat's embedding rotated onto the training rat's by their mean
  embeddings in 100 position bins (labels enter only through those means),
- ``ot``: an unsupervised optimal-transport alignment (no labels at all),
- ``none``: a joint model of both rats (one shared space).
Baselines in the same run: the PCA-10 inputs aligned the same ways, within-rat decoding (first
80 % / last 20 %) and chance (the training rat's positions shuffled before fitting the decoder).

Run: ``python benchmarks/cross_animal_decoding.py [--epochs 100] [--recipe rat_tuned]``
-> table + ``results/cross_animal_decoding.json``.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, print_table, write_json  # noqa: E402
from cross_animal import NAMES, buddy_flow, labelled, track_rat_flow  # noqa: E402

import marble_widgets as mw  # noqa: E402
from marble_widgets.analysis import cross_decode, train_test_decode  # noqa: E402
from marble_widgets.data.flow import combine_flow_fields  # noqa: E402

ALIGNMENTS = ("procrustes", "ot")


def fit(ff: xr.Dataset, settings: dict[str, Any]) -> xr.DataArray:
    """One MARBLE fitted on ``ff``; its embedding labelled with position/direction/block."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mw.MARBLE(**settings).fit(ff)
    return labelled(model.transform(ff).values, ff)


def cm(result: xr.Dataset) -> float:
    """Median absolute position error as % of the track."""
    return float(result["median_abs_error"].item()) * 100


def both_ways(embs: dict[str, xr.DataArray], align: str) -> dict[str, float]:
    a, b = NAMES
    return {f"{a}->{b}": cm(cross_decode(embs[a], embs[b], "position", align=align)),
            f"{b}->{a}": cm(cross_decode(embs[b], embs[a], "position", align=align))}


def within(embs: dict[str, xr.DataArray]) -> dict[str, float]:
    """Each rat decoded from itself: first 80 % trains, last 20 % tests (the fidelity protocol)."""
    return {n: cm(train_test_decode(e, "position", kind="knn", k_criterion="median_abs_error"))
            for n, e in embs.items()}


def chance(embs: dict[str, xr.DataArray], seed: int = 0) -> dict[str, float]:
    """Decoder fitted on shuffled positions of the training rat (Procrustes-aligned test rat)."""
    rng = np.random.default_rng(seed)
    shuffled = {n: e.assign_coords(position=("sample", rng.permutation(e["position"].values)))
                for n, e in embs.items()}
    a, b = NAMES
    aligned_b = mw.analysis.procrustes_align(embs[b], embs[a], "position").aligned
    aligned_a = mw.analysis.procrustes_align(embs[a], embs[b], "position").aligned
    return {f"{a}->{b}": cm(train_test_decode(shuffled[a], "position", aligned_b, "position",
                                              k_criterion="median_abs_error")),
            f"{b}->{a}": cm(train_test_decode(shuffled[b], "position", aligned_a, "position",
                                              k_criterion="median_abs_error"))}


def run(recipe: str, epochs: int) -> dict[str, Any]:
    settings = {**mw.recipes.get(recipe).marble, "epochs": epochs, "seed": 0, "verbose": False}
    t0 = time.perf_counter()
    flows = dict(zip(NAMES, (buddy_flow(), track_rat_flow())))
    inputs = {n: labelled(ff["x"].values, ff) for n, ff in flows.items()}
    marble = {n: fit(ff, settings) for n, ff in flows.items()}
    joint_ff = combine_flow_fields(flows)
    joint_emb = fit(joint_ff, settings)
    animal = joint_ff["animal"].values.astype(str)
    joint = {n: joint_emb.isel(sample=np.flatnonzero(animal == n)) for n in NAMES}
    rows = []
    for name, embs in (("MARBLE, one model per rat", marble), ("input: PCA-10", inputs)):
        for align in ALIGNMENTS:
            rows.append({"embedding": name, "align": align, **both_ways(embs, align)})
    rows.append({"embedding": "MARBLE, joint model of both rats", "align": "none", **both_ways(joint, "none")})
    rows.append({"embedding": "input: PCA-10", "align": "none", **both_ways(inputs, "none")})
    rows.append({"embedding": "chance: shuffled training positions", "align": "procrustes", **chance(marble)})
    inside = {"MARBLE": within(marble), "input: PCA-10": within(inputs)}
    return {"recipe": recipe, "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
            "rows": rows, "within_rat_pct": inside, "seconds": time.perf_counter() - t0,
            "peak_rss_mb": peak_rss_mb(), "units": "median |error| as % of the track length"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--recipe", default="rat_tuned", help="a name of mw.recipes (default rat_tuned)")
    args = parser.parse_args()
    res = run(args.recipe, args.epochs)
    print_table(res["rows"], ["embedding", "align", *[k for k in res["rows"][0] if "->" in k]])
    print("within each rat (80/20 split):", res["within_rat_pct"])
    write_json("cross_animal_decoding", res)


if __name__ == "__main__":
    main()
