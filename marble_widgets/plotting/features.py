"""The derivative features of one sample (the MLP's input), grouped by derivative order.

A bar chart of every feature (positions, order 0, order 1, ...) with one labelled band per
group instead of 100+ tick labels, and below it each derivative block as a heatmap: order 1 is
the Jacobian-like table ``d_j v_i`` (component i x direction j), order 2 the table of
``d_k d_j v_i`` (component i x direction pair). Groups and cells come from the coordinates of
``MARBLE.results``' ``feature`` dim (``order``, ``component``, ``direction``; names such as
"d2 d1 v1" are only labels); nothing is computed here but reshaping.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
import xarray as xr

from marble_widgets.data.containers import FEATURE_COORDS as RESULT_FEATURE_COORDS
from marble_widgets.plotting.common import check_sample, json_safe_grid, sample_context
from marble_widgets.plotting.local_geometry import inspect_arrays
from marble_widgets.plotting.theme import DIVERGING, SUBTLE, apply_theme, palette_color

#: Tick labels are written out only up to this many features; beyond, groups are labelled.
MAX_TICKS = 30
POSITION_COLOR = "#9aa1ab"
ORDER_LABELS = ("v", "∂v", "∂²v", "∂³v")
#: coordinates of the ``feature`` dim that describe each feature (docs/design.md, results Dataset)
FEATURE_COORDS = ("feature", *RESULT_FEATURE_COORDS)


@dataclass
class FeatureLayout:
    """Where each feature group sits: bar groups, and (row, column) cells of each order block."""

    names: list[str]
    orders: list[int] = field(default_factory=list)                   # per feature; -1 = position
    groups: list[tuple[str, int, int]] = field(default_factory=list)  # (label, first, stop)
    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)   # order -> rows, cols, index


def feature_coords(results: xr.Dataset | xr.DataArray) -> dict[str, np.ndarray]:
    """The ``feature`` dim's coordinates as arrays, keyed feature, order, component, direction.

    Accepts the results Dataset, its ``features`` variable or its ``feature`` coordinate.
    """
    if isinstance(results, xr.Dataset) and "features" in results:
        results = results["features"]
    if not isinstance(results, (xr.Dataset, xr.DataArray)):
        raise TypeError(f"features must be MARBLE.results(flow_field) or its 'features'; got {type(results).__name__}.")
    missing = [c for c in FEATURE_COORDS if c not in results.coords or results.coords[c].dims != ("feature",)]
    if missing:
        raise ValueError(
            f"the features lack the coordinate(s) {missing} on the 'feature' dim; pass MARBLE.results(flow_field), "
            f"whose features carry {list(FEATURE_COORDS)}."
        )
    return {c.removeprefix("feature_"): np.asarray(results.coords[c].values) for c in FEATURE_COORDS}


def _groups(kinds: list[str]) -> list[tuple[str, int, int]]:
    """Contiguous runs of equal kinds as (kind, first, stop)."""
    out, start = [], 0
    for j in range(1, len(kinds) + 1):
        if j == len(kinds) or kinds[j] != kinds[start]:
            out.append((kinds[start], start, j))
            start = j
    return out


def feature_layout(results: xr.Dataset | xr.DataArray) -> FeatureLayout:
    """Group the features by order (contiguous runs) and index the derivative blocks by their coordinates.

    A block of order p >= 1 has one row per signal ``component`` (labelled "v1", "v2", ...) and one
    column per ``direction`` (e.g. "d2 d1"), both in order of first appearance.
    """
    coords = feature_coords(results)
    orders = [int(o) for o in coords["order"]]
    out = FeatureLayout([str(n) for n in coords["feature"]], orders)
    out.groups = _groups(["pos" if o < 0 else ORDER_LABELS[min(o, 3)] for o in orders])
    for j, (order, comp, dirs) in enumerate(zip(orders, coords["component"], coords["direction"])):
        if order < 1:
            continue
        row, col = f"v{int(comp) + 1}", str(dirs)
        block = out.blocks.setdefault(order, {"rows": [], "cols": [], "cells": []})
        for key, val in (("rows", row), ("cols", col)):
            if val not in block[key]:
                block[key].append(val)
        block["cells"].append((block["rows"].index(row), block["cols"].index(col), j))
    return out


def block_grid(layout: FeatureLayout, order: int, values: np.ndarray) -> np.ndarray:
    """(components, directions) table of the order-``order`` features in ``values`` (NaN if absent)."""
    block = layout.blocks[order]
    grid = np.full((len(block["rows"]), len(block["cols"])), np.nan)
    for r, c, j in block["cells"]:
        grid[r, c] = values[j]
    return grid


def derivative_features_data(arrays: dict[str, Any], layout: FeatureLayout, sample: int) -> list[dict[str, Any]]:
    """Trace data for :func:`derivative_features`: the bar's y, then one heatmap z per block."""
    i = check_sample(sample, arrays["n"])
    values = np.asarray(arrays["features"][i], dtype=np.float64)
    grids = [block_grid(layout, order, values) for order in sorted(layout.blocks)[:2]]
    finite = np.abs(np.concatenate([g[np.isfinite(g)] for g in grids])) if grids else np.zeros(0)
    vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0  # shared, symmetric about 0
    data: list[dict[str, Any]] = [dict(y=values)]
    data += [dict(z=json_safe_grid(g), zmin=-vmax, zmax=vmax) for g in grids]
    return data


def _bar_axis(fig: go.Figure, layout: FeatureLayout) -> None:
    names = layout.names
    if len(names) > MAX_TICKS:
        fig.update_xaxes(showticklabels=False, row=1, col=1)
    else:
        fig.update_xaxes(tickangle=-45, tickfont=dict(size=10), row=1, col=1)
    for k, (label, a, b) in enumerate(layout.groups):
        fig.add_vrect(x0=a - 0.5, x1=b - 0.5, fillcolor="#f3f4f6" if k % 2 else "white", line_width=0,
                      layer="below", row=1, col=1)
        fig.add_annotation(x=(a + b - 1) / 2, y=1.0, yref="y domain", yanchor="top", showarrow=False,
                           text=f"{label} ({b - a})" if (b - a) / len(layout.names) > 0.15 else label,
                           font=dict(size=10, color=SUBTLE), row=1, col=1)


def derivative_features(
    inspect_ds: xr.Dataset, sample: int, title: str | None = "Derivative features",
) -> go.Figure:
    """The derivative features of ``sample``: grouped bar chart plus heatmaps of the derivative blocks.

    What the network reads at this point. Trace 0 is the bar of every feature (x = feature
    names, coloured by derivative order); then one heatmap per derivative order (at most two,
    order 1 = Jacobian-like ``d_j v_i``), on a diverging scale shared with the bars' sign.
    """
    arrays = inspect_arrays(inspect_ds)
    i = check_sample(sample, arrays["n"])
    layout = feature_layout(inspect_ds)
    orders = sorted(layout.blocks)[:2]
    data = derivative_features_data(arrays, layout, i)
    fig = _features_figure(layout, data, orders)
    _bar_axis(fig, layout)
    subtitle = f"{sample_context((inspect_ds,), i)} · {len(layout.names)} features fed to the MLP"
    return apply_theme(fig, title, subtitle=subtitle)


def _grid_spec(n_maps: int) -> dict[str, Any]:
    """Subplot arrangement: bar alone; bar | heatmap; or bar on top of two heatmaps."""
    if n_maps == 0:
        return dict(rows=1, cols=1, cells=[])
    if n_maps == 1:
        return dict(rows=1, cols=2, cells=[(1, 2)], column_widths=[0.6, 0.4], horizontal_spacing=0.1)
    return dict(rows=2, cols=2, cells=[(2, 1), (2, 2)], specs=[[{"colspan": 2}, None], [{}, {}]],
                column_widths=[0.35, 0.65], row_heights=[0.45, 0.55], vertical_spacing=0.2,
                horizontal_spacing=0.08)


def _features_figure(layout: FeatureLayout, data: list[dict[str, Any]], orders: list[int]) -> go.Figure:
    names = layout.names
    spec = _grid_spec(len(orders))
    cells = spec.pop("cells")
    titles = [""] + [("Jacobian-like block ∂ⱼvᵢ" if o == 1 else f"order-{o} block ∂ₖ∂ⱼvᵢ") for o in orders]
    fig = make_subplots(subplot_titles=titles, **spec)
    colors = [POSITION_COLOR if o < 0 else palette_color(o) for o in layout.orders]
    fig.add_trace(go.Bar(x=names, y=data[0]["y"], name="features", marker_color=colors, marker_line_width=0,
                         hovertemplate="%{x}: %{y:.3g}<extra></extra>"), row=1, col=1)
    for k, (order, (row, col)) in enumerate(zip(orders, cells)):
        block = layout.blocks[order]
        fig.add_trace(go.Heatmap(z=data[1 + k]["z"], x=block["cols"], y=block["rows"], name=f"order {order}",
                                 zmin=data[1 + k]["zmin"], zmax=data[1 + k]["zmax"], colorscale=DIVERGING,
                                 showscale=k == len(orders) - 1, xgap=1, ygap=1,
                                 colorbar=dict(thickness=10, len=0.6 if row == 1 else 0.45,
                                               y=0.5 if row == 1 else 0.22, title=dict(text="∂ value")),
                                 hovertemplate="%{x} %{y}: %{z:.3g}<extra></extra>"), row=row, col=col)
        fig.update_yaxes(autorange="reversed", showgrid=False, showline=False, ticks="", tickfont=dict(size=9),
                         row=row, col=col)
        fig.update_xaxes(showgrid=False, showline=False, ticks="", tickfont=dict(size=9),
                         showticklabels=len(block["cols"]) <= 12,
                         title_text="direction j" if order == 1 else "directions (k j)", row=row, col=col)
    fig.update_yaxes(title_text="value", row=1, col=1)
    fig.update_layout(bargap=0.1, showlegend=False)
    for ann in fig.layout.annotations:  # subplot titles: smaller and grey
        ann.font = dict(size=11, color=SUBTLE)
    return fig
