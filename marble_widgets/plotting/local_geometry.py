"""Views of MARBLE's local geometry for one sample, read from the ``MARBLE.results`` Dataset.

``neighbourhood`` shows the point, its graph neighbours, their vectors and the tangent frame in
state space; ``local_flow`` shows the neighbours' parallel-transported vectors in the point's
frame (what the derivative features are computed from); :mod:`.features` shows the features.
Each figure has a fixed set of traces whose data come from a ``*_data`` function, so a widget can
restyle the same traces when the sample changes.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import xarray as xr

from marble_widgets.plotting.common import check_sample, display_scale, require_vars, sample_context, segments, xyz
from marble_widgets.plotting.theme import HIGHLIGHT, MUTED, apply_theme, palette_color

INSPECT_HINT = "the Dataset returned by MARBLE.results(flow_field): neighbors, frame, transported, features"
AXIS_COLORS = ("#D55E00", "#009E73", "#0072B2", "#CC79A7")
#: At most this many tangent axes are drawn (a 10-D global gauge would otherwise draw 10).
MAX_AXES = 3


def inspect_arrays(inspect_ds: xr.Dataset, flow_field: xr.Dataset | None = None) -> dict[str, Any]:
    """Plain numpy views of the results (+ x, v from ``inspect_ds`` or ``flow_field``).

    Extracted once so that widgets only index arrays when the sample changes. ``feature_names`` are
    labels only; :func:`~marble_widgets.plotting.features.feature_layout` reads the feature coordinates.
    """
    require_vars(inspect_ds, ("neighbors", "frame", "transported", "features"), "inspect_ds", INSPECT_HINT)
    n = inspect_ds.sizes["sample"]
    out: dict[str, Any] = {k: inspect_ds[k].values for k in ("neighbors", "frame", "transported", "features")}
    out["feature_names"] = [str(f) for f in inspect_ds["feature"].values] if "feature" in inspect_ds.coords \
        else [f"f{i}" for i in range(out["features"].shape[1])]
    for key in ("x", "v"):
        src = inspect_ds if key in inspect_ds else flow_field
        if src is not None and key in src:
            if src.sizes["sample"] != n:
                raise ValueError(f"flow_field has {src.sizes['sample']} samples but inspect_ds has {n}; "
                                 "pass the flow field that was inspected.")
            out[key] = src[key].values
        else:
            out[key] = None
    out["n"] = n
    out["context"] = (flow_field, inspect_ds)
    return out


def _n_valid(arrays: dict[str, Any], i: int) -> int:
    return int(_valid_neighbors(arrays, i).size)


def neighbourhood_subtitle(arrays: dict[str, Any], sample: int, n_dims: int, max_axes: int = MAX_AXES) -> str:
    """Grey line under the neighbourhood title: when/where the point is and what is drawn."""
    i = check_sample(sample, arrays["n"])
    d, n_tan = arrays["x"].shape[1], arrays["frame"].shape[2]
    shown = min(max_axes, n_tan)
    axes = f"tangent axes 1–{shown} of {n_tan} shown" if shown < n_tan else f"{n_tan} tangent axes"
    space = f"first {n_dims} of {d} state dims" if n_dims < d else f"{d}-D state space"
    return f"{sample_context(arrays['context'], i)} · {_n_valid(arrays, i)} graph neighbours · {space} · {axes}"


def local_flow_subtitle(arrays: dict[str, Any], sample: int) -> str:
    """Grey line under the local-flow title: which point, and what the axes are."""
    i = check_sample(sample, arrays["n"])
    return (f"{sample_context(arrays['context'], i)} · {_n_valid(arrays, i)} neighbours' vectors parallel-"
            "transported into the point's frame (axes: tangent 1, 2)")


def _valid_neighbors(arrays: dict[str, Any], i: int) -> np.ndarray:
    nb = arrays["neighbors"][i]
    return nb[(nb >= 0) & (nb != i)].astype(np.int64)


def neighbourhood_data(arrays: dict[str, Any], sample: int, n_dims: int,
                       max_axes: int = MAX_AXES) -> list[dict[str, np.ndarray]]:
    """Trace data for :func:`neighbourhood`: edges, neighbours, their vectors, point, its vector, axes.

    Only the first ``max_axes`` tangent axes are returned (the subtitle says how many exist).
    """
    x, v = arrays["x"], arrays["v"]
    i = check_sample(sample, arrays["n"])
    nb = _valid_neighbors(arrays, i)
    xi = np.broadcast_to(x[i], (nb.size, x.shape[1]))
    length = float(np.median(np.linalg.norm(x[nb] - xi, axis=1))) if nb.size else 1.0
    length = length if length > 0 else 1.0
    scale = display_scale(np.linalg.norm(v[np.r_[nb, i]], axis=1), 0.6 * length) if v is not None else 1.0
    vec = (lambda idx: v[idx] * scale) if v is not None else (lambda idx: np.zeros((len(idx), x.shape[1])))
    data = [
        xyz(segments(xi, x[nb]), n_dims),
        xyz(x[nb], n_dims),
        xyz(segments(x[nb], x[nb] + vec(nb)), n_dims),
        xyz(x[[i]], n_dims),
        xyz(segments(x[[i]], x[[i]] + vec([i])), n_dims),
    ]
    frame = arrays["frame"][i]  # (dim, tangent)
    for k in range(min(frame.shape[1], max_axes)):
        data.append(xyz(segments(x[[i]], x[[i]] + length * frame[:, k][None, :]), n_dims))
    return data


def _trace_cls(n_dims: int) -> type:
    return go.Scatter3d if n_dims == 3 else go.Scatter


def neighbourhood(
    inspect_ds: xr.Dataset, sample: int, flow_field: xr.Dataset | None = None, *, dims: int | None = None,
    title: str | None = "Graph neighbourhood and tangent frame", max_axes: int = MAX_AXES,
) -> go.Figure:
    """The point ``sample``, its graph neighbours, their vectors and its tangent frame in state space.

    Shows what MARBLE sees locally. Positions/vectors come from ``inspect_ds`` (``x``, ``v``) when
    present, else from ``flow_field``. Traces: edges, neighbours, neighbour vectors, point, point
    vector, then one line per tangent axis (frame columns, drawn with the median edge length; at
    most ``max_axes``). The subtitle names the sample's time/trial and how many axes exist.
    """
    arrays = inspect_arrays(inspect_ds, flow_field)
    if arrays["x"] is None:
        raise ValueError("neighbourhood needs positions: pass flow_field= (the inspected flow field) "
                         "or an inspect_ds holding x (sample, dim).")
    n_dims = dims or min(3, arrays["x"].shape[1])
    cls = _trace_cls(n_dims)
    data = neighbourhood_data(arrays, sample, n_dims, max_axes)
    small = n_dims == 3
    styles = [
        dict(mode="lines", name="edges", line=dict(color="rgba(120,120,120,0.35)", width=1), hoverinfo="skip"),
        dict(mode="markers", name="neighbours", marker=dict(color=palette_color(0), size=4 if small else 7,
                                                             opacity=0.85)),
        dict(mode="lines", name="neighbour vectors", line=dict(color=palette_color(0), width=2)),
        dict(mode="markers", name="point", marker=dict(color=HIGHLIGHT, size=7 if small else 12, symbol="diamond")),
        dict(mode="lines", name="point vector", line=dict(color=HIGHLIGHT, width=4)),
    ]
    styles += [dict(mode="lines", name=f"tangent {k + 1}", line=dict(color=AXIS_COLORS[k % 4], width=5))
               for k in range(len(data) - 5)]
    fig = go.Figure([cls(**d, **s) for d, s in zip(data, styles)])
    names = _dim_names(arrays, n_dims)
    if n_dims == 3:
        fig.update_layout(scene=dict(aspectmode="auto", xaxis_title=names[0], yaxis_title=names[1],
                                     zaxis_title=names[2], camera=dict(eye=dict(x=1.5, y=1.5, z=1.0))),
                          margin=dict(l=16, r=0, b=0))
    else:
        fig.update_layout(xaxis_title=names[0], yaxis_title=names[1])
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
    fig.update_layout(legend=dict(x=0.0, y=0.0, xanchor="left", yanchor="bottom"))
    return apply_theme(fig, title, subtitle=neighbourhood_subtitle(arrays, sample, n_dims, max_axes))


def _dim_names(arrays: dict[str, Any], n_dims: int) -> list[str]:
    for ds in arrays["context"]:
        if ds is not None and "dim" in ds.coords:
            return [str(d) for d in ds["dim"].values[:n_dims]]
    return [f"x{k + 1}" for k in range(n_dims)]


def local_flow_data(arrays: dict[str, Any], sample: int) -> list[dict[str, np.ndarray]]:
    """Trace data for :func:`local_flow` in tangent coordinates (first two frame axes).

    Neighbours sit at their offsets projected on the frame (a display projection; at the origin
    when positions are unknown) and carry their transported vectors.
    """
    i = check_sample(sample, arrays["n"])
    nb_all = arrays["neighbors"][i]
    keep = (nb_all >= 0) & (nb_all != i)
    nb, frame = nb_all[keep].astype(np.int64), arrays["frame"][i]
    trans = np.nan_to_num(arrays["transported"][i][keep])
    pad = lambda a: np.pad(a, ((0, 0), (0, max(0, 2 - a.shape[1]))))[:, :2]  # noqa: E731
    x, v = arrays["x"], arrays["v"]
    base = (x[nb] - x[i]) @ frame if x is not None else np.zeros((nb.size, frame.shape[1]))
    own = (v[[i]] @ frame) if v is not None else np.zeros((1, frame.shape[1]))
    spread = np.linalg.norm(base, axis=1)
    scale = display_scale(np.linalg.norm(np.r_[trans, own], axis=1), 0.6 * float(np.median(spread))) \
        if spread.size and np.median(spread) > 0 else 1.0
    base, trans, own = pad(base), pad(trans) * scale, pad(own) * scale
    origin = np.zeros((1, 2))
    return [xyz(segments(base, base + trans), 2), xyz(base, 2), xyz(origin, 2), xyz(segments(origin, own), 2)]


def local_flow(
    inspect_ds: xr.Dataset, sample: int, flow_field: xr.Dataset | None = None,
    title: str | None = "Local flow field in the point's tangent frame",
) -> go.Figure:
    """Neighbours' parallel-transported vectors expressed in the tangent frame of ``sample`` (2-D).

    This is the local vector field MARBLE differentiates; traces: neighbour vectors, neighbours,
    point (origin), point vector (its own vector in its frame, if positions/vectors are known).
    """
    arrays = inspect_arrays(inspect_ds, flow_field)
    data = local_flow_data(arrays, sample)
    styles = [
        dict(mode="lines", name="transported vectors", line=dict(color=palette_color(0), width=2)),
        dict(mode="markers", name="neighbours", marker=dict(color=palette_color(0), size=7, opacity=0.85)),
        dict(mode="markers", name="point", marker=dict(color=HIGHLIGHT, size=12, symbol="diamond")),
        dict(mode="lines", name="point vector", line=dict(color=HIGHLIGHT, width=4)),
    ]
    fig = go.Figure([go.Scatter(**d, **s) for d, s in zip(data, styles)])
    fig.update_xaxes(title_text="tangent 1", zeroline=True, zerolinecolor=MUTED)
    fig.update_yaxes(title_text="tangent 2", zeroline=True, zerolinecolor=MUTED, scaleanchor="x", scaleratio=1)
    fig.update_layout(legend=dict(orientation="h", x=0.0, y=-0.12, xanchor="left", yanchor="top"))
    return apply_theme(fig, title, subtitle=local_flow_subtitle(arrays, sample))
