"""State-space trajectories of a flow field, with its vectors drawn as arrows (2-D lines / 3-D cones)."""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import xarray as xr

from marble_widgets.plotting.common import (
    encode_categories, gapped, is_categorical, marker_color, pick_dims, require_vars, sample_values,
    segments, trajectory_order, xyz, display_scale,
)
from marble_widgets.plotting.theme import apply_theme, palette_color

FLOW_HINT = "a flow-field Dataset with x, v (sample, dim) and sample coords condition/trial/time"


def arrow_indices(n: int, max_arrows: int) -> np.ndarray:
    """Evenly spaced sample indices (at most ``max_arrows``) at which arrows are drawn; deterministic."""
    if max_arrows <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, min(n, max_arrows)).round().astype(np.int64))


def auto_arrow_scale(x: np.ndarray, v: np.ndarray, fraction: float = 0.04) -> float:
    """Display factor making the median arrow ``fraction`` of the largest plotted data range."""
    extent = float(np.nanmax(np.ptp(x, axis=0))) if x.size else 0.0
    return display_scale(np.linalg.norm(v, axis=1), fraction * extent)


def _scatter_cls(n_dims: int, webgl: bool) -> type:
    return go.Scatter3d if n_dims == 3 else (go.Scattergl if webgl else go.Scatter)


def _line_traces(ff: xr.Dataset, pts: np.ndarray, color_by: str | None, n_dims: int, webgl: bool) -> list[Any]:
    cond, trial, time = (ff[c].values for c in ("condition", "trial", "time"))
    order, starts = trajectory_order(cond, trial, time)
    cls = _scatter_cls(n_dims, webgl)
    values = None if color_by is None else sample_values(ff, color_by)
    if values is None or is_categorical(values):
        labels, codes = encode_categories(values if values is not None else np.zeros(len(order), int))
        traces = []
        for k, label in enumerate(labels):
            sel = order[codes[order] == k]
            o, st = trajectory_order(cond[sel], trial[sel], time[sel])
            traces.append(cls(**xyz(gapped(pts[sel[o]], st), n_dims), mode="lines", name=str(label),
                              line=dict(color=palette_color(k), width=2 if n_dims == 3 else 1.5),
                              opacity=0.85, hoverinfo="name", showlegend=len(labels) > 1))
        return traces
    line = cls(**xyz(gapped(pts[order], starts), n_dims), mode="lines", name="trajectory",
               line=dict(color="rgba(90, 90, 90, 0.25)", width=1), hoverinfo="skip", showlegend=False)
    dots = cls(**xyz(pts, n_dims), mode="markers", name=color_by, showlegend=False,
               marker=dict(size=2.5 if n_dims == 3 else 4, opacity=0.9, **marker_color(values, color_by)))
    return [line, dots]


def _arrow_trace(pts: np.ndarray, vec: np.ndarray, n_dims: int, webgl: bool) -> Any:
    if n_dims == 3:
        return go.Cone(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], u=vec[:, 0], v=vec[:, 1], w=vec[:, 2],
                       anchor="tail", sizemode="absolute", sizeref=1.0, showscale=False, name="flow",
                       colorscale=[[0, "#555555"], [1, "#555555"]], opacity=0.6, hoverinfo="skip")
    cls = go.Scattergl if webgl else go.Scatter
    return cls(**xyz(segments(pts, pts + vec), 2), mode="lines", name="flow", hoverinfo="skip",
               line=dict(color="rgba(40, 40, 40, 0.55)", width=1))


def trajectories(
    flow_field: xr.Dataset,
    color_by: str | None = "condition",
    arrows: bool = True,
    max_arrows: int = 400,
    *,
    dims: int | None = None,
    arrow_scale: float | str = "auto",
    webgl: bool = True,
    title: str | None = "State space",
) -> go.Figure:
    """Trajectories of ``flow_field`` in its first 2 or 3 dims, optionally with the vectors as arrows.

    The first look at MARBLE's input: does the flow field trace sensible dynamics per condition?
    Categorical ``color_by`` (e.g. condition) gives one line trace per category; a continuous key
    (time, a behaviour variable, ``"name[i]"`` for a column) gives grey lines plus coloured markers.
    Arrows (``x -> x + s v``, at most ``max_arrows``, evenly spaced) form one trace named "flow".
    """
    require_vars(flow_field, ("x", "v"), "flow_field", FLOW_HINT)
    x, v = flow_field["x"].values, flow_field["v"].values
    n_dims = pick_dims(x.shape[1], dims)
    pts = x[:, :n_dims]
    fig = go.Figure(_line_traces(flow_field, pts, color_by, n_dims, webgl))
    if arrows:
        idx = arrow_indices(x.shape[0], max_arrows)
        scale = auto_arrow_scale(pts, v[:, :n_dims]) if arrow_scale == "auto" else float(arrow_scale)
        fig.add_trace(_arrow_trace(pts[idx], scale * v[idx, :n_dims], n_dims, webgl))
    names = [str(d) for d in flow_field["dim"].values[:n_dims]] if "dim" in flow_field.coords else ["x1", "x2", "x3"]
    if n_dims == 3:
        fig.update_layout(scene=dict(xaxis_title=names[0], yaxis_title=names[1], zaxis_title=names[2],
                                     aspectmode="auto", camera=dict(eye=dict(x=1.6, y=1.6, z=0.95))),
                          margin=dict(l=16, r=0, b=0))
    else:
        fig.update_layout(xaxis_title=names[0], yaxis_title=names[1])
    return apply_theme(fig, title, subtitle=state_subtitle(flow_field, n_dims, color_by, arrows))


def state_subtitle(flow_field: xr.Dataset, n_dims: int, color_by: str | None, arrows: bool) -> str:
    """Grey line under the state-space title: what is drawn and in which dims."""
    d = flow_field.sizes["dim"] if "dim" in flow_field.dims else flow_field["x"].shape[1]
    n_traj = int(trajectory_order(*(flow_field[c].values for c in ("condition", "trial", "time")))[1].sum())
    n_cond = int(np.unique(flow_field["condition"].values).size)
    parts = [f"{n_traj} trajector{'y' if n_traj == 1 else 'ies'}",
             f"{n_cond} condition{'' if n_cond == 1 else 's'}",
             f"first {n_dims} of {d} dims" if n_dims < d else f"{d}-D"]
    if color_by is not None and not (color_by == "condition" and n_cond == 1):
        parts.append(f"colour: {color_by}")
    if arrows:
        parts.append("arrows: flow vectors (rescaled)")
    return " · ".join(parts)
