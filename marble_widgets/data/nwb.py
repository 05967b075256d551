"""Read NWB files into the recording Dataset of docs/design.md (spikes binned, behaviour resampled).

The file is opened with ``pynwb.NWBHDF5IO`` inside a ``with`` block, only the arrays needed are
read (behaviour is sliced to the binned range) and everything returned is a plain NumPy array, so
the HDF5 file is closed when :func:`read_nwb` or :func:`nwb_summary` returns. An ``http(s)://``
address is streamed with HTTP range requests (:mod:`marble_widgets.data.remote`), so only the
bytes those reads touch are fetched.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import xarray as xr

from marble_widgets.data import remote
from marble_widgets.data.errors import MarbleDataError

# columns of the units table that are not per-unit scalars (handled apart or skipped)
_SKIPPED_UNIT_COLUMNS = {"spike_times", "electrodes", "obs_intervals", "waveforms", "waveform_mean", "waveform_sd",
                         "time", "unit", "trial", "epoch"}
_AXIS_LABELS = {2: ["x", "y"], 3: ["x", "y", "z"]}


# ----------------------------------------------------------------------------- public API
def read_nwb(
    path: str | os.PathLike,
    bin_size: float = 0.02,
    *,
    t_start: float | None = None,
    t_stop: float | None = None,
    units: Sequence[int] | None = None,
    behaviour: bool = True,
    cache_dir: str | os.PathLike | None = None,
    storage_options: Mapping[str, Any] | None = None,
    behavior: bool | None = None,
) -> xr.Dataset:
    """Bin an NWB file's spike times and resample its behaviour onto common time bins.

    One call turns a raw NWB recording into the continuous recording Dataset every other room
    accepts (see docs/design.md), on the file's own clock.

    Parameters
    ----------
    path : str or os.PathLike
        NWB 2 (HDF5) file, or its ``http(s)://`` URL (e.g. a DANDI asset URL), read lazily with
        HTTP range requests (fsspec); the result equals the local read's (``source`` = the URL).
    bin_size : float
        Bin width in seconds.
    t_start, t_stop : float, optional
        Binned range in seconds; default: earliest to latest spike, behaviour sample, trial or
        epoch time. Whole bins cover it (the last may end just after ``t_stop``); a spike on
        the last edge counts in the last bin, as in ``np.histogram``.
    units : sequence of int, optional
        Ids of the units to keep, in this order (default all).
    behaviour : bool
        Also resample the behavioural series of the processing modules (``behavior=`` is the
        former spelling, still accepted with a FutureWarning).
    cache_dir, storage_options
        URLs only: a folder keeping fetched blocks on disk, so a second read fetches only blocks
        not yet seen; options of ``fsspec.filesystem("http")`` (e.g. ``headers``) plus
        ``block_size`` (bytes per request, default ``remote.DEFAULT_BLOCK_SIZE``).

    Returns
    -------
    xarray.Dataset
        ``spike_counts`` (time, unit) int32; behaviour variables on ``time`` (linear
        interpolation, NaN outside a series' own range); the trials table on ``trial``, the
        epochs table on ``epoch`` (``epoch_start_time``, ``epoch_stop_time``, ``epoch_tags``);
        provenance in ``attrs`` (plus ``t_start``/``t_stop``, the outer bin edges).
    """
    path = _check_path(path)
    _check_bin_size(bin_size)
    behaviour = resolve_spelling(behaviour, behavior)
    with _open_nwb(path, cache_dir, storage_options) as nwbfile:
        spikes = _read_spikes(nwbfile, path)
        keep = _select_units(spikes["ids"], units)
        series = [(*item, _timestamps(item[2])) for item in _behaviour_series(nwbfile)] if behaviour else []
        trials = _read_table(nwbfile.trials, "trial", prefix="")
        epochs = _read_table(nwbfile.epochs, "epoch", prefix="epoch_")
        t0, t1 = _time_range(spikes, series, trials, epochs, t_start, t_stop)
        edges = _bin_edges(t0, t1, float(bin_size))
        centres = edges[:-1] + float(bin_size) / 2
        counts = _bin_spikes(spikes["times"], spikes["ends"], edges, keep)
        unit_coords = {k: ("unit", v[keep]) for k, v in _unit_coords(nwbfile.units).items()}
        behaviour = [_resample(s, centres, edges) for s in series]
        attrs = _file_attrs(nwbfile, path)
    ds = xr.Dataset(
        {"spike_counts": (("time", "unit"), counts)},
        coords={"time": ("time", centres, {"units": "s"}), "unit": spikes["ids"][keep], **unit_coords},
    )
    ds["spike_counts"].attrs.update(units="spikes per bin", description="spike counts per time bin")
    _add_behaviour(ds, behaviour)
    for table in (trials, epochs):
        if table is not None:
            ds.update(table)
    ds.attrs.update(attrs, bin_size=float(bin_size), t_start=float(edges[0]), t_stop=float(edges[-1]),
                    kind="continuous")
    return ds


def resolve_spelling(behaviour: bool, behavior: bool | None) -> bool:
    """The value of the ``behaviour`` switch, accepting the former spelling ``behavior`` (warned)."""
    if behavior is None:
        return bool(behaviour)
    warnings.warn("behavior= is now spelled behaviour= (as everywhere in marble_widgets); the old "
                  "spelling will be removed.", FutureWarning, stacklevel=3)
    return bool(behavior)


def nwb_summary(
    path: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Describe an NWB file (units, behaviour series, trials, time range) without binning it.

    Inspect before you bin: choose ``bin_size``, ``t_start``/``t_stop`` and ``units`` for
    :func:`read_nwb` from metadata (plus the first/last spike of each unit) only. ``path`` may be
    an ``http(s)://`` URL (``cache_dir``, ``storage_options`` as in :func:`read_nwb`).
    """
    path = _check_path(path)
    with _open_nwb(path, cache_dir, storage_options) as nwbfile:
        out: dict[str, Any] = _file_attrs(nwbfile, path)
        unit_table = nwbfile.units
        out["n_units"] = 0 if unit_table is None else len(unit_table.id)
        out["unit_columns"] = [] if unit_table is None else list(unit_table.colnames)
        out["behavior"] = {_series_label(m, i, s): _series_summary(s) for m, i, s in _behaviour_series(nwbfile)}
        for key, table in (("trials", nwbfile.trials), ("epochs", nwbfile.epochs)):
            out[key] = None if table is None else {"n": len(table.id), "columns": list(table.colnames)}
        out["time_range"] = _summary_time_range(nwbfile, out["behavior"])
    return out


# ----------------------------------------------------------------------------- opening
def _check_path(path: Any) -> Path | str:
    """Return ``path`` as a Path to an existing HDF5 file (a URL as a str), or raise naming what is wrong."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike pointing to an .nwb file (or an http(s):// URL); "
                        f"got {type(path).__name__}.")
    if remote.is_url(path):
        return remote.check_url(path)
    path = Path(path)
    if not path.exists():
        raise MarbleDataError(f"path {str(path)!r} does not exist. Check the spelling or the working directory.")
    if not path.is_file():
        raise MarbleDataError(f"path {str(path)!r} is not a file (a folder? Zarr NWB is not supported); "
                              "pass an HDF5 .nwb file.")
    if not h5py.is_hdf5(path):
        raise MarbleDataError(f"path {str(path)!r} is not an HDF5 file, so it cannot be NWB 2; "
                              "pass an .nwb file (convert other formats with pynwb/NWB Conversion Tools).")
    return path


def _check_bin_size(bin_size: Any) -> None:
    """Raise unless ``bin_size`` is a finite positive number of seconds."""
    if isinstance(bin_size, bool) or not isinstance(bin_size, (int, float, np.integer, np.floating)):
        raise TypeError(f"bin_size must be a number of seconds (e.g. 0.02); got {type(bin_size).__name__}.")
    if not math.isfinite(bin_size) or bin_size <= 0:
        raise MarbleDataError(f"bin_size must be a finite positive number of seconds; got {bin_size}. "
                              "Pass e.g. bin_size=0.02 (20 ms).")


@contextmanager
def _open_nwb(path: Path | str, cache_dir: Any = None, storage_options: Any = None) -> Iterator[Any]:
    """Open ``path`` (or a URL) read-only with pynwb, close it on exit; unreadable files raise MarbleDataError."""
    from pynwb import NWBHDF5IO

    if isinstance(path, Path):
        with _read_nwbfile(path, lambda: NWBHDF5IO(str(path), "r"), lambda: h5py.File(path, "r")) as nwbfile:
            yield nwbfile
        return
    try:
        with remote.open_nwb_url(path, cache_dir=cache_dir, storage_options=storage_options) as (h5, io), \
                _read_nwbfile(path, lambda: io, lambda: nullcontext(h5)) as nwbfile:
            yield nwbfile
    except OSError as err:  # an HDF5 read failing over the network mid-way
        raise _unreadable(path, err) from err


@contextmanager
def _read_nwbfile(path: Path | str, make_io: Callable[[], Any], open_h5: Callable[[], Any]) -> Iterator[Any]:
    """``make_io().read()``, closing the io on exit and turning read errors into MarbleDataError."""
    from hdmf.build.errors import ConstructError

    try:
        io = make_io()
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise _unreadable(path, err) from err
    try:
        try:
            nwbfile = io.read()
        except ConstructError as err:
            raise _construct_error(path, err, open_h5) from err
        except (OSError, KeyError, TypeError, ValueError) as err:
            raise _unreadable(path, err) from err
        yield nwbfile
    finally:
        io.close()


def _unreadable(path: Path | str, err: Exception) -> MarbleDataError:
    msg = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
    return MarbleDataError(
        f"path {str(path)!r} is HDF5 but could not be read as NWB ({type(err).__name__}: {msg}). "
        "The file may be truncated (incomplete download) or not an NWB file: re-download or re-export it."
    )


def _construct_error(path: Path | str, err: Exception, open_h5: Callable[[], Any]) -> MarbleDataError:
    """Turn pynwb's ConstructError into a message naming the broken object (found with h5py)."""
    broken: list[str] = []
    with open_h5() as f:
        if "processing" in f:
            f["processing"].visititems(lambda name, obj: broken.append(name) if (
                isinstance(obj, h5py.Group) and "data" in obj and not {"timestamps", "starting_time"} & set(obj)
            ) else None)
    if broken:
        return MarbleDataError(
            f"behaviour series 'processing/{broken[0]}' in {str(path)!r} has neither timestamps nor "
            "starting_time/rate, so its samples cannot be placed in time. Fix the file (add timestamps "
            "or a rate) or re-export it; NWB requires one of the two."
        )
    msg = str(err).splitlines()[-1][:300]
    return MarbleDataError(f"path {str(path)!r} holds an NWB object pynwb cannot construct ({msg}). "
                           "Validate the file (pynwb-validate PATH) and fix or re-export it.")


# ----------------------------------------------------------------------------- units
def _read_spikes(nwbfile: Any, path: Path | str) -> dict[str, np.ndarray]:
    """Read unit ids, all spike times (flat) and each unit's end index; validate the times."""
    table = nwbfile.units
    if table is None or len(table.id) == 0:
        raise MarbleDataError(f"{str(path)!r} has no units table (or it is empty), so there are no spikes to "
                              "bin. Use a file with sorted units (nwbfile.units), e.g. after spike sorting.")
    if "spike_times" not in table.colnames:
        raise MarbleDataError(f"the units table of {str(path)!r} has no 'spike_times' column "
                              f"(columns: {list(table.colnames)}); add spike times per unit to the file.")
    index, ids = table["spike_times"], np.asarray(table.id.data[:])
    ends, times = np.asarray(index.data[:], dtype=np.int64), np.asarray(index.target.data[:], dtype=np.float64)
    _check_spike_times(times, ends, ids)
    return {"ids": ids, "times": times, "ends": ends}


def _check_spike_times(times: np.ndarray, ends: np.ndarray, ids: np.ndarray) -> None:
    """Raise if any spike time is NaN/inf or negative, naming the unit."""
    for bad, what in ((~np.isfinite(times), "non-finite (NaN or inf)"), (times < 0, "negative")):
        if bad.any():
            first = int(np.argmax(bad))
            unit = ids[int(np.searchsorted(ends, first, side="right"))]
            raise MarbleDataError(
                f"spike_times contain {int(bad.sum())} {what} value(s), the first in unit {unit}. Spike times "
                "must be finite seconds >= 0 from session_start_time: fix or drop those spikes in the file."
            )


def _select_units(ids: np.ndarray, units: Sequence[int] | None) -> np.ndarray:
    """Positions of the requested unit ids (all when ``units`` is None)."""
    if units is None:
        return np.arange(len(ids))
    wanted = np.atleast_1d(np.asarray(units))
    missing = np.setdiff1d(wanted, ids)
    if missing.size:
        raise MarbleDataError(f"units {missing.tolist()} not found among the file's {len(ids)} unit ids "
                              f"({ids.min()}..{ids.max()}); pass ids from the units table.")
    if wanted.size == 0 or np.unique(wanted).size != wanted.size:
        raise MarbleDataError(f"units must list distinct unit ids (at least one); got {wanted.tolist()}.")
    return np.array([int(np.flatnonzero(ids == u)[0]) for u in wanted])


def _unit_coords(table: Any) -> dict[str, np.ndarray]:
    """Per-unit scalar columns of the units table plus electrode id/location/group, as arrays."""
    from hdmf.common import DynamicTableRegion, VectorIndex

    coords: dict[str, np.ndarray] = {}
    for name in table.colnames:
        col = table[name]
        if name in _SKIPPED_UNIT_COLUMNS or isinstance(col, (VectorIndex, DynamicTableRegion)):
            continue
        values = _simple_values(col.data[:])
        if values is not None:
            coords[name] = values
    coords.update(_electrode_coords(table))
    return coords


def _electrode_coords(table: Any) -> dict[str, np.ndarray]:
    """``electrodes`` (id, or comma-joined ids), ``location`` and ``group`` of each unit's electrodes."""
    from hdmf.common import VectorIndex

    if "electrodes" not in table.colnames:
        return {}
    col = table["electrodes"]
    ends = np.asarray(col.data[:]) if isinstance(col, VectorIndex) else np.arange(1, len(table.id) + 1)
    region = col.target if isinstance(col, VectorIndex) else col
    rows, etable = np.asarray(region.data[:]), region.table
    starts = np.concatenate([[0], ends[:-1]])
    per_unit = [rows[a:b] for a, b in zip(starts, ends)]
    eid = np.asarray(etable.id.data[:])
    out: dict[str, np.ndarray] = {}
    if all(len(r) == 1 for r in per_unit):
        out["electrodes"] = eid[np.concatenate(per_unit)]
    else:
        out["electrodes"] = np.array([",".join(str(e) for e in eid[r]) for r in per_unit])
    for key, colname in (("location", "location"), ("group", "group_name")):
        if colname in etable.colnames:
            vals = _simple_values(etable[colname].data[:])
            if vals is not None:
                out[key] = np.array(["/".join(dict.fromkeys(str(v) for v in vals[r])) for r in per_unit])
    return out


def _simple_values(values: Any) -> np.ndarray | None:
    """1-D numbers/bools/strings as an array (bytes decoded); None for anything else."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        return None
    if arr.dtype.kind in "biuf":
        return arr
    if arr.dtype.kind in "SUO":
        items = [v.decode() if isinstance(v, bytes) else v for v in arr]
        if all(isinstance(v, str) for v in items):
            return np.array(items, dtype=str)
        if all(hasattr(v, "name") for v in items):  # object references, e.g. ElectrodeGroup
            return np.array([v.name for v in items], dtype=str)
    return None


# ----------------------------------------------------------------------------- binning
def _time_range(spikes: dict, series: list, trials: xr.Dataset | None, epochs: xr.Dataset | None,
                t_start: float | None, t_stop: float | None) -> tuple[float, float]:
    """The binned range: given bounds, else the extent of spikes, behaviour, trials and epochs."""
    lows, highs = [spikes["times"].min(initial=np.inf)], [spikes["times"].max(initial=-np.inf)]
    for *_, ts in series:
        if ts.size:
            lows.append(ts[0])
            highs.append(ts[-1])
    for table, pre in ((trials, ""), (epochs, "epoch_")):
        if table is not None and table.sizes[table[f"{pre}start_time"].dims[0]]:
            lows.append(float(table[f"{pre}start_time"].min()))
            highs.append(float(table[f"{pre}stop_time"].max()))
    t0 = float(min(lows)) if t_start is None else float(t_start)
    t1 = float(max(highs)) if t_stop is None else float(t_stop)
    if not (math.isfinite(t0) and math.isfinite(t1)) or t1 <= t0:
        raise MarbleDataError(f"the binned range t_start={t0} to t_stop={t1} s is empty or not finite; "
                              "pass t_start < t_stop (seconds on the file's clock).")
    return t0, t1


def _bin_edges(t0: float, t1: float, bin_size: float) -> np.ndarray:
    """Whole bins of ``bin_size`` from ``t0`` covering ``t1``; raise if one bin exceeds the range."""
    duration = t1 - t0
    if bin_size > duration:
        raise MarbleDataError(f"bin_size={bin_size} s is longer than the binned range ({duration:.6g} s, "
                              f"{t0:.6g} to {t1:.6g} s); pass a smaller bin_size or a wider t_start/t_stop.")
    n_bins = max(1, int(math.ceil(duration / bin_size - 1e-9)))
    return t0 + np.arange(n_bins + 1) * bin_size


def _bin_spikes(times: np.ndarray, ends: np.ndarray, edges: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Counts (time, unit) of all units at once: one searchsorted + one bincount (np.histogram edges)."""
    n_bins = len(edges) - 1
    per_unit = np.diff(np.concatenate([[0], ends]))
    column = np.full(len(ends), -1, dtype=np.int64)
    column[keep] = np.arange(len(keep))
    unit_col = np.repeat(column, per_unit)
    bins = np.searchsorted(edges, times, side="right") - 1
    bins[times == edges[-1]] = n_bins - 1  # np.histogram includes the last edge
    ok = (bins >= 0) & (bins < n_bins) & (unit_col >= 0)
    flat = bins[ok] * len(keep) + unit_col[ok]
    counts = np.bincount(flat, minlength=n_bins * len(keep))
    return counts.reshape(n_bins, len(keep)).astype(np.int32)


# ----------------------------------------------------------------------------- behaviour
def _behaviour_series(nwbfile: Any) -> Iterator[tuple[str, str, Any]]:
    """(module, interface, series) for every behavioural time series in the processing modules."""
    from pynwb.base import TimeSeries
    from pynwb.behavior import (BehavioralTimeSeries, CompassDirection, EyeTracking, Position,
                                PupilTracking, SpatialSeries)

    containers = (Position, CompassDirection, EyeTracking, BehavioralTimeSeries, PupilTracking)
    for mname, module in nwbfile.processing.items():
        for iname, obj in module.data_interfaces.items():
            if isinstance(obj, containers):
                children = getattr(obj, "spatial_series", None) or getattr(obj, "time_series", None) or {}
                yield from ((mname, iname, s) for s in children.values() if _is_numeric_series(s))
            elif (type(obj) is TimeSeries or isinstance(obj, SpatialSeries)) and _is_numeric_series(obj):
                yield mname, iname, obj


def _is_numeric_series(series: Any) -> bool:
    data = series.data if hasattr(series.data, "dtype") else np.asarray(series.data)
    return data.ndim in (1, 2) and data.dtype.kind in "biuf"


def _series_label(module: str, interface: str, series: Any) -> str:
    return f"{module}/{interface}" + ("" if interface == series.name else f"/{series.name}")


def _stored_timestamps(series: Any) -> Any:
    """The (lazy) timestamps dataset of a series, following a link to another series; None if absent."""
    ts = series.timestamps
    return ts.timestamps if hasattr(ts, "timestamps") else ts


def _timestamps(series: Any) -> np.ndarray:
    """The series' sample times (stored, or starting_time + k / rate)."""
    if series.timestamps is not None:
        return np.asarray(_stored_timestamps(series)[:], dtype=np.float64)
    # pynwb refuses to construct a series with neither (see _construct_error), so rate is set here
    return float(series.starting_time or 0.0) + np.arange(series.data.shape[0]) / float(series.rate)


def _resample(item: tuple[str, str, Any, np.ndarray], centres: np.ndarray, edges: np.ndarray) -> dict[str, Any]:
    """Read the slice of a series covering the bins and interpolate it onto the bin centres."""
    module, interface, series, ts = item
    if np.any(np.diff(ts) < 0):
        raise MarbleDataError(f"timestamps of behaviour series {_series_label(*item[:3])!r} are not sorted; "
                              "NWB requires ascending times. Fix the file or pass behaviour=False.")
    lo = max(int(np.searchsorted(ts, edges[0], side="left")) - 1, 0)
    hi = min(int(np.searchsorted(ts, edges[-1], side="right")) + 1, len(ts))
    raw = np.asarray(series.data[lo:hi]) if hi > lo else np.zeros((0,) + series.data.shape[1:])
    ts = ts[lo:hi]
    scale, offset = float(series.conversion or 1.0), float(getattr(series, "offset", 0.0) or 0.0)
    values = (raw.astype(np.float64) * scale + offset).reshape(len(ts), -1)
    unique = np.concatenate([[True], np.diff(ts) > 0]) if len(ts) else np.zeros(0, bool)
    ts, values = ts[unique], values[unique]
    linear = raw.dtype.kind == "f"
    out = np.full((len(centres), values.shape[1]), np.nan)
    for j in range(values.shape[1] if len(ts) else 0):
        out[:, j] = _interp(centres, ts, values[:, j], linear)
    return {"module": module, "interface": interface, "series": series, "values": out,
            "interpolation": "linear" if linear else "previous"}


def _interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray, linear: bool) -> np.ndarray:
    """Linear (floats) or previous-sample (ints/bools) interpolation; NaN outside [xp[0], xp[-1]]."""
    if linear:
        return np.interp(x, xp, fp, left=np.nan, right=np.nan)
    idx = np.searchsorted(xp, x, side="right") - 1
    out = fp[np.clip(idx, 0, len(fp) - 1)].astype(np.float64)
    out[(x < xp[0]) | (x > xp[-1])] = np.nan
    return out


def _add_behaviour(ds: xr.Dataset, behaviour: list[dict[str, Any]]) -> None:
    """Put resampled series on ``time`` named after their NWB objects (prefixed when names clash)."""
    names = [b["series"].name for b in behaviour]
    taken = set(ds.variables) | {"trial", "epoch", "axis"}
    shared_axis = len({tuple(_axis_labels(b)) for b in behaviour if b["values"].shape[1] > 1}) <= 1
    for b, base in zip(behaviour, names):
        name = base
        if names.count(base) > 1 or base in taken:
            name = f"{b['interface']}_{base}" if b["interface"] != base else f"{b['module']}_{base}"
        name = re.sub(r"\W", "_", name)
        s = b["series"]
        attrs = {"units": str(s.unit), "description": str(s.description or ""),
                 "nwb_path": _series_label(b["module"], b["interface"], s),
                 "interpolation": b["interpolation"]}
        if b["values"].shape[1] == 1:
            ds[name] = xr.Variable("time", b["values"][:, 0], attrs)
        else:
            axis = "axis" if shared_axis else f"{name}_axis"
            ds[name] = xr.DataArray(b["values"], dims=("time", axis), coords={axis: _axis_labels(b)}, attrs=attrs)


def _axis_labels(b: dict[str, Any]) -> list[Any]:
    from pynwb.behavior import SpatialSeries

    k = b["values"].shape[1]
    return _AXIS_LABELS[k] if isinstance(b["series"], SpatialSeries) and k in _AXIS_LABELS else list(range(k))


def _series_summary(series: Any) -> dict[str, Any]:
    """Shape, rate, unit and time span of a series from its first/last timestamps only."""
    shape = tuple(int(n) for n in series.data.shape)
    if series.timestamps is not None:
        ts = _stored_timestamps(series)
        first, last = (float(ts[0]), float(ts[len(ts) - 1])) if len(ts) else (math.nan, math.nan)
        rate = (len(ts) - 1) / (last - first) if len(ts) > 1 and last > first else math.nan
    else:
        rate = float(series.rate) if series.rate else math.nan
        first = float(series.starting_time or 0.0)
        last = first + (shape[0] - 1) / rate if shape[0] and rate == rate else first
    return {"shape": shape, "rate": rate, "unit": str(series.unit), "t_start": first, "t_stop": last,
            "type": type(series).__name__}


# ----------------------------------------------------------------------------- tables and attrs
def _read_table(table: Any, dim: str, prefix: str) -> xr.Dataset | None:
    """A TimeIntervals table (trials, epochs) as variables on ``dim``; tags joined by ','."""
    from hdmf.common import DynamicTableRegion, VectorIndex

    if table is None:
        return None
    data: dict[str, tuple[str, np.ndarray]] = {}
    for name in table.colnames:
        col = table[name]
        if isinstance(col, VectorIndex) and name == "tags":
            values = np.array([",".join(str(t) for t in row) for row in col[:]], dtype=str)
        elif isinstance(col, (VectorIndex, DynamicTableRegion)):
            continue
        else:
            values = _simple_values(col.data[:])
        if values is not None:
            data[f"{prefix}{name}"] = (dim, values)
    return xr.Dataset(data, coords={dim: np.asarray(table.id.data[:])})


def _summary_time_range(nwbfile: Any, behaviour: dict[str, dict[str, Any]]) -> tuple[float, float]:
    """Earliest/latest time from each unit's first/last spike, behaviour spans, trials and epochs."""
    lows, highs = [], []
    table = nwbfile.units
    if table is not None and "spike_times" in table.colnames and len(table.id):
        ends = np.asarray(table["spike_times"].data[:], dtype=np.int64)
        starts = np.concatenate([[0], ends[:-1]])
        idx = np.unique(np.concatenate([starts[ends > starts], ends[ends > starts] - 1]))
        if idx.size:
            firstlast = np.asarray(table["spike_times"].target.data[idx.tolist()])
            lows.append(firstlast.min())
            highs.append(firstlast.max())
    lows += [b["t_start"] for b in behaviour.values()]
    highs += [b["t_stop"] for b in behaviour.values()]
    for t in (nwbfile.trials, nwbfile.epochs):
        if t is not None and len(t.id):
            lows.append(float(np.min(t["start_time"].data[:])))
            highs.append(float(np.max(t["stop_time"].data[:])))
    return (float(np.nanmin(lows)), float(np.nanmax(highs))) if lows else (math.nan, math.nan)


def _file_attrs(nwbfile: Any, path: Path | str) -> dict[str, Any]:
    """Provenance as netCDF-safe strings ("" when absent)."""
    subject = nwbfile.subject
    return {
        "source": str(path),
        "identifier": str(nwbfile.identifier or ""),
        "session_id": str(nwbfile.session_id or ""),
        "session_description": str(nwbfile.session_description or ""),
        "session_start_time": nwbfile.session_start_time.isoformat() if nwbfile.session_start_time else "",
        "subject_id": str(getattr(subject, "subject_id", None) or ""),
        "species": str(getattr(subject, "species", None) or ""),
    }
