"""The bundled linear-track NWB file: reproducible from the raw files, and readable by read_nwb."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

import marble_widgets
from marble_widgets.data.nwb import read_nwb

REPO = Path(__file__).resolve().parents[2]
FILES = Path(marble_widgets.__file__).parent / "datasets" / "files"
COMMITTED = FILES / "linear_track.nwb"
RAW = FILES / "raw" / "linear_track"
ARRAYS = [
    "units/spike_times", "units/spike_times_index", "units/tetrode", "units/cell", "units/id",
    "processing/behavior/Position/position/data", "processing/behavior/Position/position/timestamps",
    "intervals/epochs/start_time", "intervals/epochs/stop_time",
]


def _load_script():
    spec = importlib.util.spec_from_file_location("build_linear_track_nwb", REPO / "scripts" / "build_linear_track_nwb.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> Path:
    return _load_script().build(RAW, tmp_path_factory.mktemp("lt") / "linear_track.nwb")


@pytest.fixture(scope="module")
def ds():
    return read_nwb(COMMITTED, bin_size=0.02)


def _spike_trains(path: Path) -> list[np.ndarray]:
    with h5py.File(path, "r") as f:
        times, ends = f["units/spike_times"][:], f["units/spike_times_index"][:]
    return np.split(times, ends[:-1])


def test_rebuild_reproduces_committed_file(rebuilt):
    with h5py.File(COMMITTED, "r") as old, h5py.File(rebuilt, "r") as new:
        for name in ARRAYS:
            np.testing.assert_array_equal(new[name][:], old[name][:], err_msg=name)
        for name in ["identifier", "session_start_time", "file_create_date", "session_description"]:
            np.testing.assert_array_equal(new[name][()], old[name][()], err_msg=name)
        assert new["general/subject/species"][()] == b"Rattus norvegicus"
    assert COMMITTED.stat().st_size < 3e6


def test_units_match_the_raw_matlab_file():
    trains = _spike_trains(COMMITTED)
    assert len(trains) == 31
    # independent walk: every struct with a non-empty 'time' field, however deep it is nested
    mat = scipy.io.loadmat(RAW / "spikes.mat", squeeze_me=True, struct_as_record=False)
    found = []
    stack = [mat["spikes"]]
    while stack:
        node = stack.pop()
        if isinstance(node, np.ndarray):
            stack.extend(node.ravel())
        elif hasattr(node, "time") and np.size(node.time):
            found.append(np.sort(np.atleast_1d(node.time).astype(float)))
    assert sorted(len(t) for t in found) == sorted(len(t) for t in trains)
    np.testing.assert_array_equal(np.sort(np.concatenate(found)), np.sort(np.concatenate(trains)))
    assert all(4396.9 < t.min() and t.max() < 6365.3 for t in trains)


def test_position_timestamps_are_ticks_over_30khz():
    raw = (RAW / "trajectory.videoPositionTracking").read_bytes()
    body = raw[raw.index(b"<End settings>\n") + 15:]
    ticks = np.frombuffer(body, dtype="<u4", count=len(body) // 12 * 3).reshape(-1, 3)[:, 0]
    xy = np.frombuffer(body, dtype="<u2").reshape(-1, 6)[:, 2:4]
    with h5py.File(COMMITTED, "r") as f:
        ts = f["processing/behavior/Position/position/timestamps"][:]
        data = f["processing/behavior/Position/position/data"][:]
        epochs = f["intervals/epochs/start_time"][:], f["intervals/epochs/stop_time"][:]
    n = len(ts)
    np.testing.assert_allclose(ts, ticks[:n] / 30000.0)
    np.testing.assert_array_equal(data, xy[:n])
    assert (xy[n:] == [522, 8]).all() and n < len(xy)  # the rest period: tracker frozen, not stored
    np.testing.assert_allclose(epochs[0], [ticks[0] / 3e4, ticks[n] / 3e4])
    np.testing.assert_allclose(epochs[1], [ticks[n - 1] / 3e4, ticks[-1] / 3e4])


def test_read_nwb_on_linear_track(ds):
    assert ds.sizes["unit"] == 31
    assert ds["position"].dims == ("time", "axis") and ds["position"].shape == (ds.sizes["time"], 2)
    with h5py.File(COMMITTED, "r") as f:
        ts = f["processing/behavior/Position/position/timestamps"][:]
    t = ds["time"].values
    tracked = (t >= ts[0]) & (t <= ts[-1])
    assert tracked.sum() > 45_000  # ~985 s of 20 ms bins
    pos = ds["position"].values
    assert np.isfinite(pos[tracked]).all() and np.isnan(pos[~tracked]).all()
    assert 133 <= pos[tracked, 0].min() and pos[tracked, 0].max() <= 554
    assert list(ds["epoch_tags"].values) == ["track", "rest"]
    assert ds.attrs["species"] == "Rattus norvegicus" and ds["position"].attrs["units"] == "pixels"


def test_linear_track_counts_match_independent_histogram(ds):
    edges = ds.attrs["t_start"] + np.arange(ds.sizes["time"] + 1) * ds.attrs["bin_size"]
    trains = _spike_trains(COMMITTED)
    for k, train in enumerate(trains):
        hist, _ = np.histogram(train, bins=edges)
        np.testing.assert_array_equal(ds["spike_counts"].values[:, k], hist)
    assert int(ds["spike_counts"].sum()) == sum(len(t) for t in trains)
