"""Shared pieces of the dashboards: FigureWidget views with stable CSS classes, overlays, guards.

Every dashboard is an ``ipywidgets.VBox`` carrying ``mw-<dashboard>`` and every view a
``go.FigureWidget`` carrying ``mw-view`` and ``mw-<dashboard>-<view>``, so browser tests and
users' CSS can find them.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from marble_widgets.plotting.theme import HIGHLIGHT, SELECTION


def view(fig: go.Figure, css: str, height: int | None = None) -> go.FigureWidget:
    """Wrap a static figure into a FigureWidget with the classes ``mw-view`` and ``css``."""
    fw = go.FigureWidget(fig)
    if height is not None:
        fw.layout.height = height
    fw.add_class("mw-view")
    fw.add_class(css)
    return fw


def overlay_trace(n_dims: int, kind: str, name: str | None = None) -> Any:
    """An empty marker trace for the current point (``kind="current"``) or a selection."""
    cls = go.Scatter3d if n_dims == 3 else go.Scattergl
    if kind == "current":
        marker = dict(color=HIGHLIGHT, size=8 if n_dims == 3 else 13, symbol="diamond",
                      line=dict(color="white", width=1.5))
    else:
        marker = dict(color=SELECTION, size=4 if n_dims == 3 else 7, opacity=0.9,
                      line=dict(color="#7a3c00", width=0.5))
    empty = {k: np.zeros(0) for k in ("x", "y", "z")[:n_dims]}
    return cls(**empty, mode="markers", name=name or kind, marker=marker, showlegend=False, hoverinfo="skip")


def trace_index(fig: go.Figure, name: str) -> int:
    """Index of the (last) trace called ``name`` in ``fig``; KeyError if absent."""
    for i in range(len(fig.data) - 1, -1, -1):
        if fig.data[i].name == name:
            return i
    raise KeyError(f"figure has no trace named {name!r}")


def set_points(trace: Any, points: np.ndarray) -> None:
    """Set a trace's x/y(/z) from the columns of ``points`` (n, 2|3)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, np.shape(points)[-1])
    data = {"x": points[:, 0], "y": points[:, 1]}
    if trace.type == "scatter3d":
        data["z"] = points[:, 2]
    trace.update(data)


def panel(title: str, child: widgets.Widget, css: str) -> widgets.VBox:
    """A titled box around one view or control group, with class ``css``."""
    box = widgets.VBox([widgets.HTML(f"<b>{title}</b>"), child], layout=widgets.Layout(min_width="0"))
    box.add_class("mw-panel")
    box.add_class(css)
    return box


class Guard:
    """Re-entrancy flag: ``with guard:`` marks updates that observers must not echo back."""

    def __init__(self) -> None:
        self.active = False

    @contextmanager
    def hold(self) -> Iterator[None]:
        previous, self.active = self.active, True
        try:
            yield
        finally:
            self.active = previous


def grid(children: list[widgets.Widget], columns: int = 2) -> widgets.GridBox:
    """Views laid out in ``columns`` equal columns."""
    return widgets.GridBox(children, layout=widgets.Layout(
        grid_template_columns=" ".join(["minmax(0, 1fr)"] * columns), grid_gap="8px", width="100%"))
