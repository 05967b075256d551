"""trajectories(): trace layout, exact arrow geometry and line ordering."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from marble_widgets.plotting import trajectories
from marble_widgets.plotting.state_space import arrow_indices


def test_3d_categorical_has_one_line_per_condition_and_cones(ff):
    fig = trajectories(ff)
    assert [t.type for t in fig.data] == ["scatter3d"] * 3 + ["cone"]
    assert [t.name for t in fig.data[:3]] == ["left", "right", "up"]
    # every sample of a condition appears once in its line (NaNs only separate trials)
    for trace in fig.data[:3]:
        n_cond = int((ff["condition"] == trace.name).sum())
        assert np.isfinite(np.asarray(trace.x, dtype=float)).sum() == n_cond
        assert np.isnan(np.asarray(trace.x, dtype=float)).sum() == 1  # 2 trials -> 1 gap


def test_lines_follow_time_within_a_trial(ff):
    fig = trajectories(ff, arrows=False, dims=2, webgl=False)
    line = fig.data[0]  # condition "left", trials 0 then 1
    first = ff.isel(sample=np.flatnonzero((ff["condition"] == "left").values & (ff["trial"] == 0).values))
    expected = first["x"].values[np.argsort(first["time"].values)]
    np.testing.assert_allclose(np.asarray(line.x[: len(expected)]), expected[:, 0])
    np.testing.assert_allclose(np.asarray(line.y[: len(expected)]), expected[:, 1])
    assert fig.data[0].type == "scatter" and len(fig.data) == 3


def test_2d_arrows_are_exact_segments(ff):
    fig = trajectories(ff, dims=2, max_arrows=10, arrow_scale=1.0)
    flow = fig.data[-1]
    assert flow.name == "flow" and flow.type == "scattergl"
    idx = arrow_indices(ff.sizes["sample"], 10)
    assert idx.size == 10
    xs = np.asarray(flow.x, dtype=float).reshape(-1, 3)
    np.testing.assert_allclose(xs[:, 0], ff["x"].values[idx, 0])
    np.testing.assert_allclose(xs[:, 1], ff["x"].values[idx, 0] + ff["v"].values[idx, 0])
    assert np.isnan(xs[:, 2]).all()


def test_continuous_colour_gives_line_plus_coloured_markers(ff):
    fig = trajectories(ff, color_by="time", dims=2, arrows=False)
    assert [t.name for t in fig.data] == ["trajectory", "time"]
    np.testing.assert_allclose(np.asarray(fig.data[1].marker.color), ff["time"].values)
    fig = trajectories(ff, color_by="hand_velocity[1]", dims=2, arrows=False)
    np.testing.assert_allclose(np.asarray(fig.data[1].marker.color), ff["hand_velocity"].values[:, 1])


def test_errors_name_the_argument(ff):
    with pytest.raises(ValueError, match="lacks variable"):
        trajectories(ff.drop_vars("v"))
    with pytest.raises(ValueError, match="dims must be 2 or 3"):
        trajectories(ff.isel(dim=[0, 1]), dims=3)
    with pytest.raises(ValueError, match="not a per-sample variable"):
        trajectories(ff, color_by="nope")
    with pytest.raises(TypeError, match="xarray.Dataset"):
        trajectories(xr.DataArray([1.0]))


def test_input_not_mutated(ff):
    before = ff.copy(deep=True)
    trajectories(ff, color_by="time")
    xr.testing.assert_identical(ff, before)
