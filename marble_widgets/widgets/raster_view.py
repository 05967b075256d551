"""RasterView: the recording's spikes (units x time) drawn in the browser, following the flow view.

Why: seeing the spikes behind the current sample is what ties an embedding back to the data. The
recording's binned spike counts are sent once as binary buffers (only the non-zero bins: bin index,
unit row, count) and ``static/raster_view.js`` draws a time window around the current time on a
canvas. In a dashboard every view shares a channel (``mwChannel`` in ``static/mw_common.js``): the
raster follows the flow view's "sample" in the page, and a click on it publishes the nearest sample
so the flow view jumps there, without the kernel.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets
import xarray as xr

from marble_widgets.widgets.page import (THEME, STATIC, esm_source, exported_buffers, pack_all, page_view, unpack,
                                         write_page)

REC_HINT = "a recording Dataset from read_nwb/datasets: spike_counts (time, unit) or (trial, time, unit)"
DTYPES = {"bin_time": "float64", "segment_offsets": "int32", "event_bin": "int32", "event_unit": "int32",
          "event_count": "float32", "sample_time": "float64", "sample_bin": "int32", "by_time": "int32",
          "by_time_offsets": "int32"}


def _counts(recording: xr.Dataset) -> xr.DataArray:
    """``spike_counts`` as (trial, time, unit), a continuous recording being one trial; validated."""
    if not isinstance(recording, xr.Dataset) or "spike_counts" not in recording:
        raise ValueError(f"recording must be {REC_HINT}; got "
                         f"{type(recording).__name__ if not isinstance(recording, xr.Dataset) else 'a Dataset'}"
                         f" without spike_counts.")
    da = recording["spike_counts"]
    if set(da.dims) not in ({"time", "unit"}, {"trial", "time", "unit"}):
        raise ValueError(f"recording['spike_counts'] has dims {da.dims}; it must be {REC_HINT}.")
    if da.sizes["unit"] == 0 or da.sizes["time"] == 0:
        raise ValueError(f"recording['spike_counts'] has {da.sizes['unit']} units and {da.sizes['time']} time "
                         "bins: there is nothing to draw; pass a recording with units and bins.")
    return da.transpose("trial", "time", "unit") if "trial" in da.dims else da.transpose("time", "unit").expand_dims("trial")


def bin_size_of(recording: xr.Dataset) -> float:
    """The recording's bin width in seconds: ``attrs["bin_size"]``, else the median step of ``time``."""
    if "bin_size" in recording.attrs:
        return float(recording.attrs["bin_size"])
    t = np.asarray(recording["time"].values, dtype=np.float64)
    if t.size < 2:
        raise ValueError("recording has one time bin and no attrs['bin_size']; set recording.attrs['bin_size'] (s).")
    return float(np.median(np.diff(t)))


def spike_events(recording: xr.Dataset, unit_order: Sequence[Any] | None = None) -> dict[str, Any]:
    """The non-zero bins of ``spike_counts`` sorted by (trial, time): bin index, unit row, count.

    Bins are numbered trial after trial (``segment_offsets`` delimit each trial's bins; a continuous
    recording is one segment). Row ``r`` shows unit ``units[r]`` (``unit_order``: unit ids, default
    the recording's order). Raises when the recording holds no spikes.
    """
    da = _counts(recording)
    ids = list(da["unit"].values) if "unit" in da.coords else list(range(da.sizes["unit"]))
    if unit_order is None:
        rows = np.arange(len(ids))
    else:
        wanted = list(unit_order)
        unknown = [u for u in wanted if u not in ids]
        if unknown or len(set(map(str, wanted))) != len(wanted) or not wanted:
            raise ValueError(f"unit_order must list distinct unit ids of the recording; {unknown or wanted} "
                             f"is not valid (its units: {ids[:8]}{'...' if len(ids) > 8 else ''}).")
        rows = np.array([ids.index(u) for u in wanted])
    counts = np.asarray(da.values)  # native dtype: no dense float64 copy of a long recording
    if not np.array_equal(rows, np.arange(counts.shape[2])):
        counts = counts[:, :, rows]
    n_trial, n_time, _ = counts.shape
    flat = counts.reshape(n_trial * n_time, rows.size)
    present = (flat != 0) & np.isfinite(flat) if np.issubdtype(flat.dtype, np.floating) else flat != 0
    event_bin, event_unit = np.nonzero(present)  # row-major: sorted by bin, i.e. by (trial, time)
    values = flat[event_bin, event_unit].astype(np.float64)
    if (values < 0).any():
        raise ValueError("recording['spike_counts'] holds negative counts; pass spike counts (>= 0) per bin.")
    if event_bin.size == 0:
        raise ValueError("recording['spike_counts'] holds no spikes (every count is 0 or NaN); nothing to draw.")
    t = np.asarray(da["time"].values, dtype=np.float64)
    return {"bin_time": np.tile(t, n_trial), "segment_offsets": np.arange(n_trial + 1) * n_time,
            "event_bin": event_bin, "event_unit": event_unit, "event_count": values,
            "units": [_label(ids[r]) for r in rows]}


def _label(value: Any) -> Any:
    """A unit id as JSON (int or str)."""
    return int(value) if isinstance(value, (int, np.integer)) else str(value)


def _sample_coord(results: Any, name: str) -> np.ndarray | None:
    """A per-sample coord or variable of a results Dataset / flow field / embedding, or None."""
    if name in getattr(results, "coords", {}) or (isinstance(results, xr.Dataset) and name in results):
        values = results[name]
        if values.dims == ("sample",):
            return np.asarray(values.values)
    return None


def sample_bins(results: Any, recording: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each sample's time, recording bin (numbered as in :func:`spike_events`) and segment.

    Continuous recordings: a flow field built from them (``mw.flow_field``, ``FlowFieldBuilder``)
    keeps the recording's clock, so a sample's ``time`` coord is the centre of the bin it came from;
    its ``trial`` is a segment index, not needed. Trial-aligned recordings: the sample's ``trial``
    coord names the recording's trial and ``time`` is relative to the alignment event. Raises when a
    sample's time is more than half a bin outside its trial's bins.
    """
    if not isinstance(results, (xr.Dataset, xr.DataArray)) or "sample" not in results.dims:
        raise TypeError(f"results must be MARBLE.results(flow_field), a flow field or an embedding (with a "
                        f"sample dim); got {type(results).__name__}.")
    times = _sample_coord(results, "time")
    if times is None or not np.issubdtype(times.dtype, np.number):
        raise ValueError("results have no numeric time coord on sample; pass a flow field built from this "
                         "recording (mw.flow_field) or its MARBLE.results.")
    times = times.astype(np.float64)
    da = _counts(recording)
    n_trial, n_time = da.sizes["trial"], da.sizes["time"]
    if "trial" in recording["spike_counts"].dims:
        trials = _sample_coord(results, "trial")
        if trials is None:
            raise ValueError("the recording is trial-aligned but the results have no trial coord on sample; "
                             "pass a flow field built from this recording.")
        ids = list(recording["trial"].values) if "trial" in recording.coords else list(range(n_trial))
        where = {k: i for i, k in enumerate(ids)}
        missing = sorted({t for t in trials.tolist() if t not in where})
        if missing:
            raise ValueError(f"results name trials {missing[:5]} that the recording lacks (its trials: {ids[:5]}...); "
                             "pass the recording the flow field was built from.")
        segment = np.array([where[t] for t in trials.tolist()], dtype=np.int64)
    else:
        segment = np.zeros(times.size, dtype=np.int64)
    t = np.asarray(da["time"].values, dtype=np.float64)
    half = 0.5 * bin_size_of(recording)
    lo, hi = t[0] - half, t[-1] + half
    outside = (times < lo - 1e-9) | (times > hi + 1e-9) | ~np.isfinite(times)
    if outside.any():
        bad = np.flatnonzero(outside)
        raise ValueError(f"{bad.size} results samples have times outside the recording ({lo:.4g}..{hi:.4g} s), "
                         f"e.g. sample {int(bad[0])} at {times[bad[0]]:.4g} s; pass the recording the flow field "
                         "was built from (and the same time clock).")
    row = np.clip(np.searchsorted(0.5 * (t[1:] + t[:-1]), times), 0, n_time - 1)
    return times, segment * n_time + row, segment


class RasterView(anywidget.AnyWidget):
    """Spike counts of a recording, units x time, in a window around the current time; drawn in the page.

    ``recording``: ``spike_counts`` (time, unit) or (trial, time, unit) (``read_nwb``,
    ``mw.datasets``); its non-zero bins travel once as binary buffers. ``results`` (optional): a
    ``MARBLE.results`` Dataset, flow field or embedding of that recording; each sample maps to the
    recording bin it came from (:func:`sample_bins`: for the rat's continuous recording a sample's
    ``time`` is the bin centre on the recording's clock; trial-aligned data use ``trial`` too), the
    cursor sits at the current sample's time and its bin is highlighted; a click jumps to the
    nearest sample. ``unit_order``: unit ids, top row first. ``window``: half-width in seconds.

    Synced: ``sample`` (int, two-way, browser -> Python throttled by ``sync_ms``), ``time`` (the
    cursor's time, read-only: follows ``sample``, or a click without results), ``window``,
    ``channel`` (the page channel a dashboard's views share: follows and publishes topic "sample").
    CSS: root ``mw-raster-view``.
    """

    _esm = esm_source("raster_view.js")
    _css = STATIC / "views.css"

    sample = traitlets.Int(0).tag(sync=True)
    time = traitlets.Float(0.0, read_only=True).tag(sync=True)
    window = traitlets.Float(5.0).tag(sync=True)
    channel = traitlets.Unicode("").tag(sync=True)
    sync_ms = traitlets.Int(150).tag(sync=True)
    _arrays = traitlets.Dict().tag(sync=True)
    _meta = traitlets.Dict().tag(sync=True)

    def __init__(self, recording: xr.Dataset, results: Any = None, *, window: float = 5.0, channel: str = "",
                 unit_order: Sequence[Any] | None = None, sample: int = 0, title: str = "Spike raster") -> None:
        events = spike_events(recording, unit_order)
        units = events.pop("units")
        arrays = dict(events)
        self.n_samples = 0
        if results is not None:
            times, bins, segment = sample_bins(results, recording)
            by_time = np.lexsort((times, segment))
            arrays.update(sample_time=times, sample_bin=bins, by_time=by_time,
                          by_time_offsets=np.searchsorted(segment[by_time], np.arange(events["segment_offsets"].size)))
            self.n_samples = times.size
        self._values = arrays
        meta = {"title": str(title), "theme": THEME, "units": units, "bin_size": bin_size_of(recording),
                "n_samples": self.n_samples, "trial_aligned": "trial" in recording["spike_counts"].dims}
        super().__init__(_arrays=pack_all(arrays, DTYPES), _meta=meta, window=window, channel=channel)
        self.add_class("mw-raster-view")
        if self.n_samples:
            self.sample = int(sample)
            self._follow_sample({"new": self.sample})
        else:
            self.set_trait("time", float(min(arrays["bin_time"][0] + self.window, arrays["bin_time"][-1])))

    @traitlets.validate("window")
    def _valid_window(self, proposal: dict) -> float:
        value = float(proposal["value"])
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"window must be a positive half-width in seconds; got {proposal['value']!r}.")
        return value

    @traitlets.validate("sample")
    def _valid_sample(self, proposal: dict) -> int:
        value = int(proposal["value"])
        if not self.n_samples and value != 0:
            raise ValueError("sample needs results: build RasterView(recording, results) to follow samples.")
        if self.n_samples and not 0 <= value < self.n_samples:
            raise ValueError(f"sample={value} is outside the results' sample dim [0, {self.n_samples}).")
        return value

    @traitlets.observe("sample")
    def _follow_sample(self, change: dict) -> None:
        if self.n_samples:
            self.set_trait("time", float(self._values["sample_time"][change["new"]]))

    def sample_time(self, sample: int) -> float:
        """The recording time (s) of results sample ``sample`` (a position on the sample dim)."""
        if not self.n_samples:
            raise ValueError("this RasterView has no results; pass results= to map samples to time.")
        return float(self._values["sample_time"][int(sample)])

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays the page draws from, decoded from the synced buffers."""
        return {name: unpack(entry) for name, entry in self._arrays.items()}

    def export_state(self) -> dict[str, Any]:
        """The page's state as JSON-safe values (buffers compressed, base64)."""
        return {"sample": self.sample, "time": self.time, "window": self.window, "channel": self.channel,
                "sync_ms": self.sync_ms, "_meta": self._meta, "_arrays": exported_buffers(self._values, DTYPES)}

    def to_html(self, path: str | Path, title: str | None = None) -> Path:
        """Write one self-contained HTML file in which the raster is drawn and clickable offline."""
        return write_page(path, title or self._meta["title"], [page_view("raster", self)])
