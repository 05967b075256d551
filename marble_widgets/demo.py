"""The README's main job: MARBLE on the bundled rat recording, exported as an offline dashboard.

Run with ``python -m marble_widgets.demo --out out`` (``make demo``). It follows the paper's rat
recipe (docs/spec.md §2.4): PCA-10 of 250-ms-smoothed rates fitted on the first 80 % of the session,
MARBLE fitted on that part, position decoded on the held-out last 20 % with a cosine k-NN. Three
training settings differ from the recipe (batch 256, k 50, hidden width 128): they were chosen on
the training part only by ``benchmarks/fidelity_tuning.py`` and make the embedding decode better
than its own input (``benchmarks/fidelity.py``: 6.9 vs 7.2 cm, recipe 7.6 cm).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import marble_widgets as mw
from marble_widgets import recipes
from marble_widgets.analysis import train_test_decode
from marble_widgets.data.containers import positions_as_embedding

#: the rat recipe with the settings chosen on the training part (benchmarks/results/fidelity_tuning.json)
RECIPE = recipes.get("rat_tuned")


def run(out: Path, epochs: int = 100, verbose: bool = True) -> dict[str, Any]:
    """Fit, decode and export; return the summary written to ``out/summary.json``."""
    t0 = time.perf_counter()
    rec = mw.datasets.rat_hippocampus()
    train_rec, test_rec = recipes.split_time(rec)
    builder = mw.FlowFieldBuilder(**RECIPE.flow_field).fit(train_rec)
    ff_train, ff_test = builder.transform(train_rec), builder.transform(test_rec)
    model = RECIPE.model(epochs=epochs, seed=0, verbose=verbose).fit(ff_train)
    t_fit = time.perf_counter() - t0
    emb_train, emb_test = model.transform(ff_train), model.transform(ff_test)
    scores = {
        name: train_test_decode(tr, "position", te, "position", kind="knn", metric="cosine",
                                k_criterion="median_abs_error")
        for name, (tr, te) in {"marble": (emb_train, emb_test), "input_pca10": (positions_as_embedding(ff_train), positions_as_embedding(ff_test))}.items()
    }
    error_cm = {name: float(s["median_abs_error"].values.ravel()[0]) * 100 for name, s in scores.items()}
    html = out / "demo.html"
    board = mw.dashboard(model, ff_train, embedding=emb_train, label="position", recording=train_rec,
                         title="MARBLE on rat CA1 'Buddy' (Grosmark & Buzsaki 2016)")
    board.to_html(html)
    summary = {
        "recording": rec.attrs["source"], "n_units": int(rec.sizes["unit"]),
        "n_train_samples": int(ff_train.sizes["sample"]), "n_test_samples": int(ff_test.sizes["sample"]),
        "explained_variance_pca10": float(np.sum(builder.explained_variance_ratio_)),
        "epochs_run": int(model.loss_history_.sizes["epoch"]), "best_epoch": int(model.best_epoch_),
        "fit_seconds": round(t_fit, 1), "total_seconds": round(time.perf_counter() - t0, 1),
        "test_median_position_error_cm": {k: round(v, 2) for k, v in error_cm.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="out", help="output folder")
    parser.add_argument("--epochs", type=int, default=100, help="training epochs (the rat recipe uses 100)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = run(out, epochs=args.epochs)
    print(json.dumps(summary, indent=2))
    html = (out / "demo.html").resolve()
    print(f"\nwrote {html} (open it in a browser) and {(out / 'summary.json').resolve()}")
    print("for the interactive dashboards run `make lab` (JupyterLab on notebooks/01_quickstart.ipynb)")
    return html


if __name__ == "__main__":
    main()
