"""A README figure re-derived with public functions only, as a user would in a notebook."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import marble_widgets as mw
from marble_widgets.analysis import train_test_decode
from marble_widgets.data.containers import positions_as_embedding

ROOT = Path(__file__).resolve().parents[1]


def _fidelity_row(section: str, method: str) -> dict:
    rows = json.loads((ROOT / "benchmarks" / "results" / "fidelity.json").read_text())[section]["rows"]
    return next(r for r in rows if r["method"] == method)


@pytest.mark.slow
def test_rat_input_baseline_of_the_readme_from_public_api():
    """'MARBLE input: PCA-10 (250 ms)': 7.18 cm, from recipes + FlowFieldBuilder + train_test_decode."""
    recipe = mw.recipes.get("rat_paper")
    train, test = mw.recipes.split_time(mw.datasets.rat_hippocampus(), 0.8)
    builder = mw.FlowFieldBuilder(**recipe.flow_field, seed=0).fit(train)
    result = train_test_decode(positions_as_embedding(builder.transform(train)), "position",
                               positions_as_embedding(builder.transform(test)), "position",
                               kind="knn", metric="cosine", k_criterion="median_abs_error")
    row = _fidelity_row("rat", "MARBLE input: PCA-10 (250 ms)")
    assert int(result["k"].item()) == row["k_position"]
    assert float(result["median_abs_error"].item()) * 100 == pytest.approx(row["position_cm"], rel=1e-9)
