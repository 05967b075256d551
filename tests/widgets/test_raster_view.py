"""RasterView: the recording's spikes as buffers, samples mapped to recording time, clear errors."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import toy_results
import xarray as xr

from marble_widgets.widgets.page import unpack
from marble_widgets.widgets.raster_view import RasterView


def dense_from_events(a: dict[str, np.ndarray], n_units: int) -> np.ndarray:
    """(bins, units) counts rebuilt from the page's sparse buffers."""
    out = np.zeros((a["bin_time"].size, n_units))
    out[a["event_bin"], a["event_unit"]] = a["event_count"]
    return out


def trial_recording(n_trial: int = 3, n_time: int = 20, n_unit: int = 4, seed: int = 5) -> xr.Dataset:
    """A trial-aligned recording: time relative to the event, trial ids 100, 101, ..."""
    counts = np.random.default_rng(seed).poisson(0.8, (n_trial, n_time, n_unit)).astype(np.float32)
    return xr.Dataset({"spike_counts": (("trial", "time", "unit"), counts)},
                      coords={"trial": 100 + np.arange(n_trial), "time": -0.2 + 0.02 * np.arange(n_time),
                              "unit": np.arange(n_unit)}, attrs={"bin_size": 0.02, "kind": "trials"})


@pytest.fixture(scope="module")
def rec(ff):
    return toy_results.recording(ff)


def test_buffers_decode_to_the_recordings_counts_exactly(rec, ff):
    view = RasterView(rec, ff)
    a = view.arrays()
    np.testing.assert_array_equal(a["bin_time"], rec["time"].values)
    np.testing.assert_array_equal(a["segment_offsets"], [0, rec.sizes["time"]])
    np.testing.assert_array_equal(dense_from_events(a, rec.sizes["unit"]), rec["spike_counts"].values)
    assert (np.diff(a["event_bin"]) >= 0).all()  # sorted by time: the page binary-searches the window
    assert a["event_count"].min() > 0 and a["event_count"].size == np.count_nonzero(rec["spike_counts"].values)
    assert view._meta["units"] == list(range(10, 17)) and view._meta["bin_size"] == toy_results.DT


def test_unit_order_puts_the_given_units_on_top(rec):
    order = [16, 10, 13]
    a = RasterView(rec, unit_order=order).arrays()
    want = rec["spike_counts"].sel(unit=order).values
    np.testing.assert_array_equal(dense_from_events(a, 3), want)
    assert RasterView(rec, unit_order=order)._meta["units"] == order
    with pytest.raises(ValueError, match=r"unit_order must list distinct unit ids of the recording; \[99\]"):
        RasterView(rec, unit_order=[10, 99])


def test_samples_map_to_the_bin_they_came_from(rec, ff):
    view = RasterView(rec, ff, sample=4)
    a = view.arrays()
    t = ff["time"].values
    np.testing.assert_array_equal(a["sample_time"], t)
    # independently: the recording bin whose centre is nearest each sample's time
    nearest = np.abs(rec["time"].values[None, :] - t[:, None]).argmin(axis=1)
    np.testing.assert_array_equal(a["sample_bin"], nearest)
    np.testing.assert_array_equal(a["by_time"], np.argsort(t, kind="stable"))
    np.testing.assert_array_equal(a["by_time_offsets"], [0, t.size])
    assert view.time == t[4]
    view.sample = 61
    assert view.time == t[61] == view.sample_time(61)


def test_trial_aligned_recording_maps_trial_and_time(ff):
    rec = trial_recording()
    times = np.array([-0.2, 0.011, 0.18, -0.09])
    trials = np.array([101, 100, 102, 101])
    res = xr.Dataset(coords={"sample": np.arange(4), "time": ("sample", times), "trial": ("sample", trials)})
    view = RasterView(rec, res)
    a = view.arrays()
    np.testing.assert_array_equal(a["segment_offsets"], [0, 20, 40, 60])
    np.testing.assert_array_equal(a["bin_time"], np.tile(rec["time"].values, 3))
    np.testing.assert_array_equal(dense_from_events(a, 4), rec["spike_counts"].values.reshape(60, 4))
    rows = [np.abs(rec["time"].values - t).argmin() for t in times]
    np.testing.assert_array_equal(a["sample_bin"], np.array([1, 0, 2, 1]) * 20 + rows)
    np.testing.assert_array_equal(a["by_time"], [1, 0, 3, 2])  # trial 100, then 101 in time order, then 102
    np.testing.assert_array_equal(a["by_time_offsets"], [0, 1, 3, 4])
    assert view._meta["trial_aligned"] is True


@pytest.mark.parametrize("make, error, match", [
    (lambda rec: rec.drop_vars("spike_counts"), ValueError, r"recording must be a recording Dataset from read_nwb"),
    (lambda rec: rec.isel(unit=[]), ValueError, r"has 0 units and 124 time bins: there is nothing to draw"),
    (lambda rec: rec.assign(spike_counts=rec["spike_counts"] * 0), ValueError, r"holds no spikes"),
    (lambda rec: rec.assign(spike_counts=-rec["spike_counts"]), ValueError, r"negative counts"),
    (lambda rec: rec.assign(spike_counts=rec["spike_counts"].rename(unit="neuron")), ValueError,
     r"has dims \('time', 'neuron'\)"),
])
def test_recordings_without_spikes_or_units_are_refused(rec, make, error, match):
    with pytest.raises(error, match=match):
        RasterView(make(rec))


def test_results_outside_the_recording_are_refused(rec, ff):
    late = ff.assign_coords(time=ff["time"] + 100.0)
    hi = rec["time"].values[-1] + toy_results.DT / 2  # 6.15 + half a bin
    first = re.escape(f"{ff['time'].values[0] + 100:.4g}")
    with pytest.raises(ValueError, match=rf"90 results samples have times outside the recording \(-0.025..{hi:.4g} s\), "
                                         rf"e\.g\. sample 0 at {first} s; pass the recording the flow field"):
        RasterView(rec, late)
    with pytest.raises(ValueError, match="results have no numeric time coord on sample"):
        RasterView(rec, ff.drop_vars("time"))
    with pytest.raises(TypeError, match="results must be MARBLE.results"):
        RasterView(rec, ff["x"].values)
    res = xr.Dataset(coords={"sample": [0], "time": ("sample", [0.0]), "trial": ("sample", [7])})
    with pytest.raises(ValueError, match=r"results name trials \[7\] that the recording lacks"):
        RasterView(trial_recording(), res)


def test_traits_are_validated(rec, ff):
    view = RasterView(rec, ff)
    with pytest.raises(ValueError, match=r"sample=90 is outside the results' sample dim \[0, 90\)"):
        view.sample = 90
    with pytest.raises(ValueError, match="window must be a positive half-width in seconds; got -1"):
        view.window = -1
    bare = RasterView(rec)
    with pytest.raises(ValueError, match=r"sample needs results: build RasterView\(recording, results\)"):
        bare.sample = 3
    with pytest.raises(ValueError, match="has no results; pass results="):
        bare.sample_time(0)
    assert bare.time == rec["time"].values[0] + 5.0  # the first window starts at the recording's start


def test_export_state_and_page_hold_the_same_buffers(rec, ff, tmp_path):
    view = RasterView(rec, ff, channel="abc", window=2.0, sample=12)
    state = view.export_state()
    assert (state["sample"], state["time"], state["window"], state["channel"]) == (12, ff["time"].values[12], 2.0, "abc")
    for name, value in view.arrays().items():
        np.testing.assert_array_equal(unpack(state["_arrays"][name]), value, err_msg=name)
    text = view.to_html(tmp_path / "raster.html").read_text(encoding="utf-8")
    payload = json.loads(re.search(r"id='mw-payload'>(.*?)</script>", text, re.S).group(1))
    assert [v["key"] for v in payload["views"]] == ["raster"] and "id='mw-root-raster'" in text
    assert "class='mw-raster-view'" in text


@pytest.mark.slow
def test_rat_flow_field_samples_sit_on_the_recordings_bin_centres():
    import marble_widgets as mw

    rec = mw.datasets.rat_hippocampus()
    ff = mw.flow_field(rec, n_components=10, smooth=0.25)
    a = RasterView(rec, ff).arrays()
    np.testing.assert_array_equal(a["bin_time"][a["sample_bin"]], ff["time"].values)
