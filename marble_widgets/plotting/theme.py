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
#: Diverging scale (centred on zero) for signed values such as derivative features.
DIVERGING: list[list[float | str]] = [
    [0.0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#f7f7f7"], [0.75, "#f4a582"], [1.0, "#b2182b"],
]
#: Font stack, text colours and panel colours shared by figures and the HTML report.
FONT = "Inter, 'Segoe UI', 'Helvetica Neue', Helvetica, Arial, sans-serif"
INK = "#1f2933"
SUBTLE = "#6b7280"
#: Colours used for the "current point" and "selection" overlays.
HIGHLIGHT = "#E4002B"
SELECTION = "#FF8C00"
MUTED = "rgba(90, 90, 90, 0.45)"

_AXIS = dict(
    showgrid=True, gridcolor="#eef0f3", zeroline=False, showline=True, linecolor="#9aa1ab",
    ticks="outside", tickcolor="#9aa1ab", ticklen=4, title=dict(standoff=8, font=dict(size=12, color=SUBTLE)),
    automargin=True,
)
_SCENE_AXIS = dict(backgroundcolor="#fafbfc", gridcolor="#e3e6ea", showbackground=True, zeroline=False,
                   title=dict(font=dict(size=11, color=SUBTLE)), tickfont=dict(size=10))

TEMPLATE = go.layout.Template(
    layout=dict(
        paper_bgcolor="white",
        plot_bgcolor="white",
        font=dict(family=FONT, size=12, color=INK),
        title=dict(font=dict(size=15, color=INK), x=0.01, xanchor="left", y=0.98, yanchor="top",
                   subtitle=dict(font=dict(size=11, color=SUBTLE))),
        colorway=list(PALETTE),
        colorscale=dict(sequential=SEQUENTIAL),
        xaxis=_AXIS,
        yaxis=_AXIS,
        scene=dict(xaxis=_SCENE_AXIS, yaxis=_SCENE_AXIS, zaxis=_SCENE_AXIS),
        legend=dict(bgcolor="rgba(255,255,255,0.85)", borderwidth=0, font=dict(size=11),
                    itemsizing="constant"),
        hovermode="closest",
        margin=dict(l=55, r=20, t=64, b=45),
        hoverlabel=dict(bgcolor="white", font=dict(size=11, family=FONT)),
    )
)


def apply_theme(fig: go.Figure, title: str | None = None, height: int | None = 380, *,
                subtitle: str | None = None) -> go.Figure:
    """Apply the marble_widgets template (and optional title/subtitle/height) to ``fig`` in place.

    Returns the same figure so builders can end with ``return apply_theme(fig, ...)``; the
    subtitle is a grey line under the title saying what exactly is shown (sample, time, ...).
    """
    fig.update_layout(template=TEMPLATE)
    if title is not None:
        fig.update_layout(title_text=title)
    if subtitle is not None:
        fig.update_layout(title_subtitle_text=subtitle)
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
