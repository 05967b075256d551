"""FlowFieldExplorer: state <-> controls <-> views, headless."""
from __future__ import annotations

import numpy as np
import pytest

from marble_widgets.plotting.local_geometry import inspect_arrays, neighbourhood_data
from marble_widgets.widgets import FlowFieldExplorer


@pytest.fixture(scope="module")
def explorer(ff, ins, emb):
    return FlowFieldExplorer(ff, ins, emb)


def _time_order(ff, cond, trial):
    idx = np.flatnonzero((ff["condition"] == cond).values & (ff["trial"] == trial).values)
    return idx[np.argsort(ff["time"].values[idx])]


def test_starts_at_first_trajectory_start(explorer, ff):
    assert explorer.sample == _time_order(ff, "left", 0)[0]
    assert (explorer.condition, explorer.trial, explorer.slider.value) == ("left", 0, 0)
    assert explorer.slider.max == 14
    assert "mw-flow-explorer" in explorer._dom_classes


def test_setting_sample_moves_markers_exactly(explorer, ff, ins, emb):
    explorer.sample = 17
    marker = explorer.state_view.data[-1]
    np.testing.assert_array_equal([marker.x[0], marker.y[0], marker.z[0]], ff["x"].values[17])
    emb_marker = explorer.embedding_view.data[-1]
    np.testing.assert_array_equal([emb_marker.x[0], emb_marker.y[0]], emb.values[17, :2])
    np.testing.assert_array_equal(np.asarray(explorer.features_view.data[0].y), ins["features"].values[17])
    point = explorer.neighbourhood_view.data[3]
    np.testing.assert_array_equal([point.x[0], point.y[0], point.z[0]], ff["x"].values[17])
    expected = neighbourhood_data(inspect_arrays(ins, ff), 17, 3)[1]["x"]
    np.testing.assert_array_equal(np.asarray(explorer.neighbourhood_view.data[1].x), expected)
    cond, trial = str(ff["condition"].values[17]), int(ff["trial"].values[17])
    assert (explorer.condition, explorer.trial) == (cond, trial)
    assert explorer.condition_dropdown.value == cond and explorer.trial_dropdown.value == trial
    assert explorer.trajectory()[explorer.slider.value] == 17
    assert "sample <b>17</b>" in explorer.status.value


def test_slider_and_play_step_along_time(explorer, ff):
    explorer.sample = int(_time_order(ff, "right", 3)[0])
    order = _time_order(ff, "right", 3)
    for step in (1, 2, 9):
        explorer.slider.value = step
        assert explorer.sample == order[step]
    explorer.play.value = 4  # Play is linked to the slider
    assert explorer.sample == order[4]


def test_condition_and_trial_dropdowns(explorer, ff):
    explorer.condition_dropdown.value = "up"
    assert explorer.sample == _time_order(ff, "up", 4)[0]
    assert list(explorer.trial_dropdown.options) == [4, 5]
    explorer.trial_dropdown.value = 5
    assert explorer.sample == _time_order(ff, "up", 5)[0] and explorer.slider.value == 0


def test_bad_values_raise(explorer, ff, ins):
    with pytest.raises(ValueError, match="sample=999"):
        explorer.sample = 999
    with pytest.raises(ValueError, match="condition='down'"):
        explorer.condition = "down"
    with pytest.raises(ValueError, match="inspected"):
        FlowFieldExplorer(ff.isel(sample=slice(0, 10)), ins)


def test_views_and_css_classes(explorer):
    assert set(explorer.views) == {"state", "neighbourhood", "local", "features", "embedding"}
    for name, css in [("state", "mw-flow-state"), ("neighbourhood", "mw-flow-neighbourhood"),
                      ("local", "mw-flow-local"), ("features", "mw-flow-features"), ("embedding", "mw-flow-embedding")]:
        assert css in explorer.views[name]._dom_classes and "mw-view" in explorer.views[name]._dom_classes


def test_without_embedding_has_no_embedding_view(ff, ins):
    assert "embedding" not in FlowFieldExplorer(ff, ins).views


def test_play_defers_features_until_pause_and_manual_steps_redraw_all(ff, ins, emb):
    explorer = FlowFieldExplorer(ff, ins, emb, play_refresh_s=float("inf"))
    order = _time_order(ff, "right", 3)
    explorer.sample = int(order[0])
    feats = ins["features"].values
    explorer.play.playing = True
    explorer.slider.value = 2  # a Play step: live views follow, the feature view waits
    np.testing.assert_array_equal(np.asarray(explorer.state_view.data[-1].x), ff["x"].values[[order[2]], 0])
    np.testing.assert_array_equal(np.asarray(explorer.embedding_view.data[-1].x), emb.values[[order[2]], 0])
    np.testing.assert_array_equal(np.asarray(explorer.features_view.data[0].y), feats[order[0]])
    explorer.play.playing = False  # pause: the deferred view catches up
    np.testing.assert_array_equal(np.asarray(explorer.features_view.data[0].y), feats[order[2]])
    assert f"t = {float(ff['time'].values[order[2]]):.3g}" in explorer.features_view.layout.title.text
    explorer.slider.value = 3  # a manual step redraws every view at once
    np.testing.assert_array_equal(np.asarray(explorer.features_view.data[0].y), feats[order[3]])


def test_play_refresh_redraws_features_at_most_that_often(ff, ins):
    explorer = FlowFieldExplorer(ff, ins, play_refresh_s=0.0)
    order = _time_order(ff, "right", 3)
    explorer.sample = int(order[0])
    explorer.play.playing = True
    explorer.slider.value = 1  # refresh interval 0: every Play step redraws the features too
    np.testing.assert_array_equal(np.asarray(explorer.features_view.data[0].y), ins["features"].values[order[1]])


def test_one_plotly_edit_per_view_and_step(explorer):
    sent = {name: [] for name in explorer.views}
    for name, fw in explorer.views.items():
        fw._send_update_msg = lambda *a, _n=name, **k: sent[_n].append("update")
        fw._send_relayout_msg = lambda *a, _n=name, **k: sent[_n].append("relayout")
        fw._send_restyle_msg = lambda *a, _n=name, **k: sent[_n].append("restyle")
    try:
        explorer.sample = (explorer.sample + 1) % explorer._x.shape[0]
    finally:
        for fw in explorer.views.values():
            for attr in ("_send_update_msg", "_send_relayout_msg", "_send_restyle_msg"):
                fw.__dict__.pop(attr, None)
    assert {name: len(msgs) for name, msgs in sent.items()} == {name: 1 for name in explorer.views}
