"""The marble_widgets look: one template, one qualitative palette, one sequential colour scale.

Every figure in :mod:`marble_widgets.plotting` goes through :func:`apply_theme`, so static exports
and live dashboards look the same without touching plotly's global default template.
"""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

#: Qualitative palette for conditions/groups (Okabe-Ito, colour-blind safe, reordered for white).
PALETTE: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D31", "#332288",
    "#88CCEE", "#AA4499", "#117733", "#999933",
)
#: Sequential colour scale for time, behaviour and other continuous values.
SEQUENTIAL = "Viridis"
#: Light-to-dark scale for densities, distances and spike counts.
DENSITY: list[list[float | str]] = [
    [0.0, "#f7fbff"], [0.25, "#c6dbef"], [0.5, "#6baed6"], [0.75, "#2171b5"], [1.0, "#08306b"],
]
#: Colours used for the "current point" and "selection" overlays.
HIGHLIGHT = "#E4002B"
SELECTION = "#FF8C00"
MUTED = "rgba(90, 90, 90, 0.45)"

_AXIS = dict(
    showgrid=True, gridcolor="#ececec", zeroline=False, showline=True, linecolor="#555555",
    ticks="outside", tickcolor="#555555", title=dict(standoff=6),
)
_SCENE_AXIS = dict(backgroundcolor="white", gridcolor="#e5e5e5", showbackground=True, zeroline=False)

TEMPLATE = go.layout.Template(
    layout=dict(
        paper_bgcolor="white",
        plot_bgcolor="white",
        font=dict(family="Inter, 'Helvetica Neue', Helvetica, Arial, sans-serif", size=12, color="#2a2a2a"),
        title=dict(font=dict(size=14), x=0.02, xanchor="left"),
        colorway=list(PALETTE),
        colorscale=dict(sequential=SEQUENTIAL),
        xaxis=_AXIS,
        yaxis=_AXIS,
        scene=dict(xaxis=_SCENE_AXIS, yaxis=_SCENE_AXIS, zaxis=_SCENE_AXIS),
        legend=dict(bgcolor="rgba(255,255,255,0.8)", borderwidth=0),
        hovermode="closest",
        margin=dict(l=55, r=20, t=45, b=45),
        hoverlabel=dict(bgcolor="white", font=dict(size=11)),
    )
)


def apply_theme(fig: go.Figure, title: str | None = None, height: int | None = 380) -> go.Figure:
    """Apply the marble_widgets template (and optional title/height) to ``fig`` in place.

    Returns the same figure so builders can end with ``return apply_theme(fig, ...)``.
    """
    fig.update_layout(template=TEMPLATE)
    if title is not None:
        fig.update_layout(title_text=title)
    if height is not None:
        fig.update_layout(height=height)
    return fig


def palette_color(i: int) -> str:
    """Colour of the ``i``-th category, cycling through :data:`PALETTE`."""
    return PALETTE[int(i) % len(PALETTE)]


def discrete_colorscale(n: int) -> list[list[float | str]]:
    """Stepped colour scale mapping integer codes 0..n-1 (with cmin=-0.5, cmax=n-0.5) to PALETTE."""
    n = max(int(n), 1)
    scale: list[list[float | str]] = []
    for i in range(n):
        scale += [[i / n, palette_color(i)], [(i + 1) / n, palette_color(i)]]
    return scale


def category_colors(codes: Sequence[int]) -> list[str]:
    """Palette colour for each integer category code (one string per element)."""
    return [palette_color(c) for c in codes]
