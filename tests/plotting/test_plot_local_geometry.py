"""neighbourhood(), local_flow(), derivative_features(): values read exactly from inspect."""
from __future__ import annotations

import numpy as np
import pytest
import toy_results

from marble_widgets.plotting import derivative_features, local_flow, neighbourhood
from marble_widgets.plotting.theme import palette_color


def _pts(trace, n_dims=3):
    return np.column_stack([np.asarray(getattr(trace, k), dtype=float) for k in "xyz"[:n_dims]])


def test_neighbourhood_point_neighbours_and_frame(ff, ins):
    fig = neighbourhood(ins, 4, ff)
    assert [t.name for t in fig.data] == ["edges", "neighbours", "neighbour vectors", "point", "point vector",
                                         "tangent 1", "tangent 2"]
    x = ff["x"].values
    np.testing.assert_allclose(_pts(fig.data[3]), x[[4]])
    np.testing.assert_allclose(_pts(fig.data[1]), x[ins["neighbors"].values[4]])
    for k in range(2):  # each axis points along the frame column
        seg = _pts(fig.data[5 + k])
        direction = seg[1] - seg[0]
        np.testing.assert_allclose(direction / np.linalg.norm(direction), ins["frame"].values[4][:, k], atol=1e-12)


def test_padded_neighbours_are_dropped(ff, ins):
    fig = neighbourhood(ins, 0, ff)
    valid = ins["neighbors"].values[0]
    assert len(fig.data[1].x) == int((valid >= 0).sum()) == 3


def test_neighbourhood_needs_positions(ff, ins):
    with pytest.raises(ValueError, match="flow_field="):
        neighbourhood(ins, 1)
    with pytest.raises(ValueError, match="out of range"):
        neighbourhood(ins, 10_000, ff)


def test_local_flow_in_tangent_coordinates(ff, ins):
    i = 7
    fig = local_flow(ins, i, ff)
    nb = ins["neighbors"].values[i]
    frame = ins["frame"].values[i]
    base = (ff["x"].values[nb] - ff["x"].values[i]) @ frame
    np.testing.assert_allclose(_pts(fig.data[1], 2), base)
    seg = _pts(fig.data[0], 2).reshape(-1, 3, 2)
    np.testing.assert_allclose(seg[:, 0], base)
    drawn = seg[:, 1] - seg[:, 0]
    trans = ins["transported"].values[i]
    scale = drawn / trans  # one common display scale
    np.testing.assert_allclose(scale, np.full_like(scale, scale[0, 0]))
    np.testing.assert_allclose(_pts(fig.data[2], 2), [[0.0, 0.0]])


def test_derivative_features_bars(ins):
    fig = derivative_features(ins, 5)
    bar = fig.data[0]
    assert bar.type == "bar" and list(bar.x) == list(ins["feature"].values)
    np.testing.assert_allclose(np.asarray(bar.y), ins["features"].values[5])
    assert bar.marker.color[0] == palette_color(0) and bar.marker.color[2] == palette_color(1)


def test_results_dataset_carries_its_own_positions(ff):
    res = toy_results.results(ff)
    fig = neighbourhood(res, 4)  # no separate flow field: x and v come from the results Dataset
    np.testing.assert_allclose(_pts(fig.data[3]), ff["x"].values[[4]])
    np.testing.assert_allclose(_pts(fig.data[1]), ff["x"].values[res["neighbors"].values[4]])
