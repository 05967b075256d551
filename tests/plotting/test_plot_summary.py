"""distance_heatmap(), mds_map(), loss_curves(), raster(), behaviour()."""
from __future__ import annotations

import numpy as np
import pytest
import toy_results
import xarray as xr

from marble_widgets.plotting import behaviour, distance_heatmap, loss_curves, mds_map, raster


def test_distance_heatmap():
    dist = toy_results.distances()
    fig = distance_heatmap(dist)
    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"
    np.testing.assert_allclose(np.asarray(fig.data[0].z), dist.values)
    assert list(fig.data[0].x) == list(fig.data[0].y) == ["left", "right", "up"]
    assert fig.layout.template.layout.plot_bgcolor == "white"  # the marble_widgets theme
    with pytest.raises(TypeError, match="dist must be"):
        distance_heatmap(dist.values)


def test_mds_map():
    coords = toy_results.mds()
    fig = mds_map(coords)
    assert len(fig.data) == 1 and fig.data[0].mode == "markers+text"
    np.testing.assert_allclose(np.asarray(fig.data[0].x), coords.values[:, 0])
    assert list(fig.data[0].text) == ["left", "right", "up"]
    with pytest.raises(ValueError, match="component"):
        mds_map(coords.isel(component=[0]))


def test_loss_curves():
    hist = toy_results.history(5)
    fig = loss_curves(hist)
    assert [t.name for t in fig.data] == ["train loss", "val loss", "lr"]
    np.testing.assert_allclose(np.asarray(fig.data[1].y), hist["val_loss"].values)
    assert fig.data[2].yaxis == "y2" and fig.layout.yaxis2.type == "log"
    assert all(len(t.x) == 0 for t in loss_curves(None).data)
    with pytest.raises(ValueError, match="lacks"):
        loss_curves(hist.drop_vars("lr"))


def test_raster(rec):
    fig = raster(rec)
    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"
    np.testing.assert_allclose(np.asarray(fig.data[0].z), rec["spike_counts"].values.T)
    np.testing.assert_array_equal(np.asarray(fig.data[0].customdata)[:, 0], rec["unit"].values)
    cropped = raster(rec, time_range=(0.5, 1.0))
    t = rec["time"].values
    assert len(cropped.data[0].x) == int(((t >= 0.5) & (t <= 1.0)).sum())
    blocked = raster(rec, max_bins=rec.sizes["time"] // 2)
    counts = rec["spike_counts"].values
    m = counts.shape[0] // 2 * 2
    np.testing.assert_allclose(np.asarray(blocked.data[0].z), counts[:m].reshape(-1, 2, counts.shape[1]).sum(1).T)
    with pytest.raises(ValueError, match="time_range"):
        raster(rec, time_range=(2.0, 1.0))


def test_raster_of_trial_aligned_recording():
    counts = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    rec = xr.Dataset({"spike_counts": (("trial", "time", "unit"), counts)},
                     coords={"trial": [5, 9], "time": [0.0, 0.1, 0.2], "unit": [0, 1, 2, 3]})
    np.testing.assert_allclose(np.asarray(raster(rec, trial=9).data[0].z), counts[1].T)
    with pytest.raises(ValueError, match="trial=7"):
        raster(rec, trial=7)


def test_behaviour_from_flow_field_and_recording(ff, rec):
    fig = behaviour(ff, "hand_velocity")
    assert [t.name for t in fig.data] == ["hand_velocity[x]", "hand_velocity[y]"]
    y = np.asarray(fig.data[0].y, dtype=float)
    n_traj = 6
    assert np.isnan(y).sum() == n_traj - 1 and np.isfinite(y).sum() == ff.sizes["sample"]
    np.testing.assert_allclose(np.sort(y[np.isfinite(y)]), np.sort(ff["hand_velocity"].values[:, 0]))
    fig = behaviour(rec, "position", time_range=(0, 1))
    np.testing.assert_allclose(np.asarray(fig.data[0].y), rec["position"].values)
    assert tuple(fig.layout.xaxis.range) == (0, 1)
    with pytest.raises(ValueError, match="variable='speed'"):
        behaviour(rec, "speed")
