"""``linear_track()``: the second real rat as a continuous recording with a normalised track position."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from marble_widgets.data import bundled
from marble_widgets.data.bundled import linear_track, track_linearisation
from marble_widgets.data.errors import MarbleDataError


@pytest.fixture(scope="module")
def track() -> xr.Dataset:
    return linear_track()


def _traversals(position: np.ndarray, margin: float = 0.15) -> int:
    """End-to-end passes: changes between the two end zones (hysteresis), ignoring NaN bins."""
    zones = np.where(position < margin, 0, np.where(position > 1 - margin, 1, -1))
    zones = zones[np.isfinite(position) & (zones >= 0)]
    return int(np.count_nonzero(np.diff(zones)))


def test_schema(track):
    assert track["spike_counts"].dims == ("time", "unit")
    assert track.sizes["unit"] == 31
    assert track["position_px"].dims == ("time", "axis")
    assert list(track["axis"].values) == ["x", "y"]
    np.testing.assert_allclose(np.diff(track["time"].values), 0.025, rtol=1e-6)
    assert track.attrs["bin_size"] == 0.025 and track.attrs["kind"] == "continuous"
    assert track.attrs["period"] == "track" and track.attrs["subject_id"] == "nelpy-linear-track"
    assert "nelpy" in track.attrs["citation"] and "MIT" in track.attrs["citation"]
    # the track epoch of the file is 4397.03 .. 5382.24 s (~985 s)
    assert track["time"].values[0] == pytest.approx(4397.0317 + 0.0125, abs=1e-6)
    assert 984 < track.sizes["time"] * 0.025 < 986
    for name in ("right", "left", "tracked", "running"):
        assert track[name].dtype == bool


def test_position_normalised_and_oriented(track):
    pos, px = track["position"].values, track["position_px"].values
    finite = np.isfinite(pos)
    np.testing.assert_array_equal(finite, track["tracked"].values)
    assert pos[finite].min() == 0.0 and pos[finite].max() == 1.0
    # the frozen tracker pixel (477, 479) at the start is on the frame edge: never tracked
    assert not finite[(px[:, 1] >= 479)].any() and (px[:, 1] >= 479).sum() > 900
    # the track runs diagonally, left-to-right and top-to-bottom in the image
    assert np.corrcoef(pos[finite], px[finite, 0])[0, 1] > 0.95
    assert np.corrcoef(pos[finite], px[finite, 1])[0, 1] > 0.9
    assert 0.9 < finite.mean() < 1.0


def test_direction_follows_velocity_sign_on_running_bins(track):
    run = track["running"].values
    v = track["velocity"].values
    direction = track["direction"].values
    np.testing.assert_array_equal(direction[run] == "right", v[run] > 0)
    np.testing.assert_array_equal(direction[run] == "left", v[run] < 0)
    np.testing.assert_array_equal(track["right"].values, direction == "right")
    assert not (track["right"].values & track["left"].values).any()
    # independent check: raw position 0.2 s later minus 0.2 s earlier agrees with the label
    pos = track["position"].values
    step = np.full(pos.shape, np.nan)
    step[8:-8] = pos[16:] - pos[:-16]
    ok = run & np.isfinite(step) & (step != 0)
    assert ok.sum() > 5000
    assert np.mean((step[ok] > 0) == (direction[ok] == "right")) > 0.95


def test_running_flag_is_speed_threshold(track):
    speed, tracked = track["speed"].values, track["tracked"].values
    with np.errstate(invalid="ignore"):
        expected = tracked & (speed >= bundled.TRACK_SPEED_THRESHOLD)
    np.testing.assert_array_equal(track["running"].values, expected)
    np.testing.assert_allclose(speed, np.abs(track["velocity"].values))
    assert 0.15 < track["running"].values.mean() < 0.6
    # running speeds: a few tenths of the track per second, never several tracks per second
    assert 0.1 < np.median(speed[track["running"].values]) < 1.0


def test_runs_back_and_forth(track):
    n_pass = _traversals(track["position"].values)
    assert 30 <= n_pass <= 80  # 47 end-to-end passes in the 15 min session
    d = track["direction"].values[track["running"].values]
    reversals = int(np.count_nonzero(d[1:] != d[:-1]))
    assert n_pass - 1 <= reversals <= 4 * n_pass


def test_netcdf_round_trip(track, tmp_path):
    path = tmp_path / "track.nc"
    track.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        xr.testing.assert_identical(back.load(), track)


def test_bad_period_raises():
    with pytest.raises(MarbleDataError, match="period must be one of"):
        linear_track(period="sleep")


def test_linearisation_recovers_synthetic_diagonal_track():
    rng = np.random.default_rng(0)
    s = np.linspace(0, 1, 400)
    start, end = np.array([140.0, 140.0]), np.array([540.0, 400.0])
    px = start + s[:, None] * (end - start) + rng.normal(0, 3, (400, 2))
    px[:20] = [477.0, 479.0]  # frozen tracker on the frame edge
    px[50:60] = [500.0, 20.0]  # carried in from the top of the image
    px[70] = np.nan
    out = track_linearisation(px)
    keep = np.ones(400, bool)
    keep[:20] = keep[50:60] = keep[70] = False
    np.testing.assert_array_equal(out["tracked"], keep)
    pos = out["position"]
    assert np.nanmin(pos) == 0.0 and np.nanmax(pos) == 1.0
    assert np.corrcoef(pos[keep], s[keep])[0, 1] > 0.999
    direction = (end - start) / np.linalg.norm(end - start)
    np.testing.assert_allclose(out["axis"], direction, atol=0.01)


def test_smoothed_velocity_of_a_ramp():
    position = np.linspace(0.0, 1.0, 401)  # 1 track length in 10 s at 25 ms bins
    v = bundled._smoothed_velocity(position, 0.025)
    np.testing.assert_allclose(v[40:-40], 0.1, rtol=1e-9)
    position[200] = np.nan  # a lost frame: bridged by the NaN-aware kernel, slightly biased near it
    v = bundled._smoothed_velocity(position, 0.025)
    assert np.isfinite(v).all()
    np.testing.assert_allclose(v[40:-40], 0.1, rtol=0.1)
    np.testing.assert_allclose(v[40:150], 0.1, rtol=1e-6)
