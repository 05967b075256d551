"""Feature grouping/heatmaps, the 3-axis cap of the neighbourhood and the default colour key."""
from __future__ import annotations

import numpy as np
import toy_results

from marble_widgets.plotting import derivative_features, neighbourhood
from marble_widgets.plotting.common import default_color_key
from marble_widgets.plotting.features import block_grid, feature_layout

NAMES = ["pos PC1", "pos PC2", "v1", "v2", "d1 v1", "d2 v1", "d1 v2", "d2 v2",
         "d1 d1 v1", "d2 d1 v1", "d1 d2 v1", "d2 d2 v1", "d1 d1 v2", "d2 d1 v2", "d1 d2 v2", "d2 d2 v2"]


def test_feature_layout_groups_and_blocks():
    layout = feature_layout(NAMES)
    assert layout.groups == [("pos", 0, 2), ("v", 2, 4), ("∂v", 4, 8), ("∂²v", 8, 16)]
    assert layout.blocks[1]["rows"] == ["v1", "v2"] and layout.blocks[1]["cols"] == ["d1", "d2"]
    assert layout.blocks[2]["cols"] == ["d1 d1", "d2 d1", "d1 d2", "d2 d2"]
    values = np.arange(len(NAMES), dtype=float)
    # order 1: row = component v_i, column = direction d_j; "d2 v1" is feature 5
    np.testing.assert_array_equal(block_grid(layout, 1, values), [[4, 5], [6, 7]])
    np.testing.assert_array_equal(block_grid(layout, 2, values)[1], [12, 13, 14, 15])


def test_derivative_features_heatmap_is_the_order_one_block(ins):
    i = 9
    fig = derivative_features(ins, i)
    values = ins["features"].values[i]
    heat = fig.data[1]
    assert heat.type == "heatmap" and list(heat.y) == ["v1", "v2"] and list(heat.x) == ["d1", "d2"]
    np.testing.assert_allclose(np.asarray(heat.z, dtype=float), values[2:].reshape(2, 2))
    assert heat.zmax == -heat.zmin == np.abs(values[2:]).max()
    assert "t = " in fig.layout.title.subtitle.text or "sample" in fig.layout.title.subtitle.text


def test_neighbourhood_draws_at_most_three_tangent_axes_and_says_so(ff):
    ins5 = toy_results.inspect(ff, n_tangent=3)
    fig = neighbourhood(ins5, 4, ff, max_axes=2)
    assert [t.name for t in fig.data][-2:] == ["tangent 1", "tangent 2"] and len(fig.data) == 7
    assert "tangent axes 1–2 of 3 shown" in fig.layout.title.subtitle.text
    fig = neighbourhood(ins5, 4, ff)
    assert len(fig.data) == 8 and "3 tangent axes" in fig.layout.title.subtitle.text


def test_default_color_key_prefers_conditions_then_behaviour_then_time(ff):
    assert default_color_key(ff) == "condition"
    one = ff.assign_coords(condition=("sample", np.full(ff.sizes["sample"], "all")))
    assert default_color_key(one) == "position"
    assert default_color_key(one.drop_vars(["position", "hand_velocity"])) == "time"
