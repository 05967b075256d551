"""Loaders of the vendored recordings: shapes, time axes, behaviour, reach angles and netCDF round trips."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import xarray as xr

from marble_widgets.data import bundled
from marble_widgets.data.errors import MarbleDataError
from marble_widgets.data.bundled import (
    jenkins_nwb_path,
    licences,
    linear_track_nwb_path,
    mc_maze_small,
    rat_hippocampus,
)


@pytest.fixture(scope="module")
def buddy() -> xr.Dataset:
    return rat_hippocampus()


@pytest.fixture(scope="module")
def maze() -> xr.Dataset:
    return mc_maze_small()


def _raw_maze(name: str) -> np.ndarray:
    with h5py.File(bundled.data_dir() / "mc_maze_small_full.h5", "r") as h5:
        return h5[name][()]


def test_rat_hippocampus_schema(buddy):
    assert buddy["spike_counts"].dims == ("time", "unit")
    assert buddy["spike_counts"].shape == (6577, 48)
    assert buddy["spike_counts"].dtype == np.float32
    t = buddy["time"].values
    assert t[0] == pytest.approx(0.0125)
    np.testing.assert_allclose(np.diff(t), 0.025, rtol=1e-9)
    assert buddy.attrs["bin_size"] == 0.025 and buddy.attrs["kind"] == "continuous"
    assert buddy.attrs["subject_id"] == "Buddy" and "Grosmark" in buddy.attrs["citation"]
    assert list(buddy["unit"].values) == list(range(48))


def test_rat_hippocampus_behaviour(buddy):
    pos = buddy["position"].values
    assert pos.min() >= 0.0 and pos.max() <= 1.6 and pos.max() - pos.min() > 1.5
    right, left = buddy["right"].values, buddy["left"].values
    assert np.all(right ^ left)  # exactly one direction per bin
    assert set(np.unique(buddy["direction"].values)) == {"left", "right"}
    np.testing.assert_array_equal(buddy["direction"].values == "right", right)
    with np.load(bundled.data_dir() / "buddy.npz") as raw:
        np.testing.assert_array_equal(buddy["spike_counts"].values, raw["spikes"])


def test_mc_maze_small_schema(maze):
    assert maze["spike_counts"].dims == ("trial", "time", "unit")
    assert maze["spike_counts"].shape == (75, 140, 107)
    assert maze["spike_counts_heldout"].shape == (75, 140, 35)
    assert maze["hand_velocity"].dims == ("trial", "time", "axis")
    assert list(maze["axis"].values) == ["x", "y"]
    t = maze["time"].values
    np.testing.assert_allclose([t[0], t[-1]], [-0.2475, 0.4475], atol=1e-12)
    np.testing.assert_allclose(np.diff(t), 0.005, rtol=1e-9)
    assert maze.attrs["kind"] == "trials" and maze.attrs["align_event"] == "move_onset_time"
    assert maze.attrs["bin_size"] == pytest.approx(0.005)
    np.testing.assert_array_equal(maze["spike_counts"].values, _raw_maze("train_spikes_heldin"))


def test_mc_maze_reach_angles_and_sectors(maze):
    vel = _raw_maze("train_behavior").astype(np.float64)
    end = np.cumsum(vel * 0.005, axis=1)[:, -1]  # displacement at the end of the window
    expected = np.arctan2(end[:, 1], end[:, 0])
    np.testing.assert_allclose(maze["reach_angle"].values, expected, atol=1e-9)
    sector = (np.floor((np.degrees(expected) % 360 + 22.5) / 45).astype(int)) % 8
    labels = np.array([f"{45 * s}deg" for s in sector])
    np.testing.assert_array_equal(maze["condition"].values, labels)
    counts = maze["condition"].to_series().value_counts()
    assert counts.sum() == 75
    assert set(counts.index) <= {f"{45 * k}deg" for k in range(8)}
    # measured on this file: 0:10, 45:9, 135:21, 180:5, 225:14, 315:16 (90 and 270 empty)
    assert counts.to_dict() == {"135deg": 21, "315deg": 16, "225deg": 14, "0deg": 10, "45deg": 9, "180deg": 5}


def test_mc_maze_rebin(maze):
    coarse = mc_maze_small(bin_size=0.02)
    assert coarse["spike_counts"].shape == (75, 35, 107)
    assert coarse.attrs["bin_size"] == pytest.approx(0.02)
    np.testing.assert_allclose(coarse["time"].values[:2], [-0.24, -0.22], atol=1e-12)
    np.testing.assert_allclose(coarse["spike_counts"].sum(), maze["spike_counts"].sum())
    np.testing.assert_allclose(
        coarse["hand_velocity"].values[:, 1], maze["hand_velocity"].values[:, 4:8].mean(axis=1), rtol=1e-12
    )
    np.testing.assert_array_equal(coarse["reach_angle"].values, maze["reach_angle"].values)
    odd = mc_maze_small(bin_size=0.03)  # 140 / 6 bins: the trailing partial bin is dropped
    assert odd.sizes["time"] == 23


@pytest.mark.parametrize("bad", [0.007, 0.0, -0.005])
def test_mc_maze_bad_bin_size(bad):
    with pytest.raises(MarbleDataError, match="bin_size must be a positive multiple of 0.005"):
        mc_maze_small(bin_size=bad)


@pytest.mark.parametrize("loader", [rat_hippocampus, mc_maze_small], ids=["buddy", "mc_maze"])
def test_netcdf_round_trip(loader, tmp_path):
    ds = loader()
    path = tmp_path / "ds.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    back = xr.load_dataset(path, engine="h5netcdf")
    xr.testing.assert_identical(ds, back)
    assert all(isinstance(v, (str, int, float)) for v in ds.attrs.values())


def test_paths_and_licences():
    nwb = jenkins_nwb_path()
    assert nwb.is_file() and nwb.suffix == ".nwb"
    text = licences()
    assert "Grosmark" in text and "CC-BY-4.0" in text and "nelpy" in text


def test_linear_track_path(monkeypatch, tmp_path):
    monkeypatch.setattr(bundled, "data_dir", lambda: tmp_path)
    with pytest.raises(MarbleDataError, match="scripts/build_linear_track_nwb.py"):
        linear_track_nwb_path()
    (tmp_path / "linear_track.nwb").write_bytes(b"")
    assert linear_track_nwb_path() == tmp_path / "linear_track.nwb"


def test_linear_track_path_when_built():
    if not (bundled.data_dir() / "linear_track.nwb").is_file():
        pytest.skip("linear_track.nwb not built yet (scripts/build_linear_track_nwb.py)")
    path = linear_track_nwb_path()
    assert path.name == "linear_track.nwb" and path.stat().st_size > 0
