"""The derivative features of one sample (the MLP's input), grouped by derivative order.

A bar chart of every feature (positions, order 0, order 1, ...) with one labelled band per
group instead of 100+ tick labels, and below it each derivative block as a heatmap: order 1 is
the Jacobian-like table ``d_j v_i`` (component i x direction j), order 2 the table of
``d_k d_j v_i`` (component i x direction pair). The names come from ``MARBLE.inspect``
("v1", "d1 v1", "d2 d1 v1", "pos PC1"); nothing is computed here but reshaping.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
import xarray as xr

from marble_widgets.plotting.common import check_sample, json_safe_grid, sample_context
from marble_widgets.plotting.local_geometry import feature_order, inspect_arrays
from marble_widgets.plotting.theme import DIVERGING, SUBTLE, apply_theme, palette_color

#: Tick labels are written out only up to this many features; beyond, groups are labelled.
MAX_TICKS = 30
POSITION_COLOR = "#9aa1ab"
ORDER_LABELS = ("v", "∂v", "∂²v", "∂³v")


@dataclass
class FeatureLayout:
    """Where each feature group sits: bar groups, and (row, column) cells of each order block."""

    names: list[str]
    groups: list[tuple[str, int, int]] = field(default_factory=list)  # (label, first, stop)
    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)   # order -> rows, cols, index


def _parse(name: str) -> tuple[str, list[str]] | None:
    """("v3", ["d2", "d1"]) for "d2 d1 v3"; None for names outside the derivative layout."""
    toks = str(name).split()
    if not toks or not all(t.startswith("d") and t[1:].isdigit() for t in toks[:-1]):
        return None
    return toks[-1], toks[:-1]


def feature_layout(names: list[str]) -> FeatureLayout:
    """Group feature ``names`` by kind/order (contiguous runs) and index the derivative blocks."""
    out = FeatureLayout([str(n) for n in names])
    kinds = ["pos" if n.startswith("pos ") else ORDER_LABELS[min(feature_order(n), 3)] for n in out.names]
    start = 0
    for j in range(1, len(kinds) + 1):
        if j == len(kinds) or kinds[j] != kinds[start]:
            out.groups.append((kinds[start], start, j))
            start = j
    for j, name in enumerate(out.names):
        parsed = None if name.startswith("pos ") else _parse(name)
        if parsed is None or not parsed[1]:
            continue
        comp, dirs = parsed[0], " ".join(parsed[1])
        block = out.blocks.setdefault(len(parsed[1]), {"rows": [], "cols": [], "cells": []})
        for key, val in (("rows", comp), ("cols", dirs)):
            if val not in block[key]:
                block[key].append(val)
        block["cells"].append((block["rows"].index(comp), block["cols"].index(dirs), j))
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
    layout = feature_layout(arrays["feature_names"])
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
    colors = [POSITION_COLOR if n.startswith("pos ") else palette_color(feature_order(n)) for n in names]
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
