"""The README's main job runs end to end on the bundled data and writes its outputs."""
from __future__ import annotations

import json
import re

from marble_widgets import demo


def test_demo_writes_dashboard_and_summary(tmp_path):
    html = demo.main(["--out", str(tmp_path), "--epochs", "3"])
    text = html.read_text()
    # one interactive page: plotly.js embedded (works offline), every view's module and buffers
    assert 1_000_000 < html.stat().st_size < 8_400_000  # smaller than the retired static export (8.4 MB)
    assert not re.search(r"<script[^>]*\bsrc=", text, re.I)
    payload = json.loads(re.search(r"id='mw-payload'>(.*?)</script>", text, re.S).group(1))
    keys = [v["key"] for v in payload["views"]]
    assert keys[0] == "flow" and keys[-1] == "training"
    assert payload["views"][-1]["state"]["_meta"]["exported"] is True
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_units"] == 48
    assert summary["n_train_samples"] + summary["n_test_samples"] == 6575  # one difference lost per part
    assert summary["epochs_run"] == 3
    errors = summary["test_median_position_error_cm"]
    assert set(errors) == {"marble", "input_pca10"}
    assert 0 < errors["input_pca10"] < 40 and 0 < errors["marble"] < 160  # track is 160 cm long
