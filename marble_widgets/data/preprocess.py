"""Smoothing, rates, trial alignment and rebinning of recordings, plus the ``.marble`` accessor.

Every function takes a recording ``xarray.Dataset`` (schemas in docs/design.md) and returns a new
one; the caller's Dataset is never modified. Smoothing is a Gaussian kernel along ``time`` applied
separately to every trial and to every contiguous run of bins (runs end at NaN rows and at time
gaps longer than 1.5 bins), so no kernel ever mixes two trials or bridges a gap. The kernel pads
with zeros (``scipy.ndimage.gaussian_filter1d(mode="constant", cval=0)``): no spikes are invented
beyond an edge (unlike "nearest"/"reflect", which copy edge bins), so rates within ~2 sigma of an
edge are biased low. That matches the reference (elephant's ``instantaneous_rate`` without
border correction).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy.ndimage import gaussian_filter1d

from marble_widgets.data.errors import MarbleDataError

TRUNCATE = 4.0  # kernel support: +-4 sigma, normalised to unit sum over that support
GAP_FACTOR = 1.5  # a step between bin centres longer than this many bins is a gap


# ----------------------------------------------------------------------------- helpers
def bin_size_of(obj: xr.Dataset | xr.DataArray, bin_size: float | None = None) -> float:
    """Bin width in seconds: the argument, else ``attrs['bin_size']``, else the median time step."""
    if bin_size is None:
        bin_size = obj.attrs.get("bin_size")
    if bin_size is None and "time" in obj.coords and obj.sizes["time"] > 1:
        bin_size = float(np.median(np.diff(np.asarray(obj["time"].values, dtype=float))))
    if bin_size is None or not np.isfinite(bin_size) or float(bin_size) <= 0:
        raise MarbleDataError(
            f"bin_size must be a positive number of seconds; got {bin_size!r}. Pass bin_size=... or set "
            "attrs['bin_size'] on the recording."
        )
    return float(bin_size)


def contiguous_runs(valid: np.ndarray, times: np.ndarray | None = None, bin_size: float | None = None) -> list[slice]:
    """Contiguous runs of valid rows, split at invalid rows and at time gaps > GAP_FACTOR bins."""
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return []
    cut = np.diff(idx) > 1
    if times is not None and bin_size is not None:
        cut |= np.diff(np.asarray(times, dtype=float)[idx]) > GAP_FACTOR * bin_size
    starts = np.r_[0, np.flatnonzero(cut) + 1]
    ends = np.r_[np.flatnonzero(cut) + 1, idx.size]
    return [slice(int(idx[s]), int(idx[e - 1]) + 1) for s, e in zip(starts, ends)]


def _smooth_array(
    values: np.ndarray,
    sigma_bins: float,
    axis: int,
    *,
    group_axis: int | None = None,
    times: np.ndarray | None = None,
    bin_size: float | None = None,
) -> np.ndarray:
    """Gaussian smoothing along ``axis``, separately per group (trial) and per contiguous run.

    Rows (positions along ``axis``) holding any non-finite value are gaps: they come back NaN.
    """
    arr = np.asarray(values, dtype=np.float64)
    axes = [axis] if group_axis is None else [axis, group_axis]
    moved = np.moveaxis(arr, axes, list(range(len(axes))))
    if group_axis is None:
        moved = moved[:, None]
    out = np.full(moved.shape, np.nan)
    for g in range(moved.shape[1]):
        block = moved[:, g].reshape(moved.shape[0], -1)
        valid = np.isfinite(block).all(axis=1)
        res = np.full(block.shape, np.nan)
        for run in contiguous_runs(valid, times, bin_size):
            res[run] = gaussian_filter1d(block[run], sigma_bins, axis=0, mode="constant", cval=0.0, truncate=TRUNCATE)
        out[:, g] = res.reshape(moved.shape[:1] + moved.shape[2:])
    if group_axis is None:
        out = out[:, 0]
    return np.moveaxis(out, list(range(len(axes))), axes)


def check_sigma(sigma: float | None) -> float:
    """Return sigma as a float (None -> 0); raise for negative or non-finite values."""
    value = 0.0 if sigma is None else float(sigma)
    if not np.isfinite(value) or value < 0:
        raise MarbleDataError(f"sigma/smooth must be a non-negative width in seconds; got {sigma!r}.")
    return value


def _smooth_dataarray(da: xr.DataArray, sigma: float, bin_size: float, dim: str) -> xr.DataArray:
    """Smooth a labelled array along ``dim`` (never across ``trial``); NaN rows mark gaps."""
    if dim not in da.dims:
        raise MarbleDataError(f"dim={dim!r} is not a dimension of {da.name!r} (dims {da.dims}).")
    axis = da.dims.index(dim)
    group = da.dims.index("trial") if "trial" in da.dims and dim != "trial" else None
    times = da[dim].values if dim in da.coords and da[dim].dtype.kind in "fiu" else None
    if times is not None and group is None and np.any(np.diff(times.astype(float)) <= 0):
        raise MarbleDataError(f"the {dim!r} coordinate must increase strictly; sort the recording by {dim} first.")
    out = _smooth_array(da.values, sigma / bin_size, axis, group_axis=group, times=times, bin_size=bin_size)
    return da.copy(data=out)


def smooth(
    rec_or_array: xr.Dataset | xr.DataArray | np.ndarray,
    sigma: float,
    *,
    bin_size: float | None = None,
    dim: str | int = "time",
    variables: Sequence[str] | None = None,
) -> xr.Dataset | xr.DataArray | np.ndarray:
    """Gaussian smoothing along time with width ``sigma`` in seconds (zero padding at edges).

    Turns binned counts into smooth per-bin values without mixing trials or bridging gaps: each
    trial and each contiguous run of finite rows is filtered on its own with
    ``gaussian_filter1d(mode="constant", cval=0, truncate=4)`` (kernel sums to 1 over +-4 sigma).
    Datasets: smooths ``variables`` (default ``["spike_counts"]``) and returns a new Dataset.
    DataArrays: along ``dim``. numpy arrays: along axis ``dim`` ("time" = axis 0); ``bin_size``
    required. ``sigma=0`` returns an unchanged copy.
    """
    sigma = check_sigma(sigma)
    if isinstance(rec_or_array, xr.Dataset):
        names = list(variables) if variables is not None else ["spike_counts"]
        _require_vars(rec_or_array, names, "variables")
        bs = bin_size_of(rec_or_array, bin_size)
        out = rec_or_array.copy()
        for name in names:
            if sigma > 0:
                out[name] = _smooth_dataarray(rec_or_array[name], sigma, bs, str(dim))
        return out
    if isinstance(rec_or_array, xr.DataArray):
        bs = bin_size_of(rec_or_array, bin_size)
        return _smooth_dataarray(rec_or_array, sigma, bs, str(dim)) if sigma > 0 else rec_or_array.copy()
    arr = np.asarray(rec_or_array)
    axis = 0 if dim == "time" else dim
    if not isinstance(axis, (int, np.integer)) or not -arr.ndim <= axis < arr.ndim:
        raise MarbleDataError(f"for a numpy array, dim must be 'time' (axis 0) or an axis number; got {dim!r}.")
    if bin_size is None:
        raise MarbleDataError("bin_size is required to smooth a numpy array (sigma is in seconds).")
    bs = bin_size_of(xr.DataArray(0), bin_size)
    return _smooth_array(arr, sigma / bs, int(axis)) if sigma > 0 else arr.astype(np.float64, copy=True)


def _require_vars(ds: xr.Dataset, names: Sequence[str], arg: str) -> None:
    """Raise naming the missing variables and the available ones."""
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise MarbleDataError(
            f"{arg}: variable(s) {missing} not in the recording; available: {sorted(map(str, ds.data_vars))}."
        )


def layout(rec: xr.Dataset, variable: str = "spike_counts") -> str:
    """'trials' if ``variable`` is (trial, time, unit), 'continuous' if (time, unit); else raise."""
    _require_vars(rec, [variable], "variable")
    dims = set(rec[variable].dims)
    if dims == {"trial", "time", "unit"}:
        return "trials"
    if dims == {"time", "unit"}:
        return "continuous"
    raise MarbleDataError(
        f"variable {variable!r} has dims {rec[variable].dims}; expected (time, unit) or (trial, time, unit)."
    )


def _check_counts(da: xr.DataArray) -> None:
    """Counts may hold NaN only as whole gap rows; any inf, partial-NaN row or negative value raises."""
    vals = np.asarray(da.transpose(..., "unit").values, dtype=np.float64)
    nan = np.isnan(vals)
    bad = np.isinf(vals) | (nan & ~nan.all(axis=-1, keepdims=True))
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise MarbleDataError(
            f"{da.name!r} contains {int(bad.sum())} inf or isolated NaN value(s), the first at index {first} "
            f"(dims {da.transpose(..., 'unit').dims}). Only whole rows of NaN are allowed (they mark gaps); "
            "fix or drop those bins."
        )
    if np.nanmin(vals, initial=0.0) < 0:
        raise MarbleDataError(f"{da.name!r} has negative values; spike counts must be >= 0.")


def rate_values(da: xr.DataArray, sigma: float, bin_size: float, *, sqrt: bool = False) -> xr.DataArray:
    """Counts -> smoothed rates in Hz (sqrt first if asked); arrays marked ``units='Hz'`` stay in Hz.

    Shared by :func:`rates` and the flow-field builder so both apply the same preprocessing.
    """
    is_rate = da.attrs.get("units") in ("Hz", "z")
    if not is_rate:
        _check_counts(da)
    vals = da.astype(np.float64)
    if sqrt:
        vals = np.sqrt(vals)
    if sigma > 0:
        vals = _smooth_dataarray(vals, sigma, bin_size, "time")
    return vals if is_rate else vals / bin_size


def zscore_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit mean and scale over all rows of (n, unit) values; silent units get scale 1."""
    mean = np.nanmean(values, axis=0)
    scale = np.nanstd(values, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return mean, scale


def rates(
    rec: xr.Dataset,
    sigma: float = 0.05,
    *,
    sqrt: bool = False,
    zscore: bool = False,
    variable: str = "spike_counts",
) -> xr.Dataset:
    """Add ``rates`` (Hz; z-scored per unit if asked) = Gaussian-smoothed ``variable``.

    The firing-rate estimate every downstream step uses; ``sqrt`` stabilises Poisson variance
    before smoothing, ``zscore`` standardises each unit over all its bins after smoothing.
    """
    layout(rec, variable)
    sigma = check_sigma(sigma)
    bs = bin_size_of(rec)
    r = rate_values(rec[variable], sigma, bs, sqrt=sqrt)
    if zscore:
        flat = np.asarray(r.transpose(..., "unit").values).reshape(-1, r.sizes["unit"])
        mean, scale = zscore_stats(flat)
        r = (r - xr.DataArray(mean, dims="unit")) / xr.DataArray(scale, dims="unit")
    out = rec.copy()
    out["rates"] = r.transpose(*rec[variable].dims)
    out["rates"].attrs = {"units": "z" if zscore else "Hz", "sigma": sigma, "sqrt": int(sqrt), "zscore": int(zscore)}
    return out


# ----------------------------------------------------------------------------- trials
def trials_table(rec: xr.Dataset) -> pd.DataFrame:
    """The per-trial variables (dims exactly ``(trial,)``) as a DataFrame indexed by trial id."""
    if "trial" not in rec.dims:
        return pd.DataFrame()
    cols = {name: rec[name].values for name in rec.data_vars if rec[name].dims == ("trial",)}
    index = pd.Index(rec["trial"].values if "trial" in rec.coords else np.arange(rec.sizes["trial"]), name="trial")
    return pd.DataFrame(cols, index=index)


def _window_starts(rec: xr.Dataset, event: str, window: tuple[float, float], bs: float) -> tuple[np.ndarray, int]:
    """Index of the first bin of every trial's window, and the window length in bins."""
    w0, w1 = (float(w) for w in window)
    if not w0 < w1:
        raise MarbleDataError(f"window must be (start, stop) with start < stop in seconds; got {window!r}.")
    n_bins = int(round((w1 - w0) / bs))
    if n_bins < 1:
        raise MarbleDataError(f"window {window!r} is shorter than one bin ({bs} s); widen it.")
    times = np.asarray(rec["time"].values, dtype=float)
    events = np.asarray(rec[event].values, dtype=float)
    ids = rec["trial"].values
    if np.isnan(events).any():
        raise MarbleDataError(
            f"event {event!r} is NaN for trial(s) {ids[np.isnan(events)].tolist()}; drop them first, e.g. "
            f"rec.isel(trial=np.flatnonzero(np.isfinite(rec[{event!r}])))."
        )
    starts = np.searchsorted(times - bs / 2, events + w0 + 1e-9 * bs, side="right") - 1
    return starts, n_bins


def _check_windows(rec: xr.Dataset, starts: np.ndarray, n_bins: int, bs: float, within_trial: bool) -> None:
    """Raise naming the trials whose window leaves the recording, a trial or a contiguous run."""
    times = np.asarray(rec["time"].values, dtype=float)
    ids = rec["trial"].values
    stops = starts + n_bins - 1
    outside = (starts < 0) | (stops >= times.size)
    if outside.any():
        raise MarbleDataError(
            f"the window falls outside the recording ({times[0] - bs / 2:.3f}-{times[-1] + bs / 2:.3f} s) for "
            f"trial(s) {ids[outside].tolist()}; shorten the window or drop those trials."
        )
    span = times[stops] - times[starts]
    broken = np.abs(span - (n_bins - 1) * bs) > 0.5 * bs
    if broken.any():
        raise MarbleDataError(f"the window crosses a gap in the time bins for trial(s) {ids[broken].tolist()}.")
    if within_trial and "start_time" in rec and "stop_time" in rec:
        lo = times[starts] - bs / 2 < rec["start_time"].values - 1e-6 * bs
        hi = times[stops] + bs / 2 > rec["stop_time"].values + 1e-6 * bs
        if (lo | hi).any():
            raise MarbleDataError(
                f"the window reaches outside start_time/stop_time for trial(s) {ids[lo | hi].tolist()}; shorten the "
                "window, drop those trials, or pass within_trial=False to cut across trial borders."
            )


def align(
    rec: xr.Dataset,
    event: str = "move_onset_time",
    window: tuple[float, float] = (-0.25, 0.45),
    *,
    within_trial: bool = True,
) -> xr.Dataset:
    """Cut every trial's bins in ``event + window`` into a (trial, time, ...) Dataset.

    The trial-aligned layout the macaque recipe works on. Bin k of a trial's window is the k-th
    bin from the one containing ``event + window[0]``; the shared ``time`` coordinate is the
    nominal ``window[0] + (k + 0.5) * bin_size`` (the true offset differs by less than one bin).
    Every variable on ``time`` (counts, rates, behaviour) is cut the same way; per-trial variables
    stay (trial,). ``within_trial`` requires each window to lie within [start_time, stop_time].
    """
    if "trial" not in rec.dims or rec.sizes["trial"] == 0:
        raise MarbleDataError("the recording has no trials table (or it is empty); align needs one.")
    if "time" not in rec.dims or any("trial" in rec[n].dims and "time" in rec[n].dims for n in rec.data_vars):
        raise MarbleDataError("align needs a continuous recording (variables on 'time'); this one is already aligned.")
    if event not in rec.data_vars or rec[event].dims != ("trial",):
        raise MarbleDataError(
            f"event {event!r} is not a column of the trials table; available columns: "
            f"{list(trials_table(rec).columns)}."
        )
    bs = bin_size_of(rec)
    starts, n_bins = _window_starts(rec, event, window, bs)
    _check_windows(rec, starts, n_bins, bs, within_trial)
    index = xr.DataArray(starts[:, None] + np.arange(n_bins)[None, :], dims=("trial", "time"),
                         coords={"trial": rec["trial"]} if "trial" in rec.coords else None)
    timed = [n for n in rec.data_vars if "time" in rec[n].dims]
    out = rec[timed].drop_vars("time").isel(time=index)
    out = out.assign_coords(time=float(window[0]) + (np.arange(n_bins) + 0.5) * bs)
    for name in rec.data_vars:
        if name not in timed:
            out[name] = rec[name]
    out = out.transpose("trial", "time", ...)
    out.attrs = {**rec.attrs, "kind": "trials", "align_event": event, "window_start": float(window[0]),
                 "window_stop": float(window[1])}
    return out


# ----------------------------------------------------------------------------- rebinning
def block_reduce(arr: np.ndarray, axis: int, factor: int, how: str) -> np.ndarray:
    """Reduce consecutive blocks of ``factor`` rows along ``axis`` (remainder dropped)."""
    moved = np.moveaxis(np.asarray(arr), axis, 0)
    n = moved.shape[0] // factor
    blocks = moved[: n * factor].reshape((n, factor) + moved.shape[1:])
    if how == "sum":
        red = blocks.sum(axis=1)
    elif how == "mean":
        red = blocks.mean(axis=1)
    else:
        red = blocks[:, 0]
    return np.moveaxis(red, 0, axis)


def _rebin_part(part: xr.Dataset, factor: int, sum_vars: Sequence[str]) -> xr.Dataset:
    """Rebin one contiguous stretch (or a trial-aligned Dataset) along ``time``."""
    data = {}
    for name in part.data_vars:
        da = part[name]
        if "time" not in da.dims:
            data[name] = da
            continue
        kind = da.dtype.kind
        how = "sum" if name in sum_vars else ("mean" if kind in "fc" else "first")
        red = block_reduce(da.values, da.dims.index("time"), factor, how)
        other = {c: da[c] for c in da.coords if "time" not in da[c].dims}
        data[name] = xr.DataArray(red, dims=da.dims, coords=other, attrs=da.attrs)
    times = block_reduce(part["time"].values.astype(float), 0, factor, "mean")
    return xr.Dataset(data, attrs=part.attrs).assign_coords(time=times)


def rebin(rec: xr.Dataset, bin_size: float, *, sum_vars: Sequence[str] = ("spike_counts",)) -> xr.Dataset:
    """Coarser bins: ``sum_vars`` are summed, other float variables averaged, others take the first bin.

    Turns e.g. 5 ms macaque bins into the recipe's 20 ms. ``bin_size`` must be an integer multiple
    of the current one; each contiguous run (and each trial) is rebinned on its own and a remainder
    shorter than one new bin at its end is dropped. The new ``time`` is the mean of the old centres.
    """
    old = bin_size_of(rec)
    ratio = float(bin_size) / old
    factor = int(round(ratio))
    if factor < 1 or abs(ratio - factor) > 1e-6:
        raise MarbleDataError(
            f"bin_size={bin_size!r} must be an integer multiple (>= 1) of the current bin size {old} s."
        )
    if factor == 1:
        return rec.copy()
    timed = [n for n in rec.data_vars if "time" in rec[n].dims]
    aligned = any("trial" in rec[n].dims for n in timed)
    if aligned:
        out = _rebin_part(rec, factor, sum_vars)
    else:
        times = np.asarray(rec["time"].values, dtype=float)
        parts = [_rebin_part(rec[timed].isel(time=run), factor, sum_vars)
                 for run in contiguous_runs(np.ones(times.size, bool), times, old) if run.stop - run.start >= factor]
        if not parts:
            raise MarbleDataError(f"no contiguous stretch is as long as one new bin of {bin_size} s.")
        out = xr.concat(parts, dim="time") if len(parts) > 1 else parts[0]
        for name in rec.data_vars:
            if name not in timed:
                out[name] = rec[name]
    out.attrs = {**rec.attrs, "bin_size": float(bin_size)}
    return out
