"""Shared pieces of the dashboards: FigureWidget views with stable CSS classes, overlays, guards.

Every dashboard is an ``ipywidgets.VBox`` carrying ``mw-<dashboard>`` and every view a
:class:`~marble_widgets.widgets._figure.FigureWidget` (a ``go.FigureWidget`` that renders reliably
in JupyterLab) carrying ``mw-view`` and ``mw-<dashboard>-<view>``, so browser tests and users'
CSS can find them.
"""
from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from marble_widgets.plotting.theme import FONT, HIGHLIGHT, INK, SELECTION, SUBTLE
from marble_widgets.widgets._figure import FigureWidget
from marble_widgets.widgets.text import VIEW_TEXT

#: Heights (px) of the live views: 3-D and the feature view taller, time series shorter.
HEIGHTS = {"3d": 500, "2d": 440, "features": 460, "series": 320}
PANEL_TITLE = f"font-family:{FONT};font-weight:600;font-size:13px;color:{INK}"
PANEL_CAPTION = f"font-family:{FONT};font-size:11.5px;color:{SUBTLE};line-height:1.3"


def promote_subtitle(fig: go.Figure) -> go.Figure:
    """Inside a titled panel: show the figure's subtitle as its (small, grey) title, or no title.

    The panel already names the view, so the figure keeps only the line saying what exactly is
    shown (sample, time, trial ...). Idempotent; returns ``fig``.
    """
    sub = fig.layout.title.subtitle.text if fig.layout.title.subtitle else None
    if sub:
        fig.update_layout(title=dict(text=sub, font=dict(size=12, color=SUBTLE), subtitle=dict(text=None)),
                          margin=dict(t=36))
    elif not (fig.layout.title.font and fig.layout.title.font.color == SUBTLE):
        fig.update_layout(title_text=None, margin=dict(t=24))
    return fig


def set_subtitle(fw: go.FigureWidget, text: str) -> None:
    """Update the line written by :func:`promote_subtitle` (the figure's small grey title)."""
    fw.layout.title.text = text


def view(fig: go.Figure, css: str, height: int | None = None, *, in_panel: bool = True) -> FigureWidget:
    """Wrap a static figure into a :class:`FigureWidget` with the classes ``mw-view`` and ``css``.

    ``in_panel``: the view sits in a titled :func:`panel`, so its subtitle becomes its title.
    """
    fw = FigureWidget(promote_subtitle(go.Figure(fig)) if in_panel else fig)
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


def set_points(trace: Any, points: np.ndarray) -> None:
    """Set a trace's x/y(/z) from the columns of ``points`` (n, 2|3)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, np.shape(points)[-1])
    data = {"x": points[:, 0], "y": points[:, 1]}
    if trace.type == "scatter3d":
        data["z"] = points[:, 2]
    trace.update(data)


def panel(title: str, child: widgets.Widget, css: str, caption: str | None = None) -> widgets.VBox:
    """A titled card around one view or control group, with class ``css`` and an optional caption."""
    head = f"<div style='{PANEL_TITLE}'>{html.escape(title)}</div>"
    if caption:
        head += f"<div style='{PANEL_CAPTION}'>{html.escape(caption)}</div>"
    box = widgets.VBox([widgets.HTML(head), child], layout=widgets.Layout(
        min_width="0", border="1px solid #e5e7eb", padding="6px 8px 4px 8px", overflow="hidden"))
    box.add_class("mw-panel")
    box.add_class(css)
    return box


def view_panel(name: str, child: widgets.Widget) -> widgets.VBox:
    """:func:`panel` titled and captioned from ``VIEW_TEXT[name]``, class ``mw-panel-<name>``."""
    title, caption = VIEW_TEXT.get(name, (name, None))
    return panel(title, child, f"mw-panel-{name}", caption)


def controls_box(children: list[widgets.Widget], css: str) -> widgets.HBox:
    """A compact, wrapping row of controls with class ``css``."""
    for child in children:
        if isinstance(child, (widgets.Dropdown, widgets.IntSlider)):
            child.style.description_width = "initial"
            child.layout.width = child.layout.width or ("260px" if isinstance(child, widgets.IntSlider) else "200px")
    box = widgets.HBox(children, layout=widgets.Layout(flex_flow="row wrap", align_items="center",
                                                        grid_gap="4px 12px", padding="2px 0 6px 0"))
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
    """Views laid out in ``columns`` equal columns; a lone last view spans the whole row."""
    if len(children) % columns == 1 and columns > 1:
        children[-1].layout.grid_column = "1 / -1"
    return widgets.GridBox(children, layout=widgets.Layout(
        grid_template_columns=" ".join(["minmax(0, 1fr)"] * columns), grid_gap="10px", width="100%"))
