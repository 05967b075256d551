"""EmbeddingExplorer: selection/click callbacks, linked highlights, colour switch, fast path."""
from __future__ import annotations

import numpy as np
import pytest
from plotly.callbacks import BoxSelector, LassoSelector, Points

from marble_widgets.plotting.theme import SEQUENTIAL
from marble_widgets.widgets import EmbeddingExplorer, FlowFieldExplorer, link_explorers
from marble_widgets.widgets.embedding_explorer import points_in_box, points_in_lasso, trajectory_subset


@pytest.fixture
def explorer(emb, ff, rec):
    return EmbeddingExplorer(emb, ff, rec)


def _xy(trace):
    return np.column_stack([np.asarray(trace.x, dtype=float), np.asarray(trace.y, dtype=float)])


def test_selection_event_highlights_same_samples_everywhere(explorer, ff, emb):
    chosen = [40, 3, 12]
    trace = explorer.embedding_view.data[0]
    trace._dispatch_on_selection(Points(point_inds=chosen, trace_index=0), BoxSelector(xrange=[0, 1], yrange=[0, 1]))
    assert explorer.selection == [3, 12, 40]
    sel = np.array([3, 12, 40])
    np.testing.assert_array_equal(_xy(explorer.embedding_view.data[-2]), emb.values[sel, :2])
    state = explorer.state_view.data[-2]
    np.testing.assert_array_equal(np.column_stack([state.x, state.y, state.z]), ff["x"].values[sel])
    beh = _xy(explorer.behaviour_view.data[-1])  # position is the first behaviour variable
    np.testing.assert_array_equal(beh, np.column_stack([ff["time"].values[sel], ff["position"].values[sel]]))
    np.testing.assert_array_equal(_xy(explorer.raster_view.data[-1])[:, 0], ff["time"].values[sel])
    assert "<b>3</b> selected" in explorer.status.value
    explorer.clear_button.click()
    assert explorer.selection == [] and len(explorer.raster_view.data[-1].x) == 0


def test_click_sets_sample_and_moves_marker(explorer, ff, emb):
    explorer.embedding_view.data[0]._dispatch_on_click(Points(point_inds=[21], trace_index=0), None)
    assert explorer.sample == 21
    np.testing.assert_array_equal(_xy(explorer.embedding_view.data[-1]), emb.values[[21], :2])
    marker = explorer.state_view.data[-1]
    np.testing.assert_array_equal([marker.x[0], marker.y[0], marker.z[0]], ff["x"].values[21])


def test_colour_switch_restyles_markers(explorer, ff):
    marker = explorer.embedding_view.data[0].marker
    labels = ["left", "right", "up"]
    np.testing.assert_array_equal(np.asarray(marker.color), [labels.index(c) for c in ff["condition"].values])
    explorer.color_dropdown.value = "time"
    assert explorer.color_by == "time"
    marker = explorer.embedding_view.data[0].marker
    np.testing.assert_allclose(np.asarray(marker.color), ff["time"].values)
    assert marker.colorbar.ticktext is None and marker.colorscale[0][1] != labels
    explorer.color_by = "hand_velocity[1]"
    colors = np.asarray(explorer.embedding_view.data[0].marker.color)
    np.testing.assert_allclose(colors, ff["hand_velocity"].values[:, 1])
    with pytest.raises(ValueError, match="color_by='speed'"):
        explorer.color_by = "speed"


def test_link_to_flow_explorer(explorer, emb, ff, ins):
    flow = FlowFieldExplorer(ff, ins)
    link = link_explorers(explorer, flow)
    assert explorer.sample == flow.sample  # the embedding explorer adopts the flow explorer's sample
    explorer.embedding_view.data[0]._dispatch_on_click(Points(point_inds=[33], trace_index=0), None)
    assert flow.sample == 33
    flow.slider.value = 2
    assert explorer.sample == flow.sample
    link.unlink()
    with pytest.raises(ValueError, match="different flow fields"):
        link_explorers(EmbeddingExplorer(emb.isel(sample=slice(0, 40)), ff.isel(sample=slice(0, 40))), flow)


def test_fast_path_selection_and_click_use_all_samples(emb, ff):
    explorer = EmbeddingExplorer(emb, ff, max_points=10, bins=6)
    assert [t.name for t in explorer.embedding_view.data] == ["density", "hit", "selection", "current"]
    hit = explorer.embedding_view.data[1]
    pts = emb.values[:, :2]
    xr_, yr_ = [np.quantile(pts[:, 0], 0.2), np.quantile(pts[:, 0], 0.7)], [pts[:, 1].min(), np.median(pts[:, 1])]
    hit._dispatch_on_selection(Points(point_inds=[0], trace_index=1), BoxSelector(xrange=xr_, yrange=yr_))
    in_x, in_y = (pts[:, 0] >= xr_[0]) & (pts[:, 0] <= xr_[1]), (pts[:, 1] >= yr_[0]) & (pts[:, 1] <= yr_[1])
    inside = np.flatnonzero(in_x & in_y)
    assert explorer.selection == inside.tolist() and inside.size > 1
    hit._dispatch_on_click(Points(point_inds=[2], trace_index=1), None)
    assert explorer.sample == explorer.grid.representative[2]
    explorer.color_by = "time"
    z = np.asarray(explorer.embedding_view.data[0].z, dtype=float)
    np.testing.assert_allclose(z, explorer.grid.mean(ff["time"].values))
    assert explorer.embedding_view.data[0].colorscale[0][1] == "#440154"  # Viridis (SEQUENTIAL)
    assert SEQUENTIAL == "Viridis"


def test_hit_testing_helpers():
    pts = np.array([[0.2, 0.0], [1.0, 1.0], [2.0, 0.5], [0.5, 0.2], [0.8, 0.6]])
    assert points_in_box(pts, [2.0, 0.4], [-1, 0.6]).tolist() == [2, 3, 4]
    triangle = ([0.0, 1.5, 0.0], [-0.5, 0.5, 1.5])  # (1, 1) lies just above the upper edge
    assert points_in_lasso(pts, *triangle).tolist() == [0, 3, 4]


def test_lasso_selector_on_fast_path(emb, ff):
    explorer = EmbeddingExplorer(emb, ff, max_points=10)
    pts = emb.values[:, :2]
    lo, hi = pts.min(0) - 1, pts.max(0) + 1
    xs, ys = [lo[0], hi[0], hi[0], lo[0]], [lo[1], lo[1], hi[1], hi[1]]
    explorer.embedding_view.data[1]._dispatch_on_selection(Points(point_inds=[0]), LassoSelector(xs=xs, ys=ys))
    assert explorer.selection == list(range(emb.sizes["sample"]))


def test_errors_and_optional_views(emb, ff):
    with pytest.raises(ValueError, match="selection indices"):
        EmbeddingExplorer(emb, ff).select([-1])
    with pytest.raises(ValueError, match="samples but flow_field"):
        EmbeddingExplorer(emb.isel(sample=slice(0, 5)), ff)
    bare = EmbeddingExplorer(emb, ff.drop_vars(["position", "hand_velocity"]))
    assert set(bare.views) == {"embedding", "state"} and "mw-embedding-explorer" in bare._dom_classes


def test_trajectory_subset_keeps_whole_evenly_spread_trajectories(ff):
    keys = list(zip(ff["condition"].values.astype(str), ff["trial"].values))
    picked = trajectory_subset(ff, 45)  # 6 trajectories of 15 samples: 3 of them
    got = sorted({keys[i] for i in picked})
    assert len(got) == 3 and picked.size == 45
    assert all(sum(k == key for k in keys) == 15 for key in got)  # whole trajectories only
    assert got[0] == min(set(keys)) and got[-1] == max(set(keys))  # spread from first to last
    assert trajectory_subset(ff, 1).size == 15 and trajectory_subset(ff, 10**6).size == ff.sizes["sample"]


def test_fast_path_state_view_draws_a_subset_but_overlays_every_sample(emb, ff):
    explorer = EmbeddingExplorer(emb, ff, max_points=50)  # 90 samples: fast path, state subset of ~10
    lines = [t for t in explorer.state_view.data if t.name not in ("selection", "current")]
    assert sum(np.isfinite(np.asarray(t.x, dtype=float)).sum() for t in lines) == 15  # one trajectory
    outside = int(np.setdiff1d(np.arange(ff.sizes["sample"]), trajectory_subset(ff, 10))[0])
    explorer.sample = outside
    cur = explorer.state_view.data[-1]
    np.testing.assert_allclose([cur.x[0], cur.y[0], cur.z[0]], ff["x"].values[outside, :3])
    explorer.select(range(ff.sizes["sample"]))
    assert len(explorer.state_view.data[-2].x) == ff.sizes["sample"]
