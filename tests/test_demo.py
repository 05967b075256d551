"""The README's main job runs end to end on the bundled data and writes its outputs."""
from __future__ import annotations

import json

from marble_widgets import demo


def test_demo_writes_dashboard_and_summary(tmp_path):
    html = demo.main(["--out", str(tmp_path), "--epochs", "3"])
    text = html.read_text()
    assert html.stat().st_size > 1_000_000  # plotly.js is embedded: the export works offline
    assert text.count("mw-fig-") >= 5 and '<script src="https://cdn.plot.ly' not in text
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_units"] == 48
    assert summary["n_train_samples"] + summary["n_test_samples"] == 6575  # one difference lost per part
    assert summary["epochs_run"] == 3
    errors = summary["test_median_position_error_cm"]
    assert set(errors) == {"marble", "input_pca10"}
    assert 0 < errors["input_pca10"] < 40 and 0 < errors["marble"] < 160  # track is 160 cm long
