"""Smoothing, rates, trial alignment, rebinning and the ``.marble`` accessor."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from marble_widgets.data import preprocess as pp
from marble_widgets.data.errors import MarbleDataError


def continuous_rec(
    n_time: int = 600, n_unit: int = 5, bs: float = 0.005, seed: int = 0, trials: bool = True
) -> xr.Dataset:
    """A small continuous recording (schema of docs/design.md) with an optional trials table."""
    rng = np.random.default_rng(seed)
    time = 10.0 + (np.arange(n_time) + 0.5) * bs
    ds = xr.Dataset(
        {
            "spike_counts": (("time", "unit"), rng.poisson(0.5, (n_time, n_unit)).astype(np.float32)),
            "position": ("time", np.linspace(0.0, 1.6, n_time)),
            "hand_velocity": (("time", "axis"), rng.normal(size=(n_time, 2))),
            "direction": ("time", np.where(np.arange(n_time) % 100 < 50, "left", "right")),
        },
        coords={"time": time, "unit": np.arange(n_unit) + 10, "axis": ["x", "y"]},
        attrs={"bin_size": bs, "source": "toy", "kind": "continuous"},
    )
    if trials:
        ds = ds.assign(
            start_time=("trial", [10.2, 11.0, 12.0]),
            stop_time=("trial", [10.9, 11.9, 12.9]),
            move_onset_time=("trial", [10.5, 11.3, 12.4]),
            reach_angle=("trial", [0.0, 1.5, 3.0]),
        ).assign_coords(trial=[3, 4, 5])
    return ds


def gaussian_kernel(sigma_bins: float) -> np.ndarray:
    """The analytic Gaussian sampled at integer lags within +-4 sigma, normalised to unit sum."""
    radius = int(4.0 * sigma_bins + 0.5)
    k = np.arange(-radius, radius + 1)
    g = np.exp(-0.5 * (k / sigma_bins) ** 2)
    return g / g.sum()


# ------------------------------------------------------------------------------ smooth
def test_smooth_delta_equals_normalised_gaussian():
    x = np.zeros(201)
    x[100] = 1.0
    out = pp.smooth(x, 0.2, bin_size=0.02)  # sigma = 10 bins
    g = gaussian_kernel(10.0)
    np.testing.assert_allclose(out[60:141], g, atol=1e-6)
    assert np.abs(np.r_[out[:60], out[141:]]).max() < 1e-12
    assert x.sum() == 1.0 and x[100] == 1.0  # input untouched


def test_smooth_edges_invent_no_mass():
    # zero padding: a spike in the first bin keeps only the half kernel inside the recording
    x = np.zeros((100, 1))
    x[0] = 1.0
    out = pp.smooth(x, 0.1, bin_size=0.01)
    g = gaussian_kernel(10.0)
    np.testing.assert_allclose(out[:41, 0], g[40:], atol=1e-12)
    assert out.sum() < 0.6


def test_smooth_never_across_trials_or_gaps():
    counts = np.zeros((2, 50, 1))
    counts[0, -1, 0] = 1.0  # spike in the last bin of trial 0
    da = xr.DataArray(counts, dims=("trial", "time", "unit"), coords={"time": np.arange(50) * 0.01},
                      attrs={"bin_size": 0.01})
    out = pp.smooth(da, 0.05)
    assert np.all(out.values[1] == 0.0)
    assert out.values[0, -1, 0] > 0
    # continuous: a time gap of 5 bins stops the kernel
    t = np.r_[np.arange(30), np.arange(35, 65)] * 0.01
    c = xr.DataArray(np.zeros((60, 1)), dims=("time", "unit"), coords={"time": t}, attrs={"bin_size": 0.01})
    c[29, 0] = 1.0
    sm = pp.smooth(c, 0.05)
    assert np.all(sm.values[30:] == 0.0) and sm.values[25, 0] > 0


def test_smooth_dataset_and_errors():
    rec = continuous_rec(trials=False)
    out = pp.smooth(rec, 0.02)
    expected = pp.smooth(rec["spike_counts"].values, 0.02, bin_size=0.005)
    np.testing.assert_allclose(out["spike_counts"].values, expected)
    np.testing.assert_array_equal(rec["position"].values, out["position"].values)
    with pytest.raises(MarbleDataError, match="bin_size is required"):
        pp.smooth(np.zeros(5), 0.1)
    with pytest.raises(MarbleDataError, match="non-negative"):
        pp.smooth(rec, -1.0)
    with pytest.raises(MarbleDataError, match="available"):
        pp.smooth(rec, 0.1, variables=["nope"])


# ------------------------------------------------------------------------------ rates
def test_rates_hz_sqrt_and_zscore():
    rec = continuous_rec(trials=False)
    before = rec.copy(deep=True)
    r = pp.rates(rec, 0.05)
    expected = pp.smooth(rec["spike_counts"].values, 0.05, bin_size=0.005) / 0.005
    np.testing.assert_allclose(r["rates"].values, expected, rtol=1e-12)
    assert r["rates"].attrs["units"] == "Hz" and "rates" not in rec
    xr.testing.assert_identical(rec, before)
    rs = pp.rates(rec, 0.05, sqrt=True)
    np.testing.assert_allclose(
        rs["rates"].values, pp.smooth(np.sqrt(rec["spike_counts"].values), 0.05, bin_size=0.005) / 0.005
    )
    rz = pp.rates(rec, 0.05, zscore=True)["rates"].values
    np.testing.assert_allclose(rz.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(rz.std(axis=0), 1.0, atol=1e-10)


def test_rates_nan_rows_are_gaps_but_bad_values_raise():
    rec = continuous_rec(trials=False)
    counts = np.zeros((600, 5))
    counts[299] = 1.0
    counts[300] = np.nan  # a whole NaN row: a gap
    r = pp.rates(rec.assign(spike_counts=(("time", "unit"), counts)), 0.02)["rates"].values
    assert np.isnan(r[300]).all() and np.all(r[301:] == 0) and r[298, 0] > 0
    partial = counts.copy()
    partial[10, 2] = np.nan
    with pytest.raises(MarbleDataError, match="isolated NaN"):
        pp.rates(rec.assign(spike_counts=(("time", "unit"), partial)), 0.02)
    inf = np.zeros((600, 5))
    inf[5, 1] = np.inf
    with pytest.raises(MarbleDataError, match=r"inf .* first at index \(5, 1\)"):
        pp.rates(rec.assign(spike_counts=(("time", "unit"), inf)), 0.02)
    with pytest.raises(MarbleDataError, match="negative"):
        pp.rates(rec.assign(spike_counts=(("time", "unit"), -np.ones((600, 5)))), 0.02)
    with pytest.raises(MarbleDataError, match="not in the recording"):
        pp.rates(rec, variable="lfp")


# ------------------------------------------------------------------------------ align
def test_align_cuts_counts_and_behaviour_around_event():
    rec = continuous_rec()
    al = pp.align(rec, "move_onset_time", (-0.1, 0.2))
    assert al["spike_counts"].dims == ("trial", "time", "unit") and al.sizes["time"] == 60
    np.testing.assert_allclose(al["time"].values, -0.1 + (np.arange(60) + 0.5) * 0.005)
    times = rec["time"].values
    for i, ev in enumerate(rec["move_onset_time"].values):
        first = int(np.flatnonzero(times - 0.0025 <= ev - 0.1 + 1e-12)[-1])
        np.testing.assert_array_equal(al["spike_counts"].values[i], rec["spike_counts"].values[first:first + 60])
        np.testing.assert_array_equal(al["hand_velocity"].values[i], rec["hand_velocity"].values[first:first + 60])
        assert abs(times[first] - ev - al["time"].values[0]) < 0.005
    np.testing.assert_array_equal(al["reach_angle"].values, [0.0, 1.5, 3.0])
    np.testing.assert_array_equal(al["trial"].values, [3, 4, 5])
    assert al.attrs["kind"] == "trials" and al.attrs["align_event"] == "move_onset_time"


def test_align_errors_name_the_problem():
    rec = continuous_rec()
    with pytest.raises(MarbleDataError, match=r"available columns: \['start_time', 'stop_time', 'move_onset_time'"):
        pp.align(rec, "go_cue_time")
    with pytest.raises(MarbleDataError, match="start < stop"):
        pp.align(rec, window=(0.2, 0.1))
    with pytest.raises(MarbleDataError, match=r"start_time/stop_time for trial\(s\) \[3, 4\]"):
        pp.align(rec, window=(-0.35, 0.2))
    with pytest.raises(MarbleDataError, match=r"outside the recording .* trial\(s\) \[5\]"):
        pp.align(rec, window=(-0.1, 0.7), within_trial=False)
    with pytest.raises(MarbleDataError, match="no trials table"):
        pp.align(rec.isel(trial=slice(0, 0)))
    with pytest.raises(MarbleDataError, match=r"NaN for trial\(s\) \[4\]"):
        pp.align(rec.assign(move_onset_time=("trial", [10.5, np.nan, 12.4])))
    with pytest.raises(MarbleDataError, match="already aligned"):
        pp.align(pp.align(rec, window=(-0.1, 0.2)))


# ------------------------------------------------------------------------------ rebin
def test_rebin_sums_counts_and_averages_behaviour():
    rec = continuous_rec(trials=False)
    rb = pp.rebin(rec, 0.02)
    assert rb.sizes["time"] == 150 and rb.attrs["bin_size"] == 0.02
    c = rec["spike_counts"].values
    np.testing.assert_allclose(rb["spike_counts"].values, c.reshape(150, 4, 5).sum(1))
    np.testing.assert_allclose(rb["position"].values, rec["position"].values.reshape(150, 4).mean(1))
    np.testing.assert_allclose(rb["time"].values, rec["time"].values.reshape(150, 4).mean(1))
    np.testing.assert_array_equal(rb["direction"].values, rec["direction"].values[::4])
    al = pp.align(continuous_rec(), window=(-0.1, 0.2))
    ra = pp.rebin(al, 0.02)
    assert ra["spike_counts"].shape == (3, 15, 5)
    np.testing.assert_allclose(ra["spike_counts"].values, al["spike_counts"].values.reshape(3, 15, 4, 5).sum(2))
    np.testing.assert_allclose(ra["time"].values, -0.1 + (np.arange(15) + 0.5) * 0.02)
    with pytest.raises(MarbleDataError, match="integer multiple"):
        pp.rebin(rec, 0.012)


def test_rebin_continuous_restarts_at_gaps():
    rec = continuous_rec(n_time=20, trials=False)
    t = rec["time"].values.copy()
    t[10:] += 1.0  # gap after bin 9: blocks of 4 -> 2 blocks before (2 bins dropped), 2 after (2 dropped)
    rb = pp.rebin(rec.assign_coords(time=t), 0.02)
    assert rb.sizes["time"] == 4
    np.testing.assert_allclose(rb["time"].values, [t[0:4].mean(), t[4:8].mean(), t[10:14].mean(), t[14:18].mean()])


# ------------------------------------------------------------------------------ accessor
def test_accessor_verbs_and_trials_table():
    rec = continuous_rec()
    xr.testing.assert_identical(rec.marble.rates(0.05), pp.rates(rec, 0.05))
    xr.testing.assert_identical(rec.marble.align(window=(-0.1, 0.2)), pp.align(rec, window=(-0.1, 0.2)))
    xr.testing.assert_identical(rec.marble.rebin(0.01), pp.rebin(rec, 0.01))
    table = rec.marble.trials
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["start_time", "stop_time", "move_onset_time", "reach_angle"]
    assert list(table.index) == [3, 4, 5] and table.loc[4, "reach_angle"] == 1.5
    assert continuous_rec(trials=False).marble.trials.empty
    ff = rec.marble.flow_field(n_components=2, smooth=0.02)
    assert ff.sizes["dim"] == 2 and set(np.unique(ff["trial"].values)) == {3, 4, 5}
