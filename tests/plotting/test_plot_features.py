"""Feature grouping/heatmaps, the 3-axis cap of the neighbourhood and the default colour key."""
from __future__ import annotations

import numpy as np
import pytest
import toy_results
import xarray as xr

from marble_widgets.plotting import derivative_features, neighbourhood
from marble_widgets.plotting.common import default_color_key
from marble_widgets.plotting.features import block_grid, feature_layout
from marble_widgets.plotting.theme import palette_color

NAMES = ["pos PC1", "pos PC2", "v1", "v2", "d1 v1", "d2 v1", "d1 v2", "d2 v2",
         "d1 d1 v1", "d2 d1 v1", "d1 d2 v1", "d2 d2 v1", "d1 d1 v2", "d2 d1 v2", "d1 d2 v2", "d2 d2 v2"]


def _features(names: list[str]) -> xr.DataArray:
    """A (sample, feature) DataArray with the results schema's feature coordinates."""
    ds = xr.Dataset({"features": (("sample", "feature"), np.zeros((1, len(names))))}, coords={"feature": names})
    return toy_results.with_feature_coords(ds)["features"]


def test_feature_layout_groups_and_blocks():
    layout = feature_layout(_features(NAMES))
    assert layout.orders == [-1, -1, 0, 0, 1, 1, 1, 1] + [2] * 8
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


def test_layout_reads_the_coordinates_not_the_names():
    # names are only labels: rename every feature and the layout is unchanged
    feats = _features(NAMES)
    renamed = feats.assign_coords(feature=[f"f{i}" for i in range(len(NAMES))])
    a, b = feature_layout(feats), feature_layout(renamed)
    assert (a.groups, a.blocks, a.orders) == (b.groups, b.blocks, b.orders) and b.names[0] == "f0"
    with pytest.raises(ValueError, match=r"lack the coordinate\(s\) \['feature_order', 'feature_component', 'feature_direction'\] .*"
                                         r"pass MARBLE.results\(flow_field\)"):
        feature_layout(feats.drop_vars(["feature_order", "feature_component", "feature_direction"]))
    with pytest.raises(TypeError, match="features must be MARBLE.results"):
        feature_layout(NAMES)


def test_derivative_features_from_the_results_dataset(ff):
    res = toy_results.results(ff)
    fig = derivative_features(res, 3)
    np.testing.assert_allclose(np.asarray(fig.data[0].y), res["features"].values[3])
    assert list(fig.data[0].marker.color) == [palette_color(0)] * 2 + [palette_color(1)] * 4
    assert fig.layout.title.subtitle.text.startswith(f"t = {float(ff['time'].values[3]):.3g} s")
    with pytest.raises(ValueError, match="pass MARBLE.results"):
        derivative_features(res.drop_vars("feature_order"), 3)
