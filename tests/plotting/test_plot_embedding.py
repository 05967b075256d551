"""embedding_scatter() and the density fast path."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from marble_widgets.plotting import DensityGrid, embedding_scatter


def test_2d_categorical(emb):
    fig = embedding_scatter(emb, color="condition")
    assert len(fig.data) == 1 and fig.data[0].type == "scattergl"
    np.testing.assert_allclose(np.asarray(fig.data[0].x), emb.values[:, 0])
    labels = ["left", "right", "up"]
    codes = np.asarray(fig.data[0].marker.color)
    np.testing.assert_array_equal(codes, [labels.index(c) for c in emb["condition"].values])
    assert list(fig.data[0].marker.colorbar.ticktext) == labels
    custom = np.asarray(fig.data[0].customdata)
    np.testing.assert_array_equal(custom[:, 0].astype(int), np.arange(emb.sizes["sample"]))
    np.testing.assert_array_equal(custom[:, 1], emb["condition"].values)
    assert "condition" in fig.data[0].hovertemplate and "time" in fig.data[0].hovertemplate


def test_continuous_and_3d(emb):
    fig = embedding_scatter(emb, color=emb["time"].values, dims=3, webgl=False)
    assert fig.data[0].type == "scatter3d"
    np.testing.assert_allclose(np.asarray(fig.data[0].z), emb.values[:, 2])
    assert fig.data[0].marker.showscale and fig.data[0].marker.colorbar.ticktext is None
    assert fig.data[0].marker.cmin == pytest.approx(emb["time"].values.min())
    assert embedding_scatter(emb, webgl=False).data[0].type == "scatter"


def test_fast_path_density_and_hit_layer(emb):
    fig = embedding_scatter(emb, max_points=10, bins=8)
    assert [t.type for t in fig.data] == ["heatmap", "scattergl"]
    grid = DensityGrid(emb.values[:, :2], 8)
    assert grid.counts().sum() == emb.sizes["sample"]
    hit = fig.data[1]
    reps = np.asarray(hit.customdata, dtype=int)
    assert reps.size == grid.occupied.size == len(hit.x)
    np.testing.assert_array_equal(grid.bin_of(reps), grid.occupied)  # each bin's sample lies in it
    fig = embedding_scatter(emb, color="time", max_points=10, bins=8)
    json.dumps(np.asarray(fig.data[0].z).tolist(), allow_nan=False)  # empty bins are None, not NaN (widget-safe)
    assert fig.data[0].colorscale[0][1] == embedding_scatter(emb, "time").data[0].marker.colorscale[0][1]


def test_density_grid_statistics():
    pts = np.array([[0.0, 0.0], [0.1, 0.0], [1.0, 1.0], [0.9, 0.95]])
    grid = DensityGrid(pts, bins=2)
    np.testing.assert_array_equal(grid.counts(), [[2, 0], [0, 2]])
    mean = grid.mean(np.array([1.0, 3.0, 10.0, 20.0]))
    np.testing.assert_allclose(mean[[0, 1], [0, 1]], [2.0, 15.0])
    assert np.isnan(mean[0, 1])
    mode = grid.mode(np.array([1, 1, 0, 1]), 2)
    assert mode[0, 0] == 1 and mode[1, 1] in (0, 1) and np.isnan(mode[1, 0])


def test_errors(emb):
    with pytest.raises(ValueError, match="one value per sample"):
        embedding_scatter(emb, color=np.zeros(3))
    with pytest.raises(ValueError, match="dims must be 2 or 3"):
        embedding_scatter(emb.isel(latent=[0, 1]), dims=3)
    with pytest.raises(ValueError, match="dims"):
        embedding_scatter(xr.DataArray(np.zeros((3, 2)), dims=("a", "b")))


def test_results_dataset_colours_by_a_column_of_a_2d_variable(ff):
    import toy_results

    res = toy_results.results(ff)
    fig = embedding_scatter(res, color="hand_velocity[1]")
    np.testing.assert_allclose(np.asarray(fig.data[0].x), res["embedding"].values[:, 0])
    np.testing.assert_allclose(np.asarray(fig.data[0].marker.color), ff["hand_velocity"].values[:, 1])
    assert fig.data[0].marker.colorbar.title.text == "hand_velocity[1]"
    with pytest.raises(ValueError, match=r"lacks variable\(s\) \['embedding'\]"):
        embedding_scatter(ff, color="position")
