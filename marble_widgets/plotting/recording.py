"""Figures of the raw recording: spike-count raster and behaviour over time."""
from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import plotly.graph_objects as go
import xarray as xr

from marble_widgets.plotting.common import gapped, require_vars, trajectory_order
from marble_widgets.plotting.theme import apply_theme, palette_color

REC_HINT = "a recording Dataset from read_nwb/datasets (spike_counts (time, unit) or (trial, time, unit))"
RASTER_COLORS = [[0.0, "#ffffff"], [0.15, "#bdbdbd"], [1.0, "#111111"]]


def _pick_trial(da: xr.DataArray, trial: Hashable | None) -> xr.DataArray:
    if "trial" not in da.dims:
        return da
    ids = list(da["trial"].values) if "trial" in da.coords else list(range(da.sizes["trial"]))
    chosen = ids[0] if trial is None else trial
    if chosen not in ids:
        raise ValueError(f"trial={trial!r} is not in the recording; choose one of its trial ids, e.g. {ids[:5]}.")
    return da.isel(trial=ids.index(chosen))


def _time_slice(da: xr.DataArray, time_range: tuple[float, float] | None) -> xr.DataArray:
    if time_range is None:
        return da
    lo, hi = time_range
    if not lo < hi:
        raise ValueError(f"time_range must be (start, stop) with start < stop; got {time_range!r}.")
    return da.isel(time=np.flatnonzero((da["time"].values >= lo) & (da["time"].values <= hi)))


def raster(
    recording: xr.Dataset, time_range: tuple[float, float] | None = None, *, trial: Hashable | None = None,
    max_bins: int = 4000, title: str | None = "Spike counts",
) -> go.Figure:
    """Spike counts (time, unit) as a heatmap: units on y (by index), time on x.

    ``time_range`` (seconds) crops; trial-aligned recordings show one ``trial`` (default the
    first). More than ``max_bins`` time bins are summed in blocks so the browser stays fast.
    """
    require_vars(recording, ("spike_counts",), "recording", REC_HINT)
    da = _time_slice(_pick_trial(recording["spike_counts"], trial), time_range).transpose("time", "unit")
    counts, t = da.values.astype(np.float64), da["time"].values.astype(np.float64)
    if counts.shape[0] == 0:
        raise ValueError(f"time_range={time_range!r} selects no bins; the recording spans "
                         f"{float(recording['time'].min())}..{float(recording['time'].max())} s.")
    block = int(np.ceil(counts.shape[0] / max_bins))
    if block > 1:
        m = counts.shape[0] // block * block
        counts = counts[:m].reshape(-1, block, counts.shape[1]).sum(axis=1)
        t = t[:m].reshape(-1, block).mean(axis=1)
    units = da["unit"].values if "unit" in da.coords else np.arange(counts.shape[1])
    custom = np.broadcast_to(units[:, None], counts.T.shape)
    fig = go.Figure(go.Heatmap(x=t, y=np.arange(counts.shape[1]), z=counts.T, colorscale=RASTER_COLORS,
                               name="spikes", customdata=custom, colorbar=dict(title=dict(text="count"), thickness=12),
                               hovertemplate="t %{x:.3f} s<br>unit %{customdata}<br>%{z} spikes<extra></extra>"))
    fig.update_layout(xaxis_title="time (s)", yaxis_title="unit (index)")
    fig.update_xaxes(showgrid=False)
    fig.update_yaxes(showgrid=False)
    return apply_theme(fig, title)


def behaviour_series(data: xr.Dataset, variable: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Gapped time axis (m,), values (m, k) and axis labels of ``variable`` for line plots.

    Works for recordings (time[, axis]), trial-aligned ones (trial, time[, axis]) and flow fields
    (sample[, axis], with time/trial/condition coords): trajectories are separated by NaN gaps.
    """
    if not isinstance(data, xr.Dataset) or variable not in data:
        raise ValueError(f"variable={variable!r} is not in the Dataset; choose one of "
                         f"{sorted(map(str, getattr(data, 'data_vars', [])))}.")
    da = data[variable]
    if "sample" in da.dims:
        order, starts = trajectory_order(*(da[c].values if c in da.coords else data[c].values
                                           for c in ("condition", "trial", "time")))
        t = data["time"].values.astype(np.float64)[order]
        vals = da.values.reshape(da.sizes["sample"], -1)[order]
    elif "time" in da.dims:
        lead = ("trial", "time") if "trial" in da.dims else ("time",)
        da = da.transpose(*lead, ...)
        n_t = da.sizes["time"]
        vals = da.values.reshape(-1, n_t, int(np.prod(da.shape[len(lead):], dtype=int)))
        t = np.tile(da["time"].values.astype(np.float64), vals.shape[0])
        starts = np.zeros(t.size, dtype=bool)
        starts[::n_t] = True
        vals = vals.reshape(t.size, -1)
    else:
        raise ValueError(f"variable={variable!r} has dims {da.dims}; it needs a time or sample dim to plot over time.")
    has_axis = da.ndim > (1 + ("trial" in da.dims)) and da.dims[-1] in da.coords
    axes = [str(a) for a in da[da.dims[-1]].values] if has_axis else [str(i) for i in range(vals.shape[1])]
    return gapped(t, starts)[:, 0], gapped(vals.astype(np.float64), starts), axes


def behaviour(
    recording: xr.Dataset, variable: str, time_range: tuple[float, float] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Behaviour ``variable`` over time, one line per axis (e.g. x/y of hand velocity).

    Accepts a recording or a flow field carrying the variable per sample; trials/trajectories
    are drawn as separate line pieces. ``time_range`` limits the x axis.
    """
    t, vals, axes = behaviour_series(recording, variable)
    names = [variable] if vals.shape[1] == 1 else [f"{variable}[{a}]" for a in axes]
    fig = go.Figure([go.Scattergl(x=t, y=vals[:, k], mode="lines", name=names[k],
                                  line=dict(color=palette_color(k), width=1.5)) for k in range(vals.shape[1])])
    fig.update_layout(xaxis_title="time (s)", yaxis_title=variable)
    if time_range is not None:
        fig.update_xaxes(range=list(time_range))
    return apply_theme(fig, title if title is not None else variable)
