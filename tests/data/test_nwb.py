"""read_nwb / nwb_summary: binning, behaviour resampling, tables, provenance, closing, bad input."""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from pynwb import NWBHDF5IO, TimeSeries
from pynwb.behavior import BehavioralTimeSeries, CompassDirection, Position
from pynwb.misc import Units
from pynwb.testing.mock.behavior import mock_SpatialSeries
from pynwb.testing.mock.file import mock_NWBFile, mock_Subject

import marble_widgets
from marble_widgets.data.errors import MarbleDataError
from marble_widgets.data.nwb import nwb_summary, read_nwb

FILES = Path(marble_widgets.__file__).parent / "datasets" / "files"
JENKINS = FILES / "sub-Jenkins_ses-small_desc-test_ecephys.nwb"


# ----------------------------------------------------------------------------- helpers
def _nwbfile(spikes=None, **kwargs):
    """A small NWBFile with the given spike trains (list of lists) as units."""
    nwb = mock_NWBFile(identifier="test-file", session_id="session-1", **kwargs)
    for train in spikes or []:
        nwb.add_unit(spike_times=np.asarray(train, dtype=float))
    return nwb


def _write(nwb, path: Path) -> Path:
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb, cache_spec=False)  # faster; the Jenkins test covers files with cached specs
    return path


def _behaviour_file(tmp_path: Path) -> Path:
    """Spikes in [1, 2] s; 2-D position on timestamps 0.5..3 s (x = 2t, y = 1 - t); a 10 Hz speed
    series starting at 1 s (speed = 3 + k); two series both called 'angle' in different interfaces."""
    nwb = _nwbfile([[1.0, 1.5, 2.0], [1.25]])
    ts = np.linspace(0.5, 3.0, 26)
    module = nwb.create_processing_module("behavior", "test behaviour")
    pos = mock_SpatialSeries(name="position", data=np.c_[2 * ts, 1 - ts], timestamps=ts, rate=None, unit="m")
    module.add(Position(name="Position", spatial_series=[pos]))
    module.add(TimeSeries(name="speed", data=3.0 + np.arange(11), unit="m/s", starting_time=1.0, rate=10.0))
    head = mock_SpatialSeries(name="angle", data=ts.copy(), timestamps=ts, rate=None, unit="radians")
    module.add(CompassDirection(name="CompassDirection", spatial_series=[head]))
    gaze = TimeSeries(name="angle", data=-ts, timestamps=ts, unit="radians")
    module.add(BehavioralTimeSeries(name="Gaze", time_series=[gaze]))
    module.add(TimeSeries(name="zone", data=np.array([1, 2, 3]), timestamps=[0.5, 1.5, 2.5], unit="id"))
    return _write(nwb, tmp_path / "behaviour.nwb")


def _assert_closed(path: Path) -> None:
    """The file is closed if it can be opened for writing and renamed."""
    with h5py.File(path, "r+") as f:
        f.attrs["touched"] = 1
    moved = path.with_suffix(".moved")
    os.replace(path, moved)
    os.replace(moved, path)


@pytest.fixture(scope="module")
def behaviour_path(tmp_path_factory) -> Path:
    return _behaviour_file(tmp_path_factory.mktemp("behaviour"))


@pytest.fixture(scope="module")
def behaviour_ds(behaviour_path):
    return read_nwb(behaviour_path, bin_size=0.1)


@pytest.fixture(scope="module")
def simple_path(tmp_path_factory) -> Path:
    """One unit spiking at 0.5 and 1.0 s."""
    return _write(_nwbfile([[0.5, 1.0]]), tmp_path_factory.mktemp("simple") / "simple.nwb")


# ----------------------------------------------------------------------------- binning
def test_counts_match_hand_counted_bins(tmp_path):
    path = _write(_nwbfile([[0.01, 0.03, 0.031, 0.5], [0.25, 0.999]]), tmp_path / "a.nwb")
    ds = read_nwb(path, bin_size=0.1, t_start=0.0, t_stop=1.0)
    assert ds["spike_counts"].dims == ("time", "unit")
    assert ds["spike_counts"].shape == (10, 2)
    np.testing.assert_allclose(ds["time"].values, np.arange(10) * 0.1 + 0.05)
    expected = np.zeros((10, 2), int)
    expected[0, 0], expected[5, 0], expected[2, 1], expected[9, 1] = 3, 1, 1, 1
    np.testing.assert_array_equal(ds["spike_counts"].values, expected)
    np.testing.assert_array_equal(ds["unit"].values, [0, 1])
    assert ds.attrs["bin_size"] == 0.1 and ds.attrs["kind"] == "continuous"


def test_default_range_spans_spikes_behaviour_and_trials(tmp_path):
    nwb = _nwbfile([[1.0, 2.0]])
    module = nwb.create_processing_module("behavior", "b")
    module.add(TimeSeries(name="lick", data=np.ones(5), timestamps=np.linspace(0.5, 3.0, 5), unit="a.u."))
    nwb.add_trial(start_time=0.2, stop_time=1.0)
    nwb.add_trial(start_time=1.0, stop_time=3.5)
    ds = read_nwb(_write(nwb, tmp_path / "r.nwb"), bin_size=0.1)
    assert ds.attrs["t_start"] == pytest.approx(0.2)
    assert ds.sizes["time"] == 33  # ceil((3.5 - 0.2) / 0.1)
    assert ds.attrs["t_stop"] == pytest.approx(3.5)
    assert int(ds["spike_counts"].sum()) == 2


def test_units_subset_keeps_requested_order(tmp_path):
    path = _write(_nwbfile([[0.1], [0.2, 0.3], [0.4, 0.5, 0.6]]), tmp_path / "u.nwb")
    ds = read_nwb(path, bin_size=0.1, t_start=0.0, t_stop=1.0, units=[2, 0])
    np.testing.assert_array_equal(ds["unit"].values, [2, 0])
    np.testing.assert_array_equal(ds["spike_counts"].sum("time").values, [3, 1])


# ----------------------------------------------------------------------------- behaviour
def test_behaviour_is_linearly_interpolated_onto_bin_centres(behaviour_ds):
    ds = behaviour_ds
    t = ds["time"].values
    assert ds["position"].dims == ("time", "axis")
    assert list(ds["axis"].values) == ["x", "y"]
    inside = (t >= 0.5) & (t <= 3.0)
    np.testing.assert_allclose(ds["position"].sel(axis="x").values[inside], 2 * t[inside])
    np.testing.assert_allclose(ds["position"].sel(axis="y").values[inside], 1 - t[inside])
    assert np.isnan(ds["position"].values[~inside]).all()
    assert ds["position"].attrs["units"] == "m"


def test_rate_based_series_uses_starting_time(behaviour_ds):
    ds = behaviour_ds
    t = ds["time"].values
    inside = (t >= 1.0) & (t <= 2.0)
    np.testing.assert_allclose(ds["speed"].values[inside], 3.0 + (t[inside] - 1.0) * 10.0)
    assert np.isnan(ds["speed"].values[~inside]).all()


def test_clashing_series_names_get_interface_prefix(behaviour_ds):
    ds = behaviour_ds
    assert {"CompassDirection_angle", "Gaze_angle"} <= set(ds.data_vars)
    assert "angle" not in ds
    inside = np.isfinite(ds["Gaze_angle"].values)
    np.testing.assert_allclose(ds["Gaze_angle"].values[inside], -ds["CompassDirection_angle"].values[inside])


def test_integer_series_hold_the_previous_sample(behaviour_ds):
    zone = behaviour_ds["zone"].sel(time=[0.55, 1.45, 1.55, 2.45, 2.55], method="nearest").values
    np.testing.assert_array_equal(zone, [1, 1, 2, 2, np.nan])  # NaN after the last sample (2.5 s)
    assert behaviour_ds["zone"].attrs["interpolation"] == "previous"


def test_behavior_false_skips_series(behaviour_path):
    ds = read_nwb(behaviour_path, bin_size=0.1, behaviour=False)
    assert set(ds.data_vars) == {"spike_counts"}


# ----------------------------------------------------------------------------- tables and metadata
def test_trials_and_unit_columns_and_provenance(tmp_path):
    nwb = _nwbfile()
    mock_Subject(subject_id="rat-7", nwbfile=nwb)
    device = nwb.create_device(name="probe")
    group = nwb.create_electrode_group(name="shank0", description="d", location="CA1", device=device)
    for _ in range(2):
        nwb.add_electrode(group=group, location="CA1")
    nwb.add_unit_column(name="heldout", description="held-out unit")
    nwb.add_unit(spike_times=[0.1, 0.2], electrodes=[1], heldout=True)
    nwb.add_unit(spike_times=[0.3], electrodes=[0], heldout=False)
    nwb.add_trial_column(name="move_onset_time", description="movement onset")
    nwb.add_trial_column(name="split", description="data split")
    nwb.add_trial(start_time=0.0, stop_time=0.5, move_onset_time=0.2, split="train")
    nwb.add_trial(start_time=0.5, stop_time=1.0, move_onset_time=0.7, split="val")
    path = _write(nwb, tmp_path / "t.nwb")
    ds = read_nwb(path, bin_size=0.05)
    np.testing.assert_array_equal(ds["heldout"].values, [True, False])
    np.testing.assert_array_equal(ds["electrodes"].values, [1, 0])
    assert list(ds["location"].values) == ["CA1", "CA1"] and list(ds["group"].values) == ["shank0"] * 2
    np.testing.assert_array_equal(ds["move_onset_time"].values, [0.2, 0.7])
    assert list(ds["split"].values) == ["train", "val"] and ds["split"].dims == ("trial",)
    np.testing.assert_array_equal(ds["stop_time"].values, [0.5, 1.0])
    assert ds.attrs["source"] == str(path) and ds.attrs["identifier"] == "test-file"
    assert ds.attrs["session_id"] == "session-1" and ds.attrs["subject_id"] == "rat-7"
    assert all(isinstance(v, (str, int, float)) for v in ds.attrs.values())


def test_missing_metadata_becomes_empty_string(tmp_path):
    nwb = mock_NWBFile(identifier="x")
    nwb.add_unit(spike_times=[0.5, 1.5])
    ds = read_nwb(_write(nwb, tmp_path / "m.nwb"), bin_size=0.1)
    assert ds.attrs["session_id"] == "" and ds.attrs["subject_id"] == ""


def test_nwb_summary_reads_metadata(behaviour_path):
    path = behaviour_path
    info = nwb_summary(path)
    assert info["n_units"] == 2 and info["identifier"] == "test-file"
    pos = info["behavior"]["behavior/Position/position"]
    assert pos["shape"] == (26, 2) and pos["rate"] == pytest.approx(10.0)
    assert info["behavior"]["behavior/speed"]["rate"] == 10.0
    assert info["time_range"] == (pytest.approx(0.5), pytest.approx(3.0))
    assert info["trials"] is None
    _assert_closed(path)


# ----------------------------------------------------------------------------- file handling
def test_file_is_closed_after_read_and_after_error(behaviour_path):
    path = behaviour_path
    read_nwb(path, bin_size=0.1)
    _assert_closed(path)
    with pytest.raises(MarbleDataError, match="longer than the binned range"):
        read_nwb(path, bin_size=100.0)
    _assert_closed(path)


def test_accepts_str_and_public_name(tmp_path):
    path = _write(_nwbfile([[0.1, 0.9]]), tmp_path / "s.nwb")
    ds = marble_widgets.read_nwb(str(path), bin_size=0.1)
    assert int(ds["spike_counts"].sum()) == 2


# ----------------------------------------------------------------------------- bad input
def test_missing_path(tmp_path):
    with pytest.raises(MarbleDataError, match="does not exist"):
        read_nwb(tmp_path / "nope.nwb")


def test_path_of_wrong_type():
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        read_nwb(42)


def test_not_hdf5(tmp_path):
    path = tmp_path / "notes.nwb"
    path.write_text("just text")
    with pytest.raises(MarbleDataError, match="not an HDF5 file"):
        read_nwb(path)


def test_hdf5_but_not_nwb(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(MarbleDataError, match="could not be read as NWB"):
        read_nwb(path)
    with h5py.File(path, "r+"):  # closed again after the failed open
        pass


def test_truncated_nwb(tmp_path):
    raw = JENKINS.read_bytes()
    path = tmp_path / "half.nwb"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(MarbleDataError, match="truncated"):
        read_nwb(path)
    with pytest.raises(MarbleDataError, match="truncated"):
        nwb_summary(path)


def test_no_units(tmp_path):
    path = _write(_nwbfile(), tmp_path / "empty.nwb")
    with pytest.raises(MarbleDataError, match="no units table"):
        read_nwb(path)


def test_units_without_spike_times(tmp_path):
    nwb = _nwbfile()
    units = Units(name="units")
    units.add_column("quality", "sorting quality")
    units.add_row(quality=0.9)
    nwb.units = units
    with pytest.raises(MarbleDataError, match="no 'spike_times' column"):
        read_nwb(_write(nwb, tmp_path / "q.nwb"))


@pytest.mark.parametrize(("train", "what"), [([-1.0, 2.0], "negative"), ([np.nan, 2.0], "non-finite")])
def test_bad_spike_times(tmp_path, train, what):
    path = _write(_nwbfile([[0.5, 1.0], train]), tmp_path / "bad.nwb")
    with pytest.raises(MarbleDataError, match=rf"1 {what}.* value\(s\), the first in unit 1"):
        read_nwb(path)


@pytest.mark.parametrize("bin_size", [0.0, -0.1, float("nan")])
def test_bin_size_not_positive(simple_path, bin_size):
    path = simple_path
    with pytest.raises(MarbleDataError, match="bin_size must be a finite positive"):
        read_nwb(path, bin_size=bin_size)


def test_bin_size_wrong_type(simple_path):
    path = simple_path
    with pytest.raises(TypeError, match="bin_size must be a number"):
        read_nwb(path, bin_size="20ms")


def test_bin_size_longer_than_recording(simple_path):
    path = simple_path
    with pytest.raises(MarbleDataError, match=r"bin_size=1.0 s is longer than the binned range \(0.5 s"):
        read_nwb(path, bin_size=1.0)


def test_empty_time_range(simple_path):
    path = simple_path
    with pytest.raises(MarbleDataError, match="empty or not finite"):
        read_nwb(path, t_start=2.0, t_stop=1.0)


def test_unknown_unit_ids(simple_path):
    path = simple_path
    with pytest.raises(MarbleDataError, match=r"units \[7\] not found"):
        read_nwb(path, units=[0, 7])
    with pytest.raises(MarbleDataError, match="distinct unit ids"):
        read_nwb(path, units=[0, 0])


def test_behaviour_series_without_timestamps_or_rate(tmp_path):
    path = _behaviour_file(tmp_path)
    with h5py.File(path, "a") as f:
        del f["processing/behavior/Position/position/timestamps"]
    with pytest.raises(MarbleDataError, match="'processing/behavior/Position/position' .* neither timestamps"):
        read_nwb(path)
    _assert_closed(path)


# ----------------------------------------------------------------------------- the real Jenkins file
def test_jenkins_counts_match_independent_histogram(tmp_path):
    path = tmp_path / JENKINS.name
    path.write_bytes(JENKINS.read_bytes())
    ds = read_nwb(path, bin_size=0.02)
    _assert_closed(path)
    assert ds.sizes["unit"] == 107 and ds.sizes["trial"] == 100
    assert set(ds["split"].values) == {"test"} and ds.attrs["subject_id"] == "Jenkins"
    edges = ds.attrs["t_start"] + np.arange(ds.sizes["time"] + 1) * ds.attrs["bin_size"]
    np.testing.assert_allclose(ds["time"].values, (edges[:-1] + edges[1:]) / 2)
    with h5py.File(JENKINS, "r") as f:
        times, ends = f["units/spike_times"][:], f["units/spike_times_index"][:]
        ids, heldout = f["units/id"][:], f["units/heldout"][:]
    np.testing.assert_array_equal(ds["unit"].values, ids)
    np.testing.assert_array_equal(ds["heldout"].values, heldout)
    for k, (a, b) in enumerate(zip(np.r_[0, ends[:-1]], ends)):
        unit_times = times[a:b]
        hist, _ = np.histogram(unit_times, bins=edges)
        np.testing.assert_array_equal(ds["spike_counts"].values[:, k], hist)
        inside = (unit_times >= edges[0]) & (unit_times <= edges[-1])
        assert ds["spike_counts"].values[:, k].sum() == inside.sum()


def test_accessor_is_available_right_after_read_nwb():
    import subprocess
    import sys

    code = ("import marble_widgets as mw\n"
            "rec = mw.read_nwb(mw.datasets.jenkins_nwb_path())\n"
            "print(len(rec.marble.trials))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "100"


def test_former_spelling_behavior_still_works_with_a_warning(behaviour_path):
    with pytest.warns(FutureWarning, match="behavior= is now spelled behaviour="):
        old = read_nwb(behaviour_path, bin_size=0.1, behavior=False)
    assert old.identical(read_nwb(behaviour_path, bin_size=0.1, behaviour=False))
