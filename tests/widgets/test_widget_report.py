"""The HTML report (header facts, sections, captions) and the live views' subtitles/heatmaps."""
from __future__ import annotations

import numpy as np
import plotly
import toy_results

from marble_widgets.plotting import loss_curves
from marble_widgets.plotting.features import block_grid, feature_layout
from marble_widgets.widgets import FlowFieldExplorer
from marble_widgets.widgets.report import VIEW_TEXT, model_summary, report_html


class Model:
    """A fitted-model stand-in: params, history, best epoch."""

    loss_history_ = toy_results.history(8)
    best_epoch_ = 7

    def get_params(self):
        return {"order": 1, "k": 5, "out_dim": 3, "epochs": 10, "hidden_channels": (32,)}


def test_model_summary_reads_params_history_and_data(ff, emb):
    summary = model_summary(Model(), ff, emb)
    data, model, training = (dict(summary[k]) for k in ("Data", "Model", "Training"))
    assert data["samples"] == str(ff.sizes["sample"]) and data["conditions"].startswith("3: left, right, up")
    assert data["latent dims"] == "3" and model["k"] == "5" and model["hidden_channels"] == "32"
    assert training["epochs run"] == "8 of 10" and training["best epoch"] == "7"
    assert training["val loss at best"] == f"{1.2 / 8:.4g}"


def test_report_html_has_header_sections_captions_and_one_plotlyjs():
    figs = {"Flow field/state": loss_curves(toy_results.history(3)), "Flow field/features": loss_curves(),
            "Alignment/mds": loss_curves()}
    text = report_html("T & co", {"Data": [("samples", "12")]}, figs, subtitle="sub")
    assert "<h1>T &amp; co</h1>" in text and "<td>samples</td><td>12</td>" in text
    assert "id='mw-section-flow-field'" in text and "mw-grid mw-grid-3" in text
    assert VIEW_TEXT["state"][1] in text and "mw-export-view mw-wide" in text  # features span both columns
    assert text.count(plotly.offline.get_plotlyjs()[:300]) == 1


def test_live_views_update_heatmap_and_subtitles(ff, ins, emb):
    explorer = FlowFieldExplorer(ff, ins, emb)
    explorer.sample = 23
    layout = feature_layout([str(f) for f in ins["feature"].values])
    expected = block_grid(layout, 1, ins["features"].values[23])
    np.testing.assert_allclose(np.asarray(explorer.features_view.data[1].z, dtype=float), expected)
    t = float(ff["time"].values[23])
    for fw in (explorer.neighbourhood_view, explorer.local_view, explorer.features_view):
        assert f"t = {t:.3g} s" in fw.layout.title.text
    assert "mw-panel-features" in explorer.children[1].children[-1]._dom_classes
