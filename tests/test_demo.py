"""The README's main job runs end to end on the bundled data and writes its outputs."""
from __future__ import annotations

import json

from marble_widgets import demo


def test_demo_writes_html_and_summary(tmp_path):
    html = demo.main(["--out", str(tmp_path)])
    assert html.exists() and html.stat().st_size > 100_000
    text = html.read_text()
    assert "plotly" in text.lower()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_units"] == 48 and summary["n_samples"] == 6576
