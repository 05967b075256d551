"""Deprecated names of the retired FigureWidget explorers: thin functions that build a :class:`FlowView`.

Why: notebooks written before issue 14 call ``FlowFieldExplorer(ff, inspect_ds, emb)``,
``EmbeddingExplorer(emb, ff)`` and ``link_explorers(a, b)``; they keep working (with a
``FutureWarning`` naming the replacement) while the browser-drawn FlowView does the drawing.
"""
from __future__ import annotations

import warnings
from typing import Any

import ipywidgets as widgets
from ipywidgets.widgets.widget_link import Link
import xarray as xr

from marble_widgets.widgets.flow_view import FlowView


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated and will be removed; use {new} (a browser-drawn view).",
                  FutureWarning, stacklevel=3)


def FlowFieldExplorer(flow_field: xr.Dataset, inspect_ds: xr.Dataset | None = None,  # noqa: N802 - old class name
                      embedding: xr.DataArray | None = None, *, dims: int | None = None, **_: Any) -> FlowView:
    """Deprecated: ``FlowView(flow_field, embedding, neighbors=inspect_ds)`` (MARBLE's own neighbours)."""
    _deprecated("FlowFieldExplorer(flow_field, inspect_ds, embedding)",
                "mw.FlowView(flow_field, embedding, neighbors=inspect_ds)")
    return FlowView(flow_field, embedding, neighbors=inspect_ds, dims=dims or 2)


def EmbeddingExplorer(embedding: xr.DataArray, flow_field: xr.Dataset,  # noqa: N802 - old class name
                      recording: xr.Dataset | None = None, *, color_by: str | None = None,
                      dims: int | None = None, **_: Any) -> FlowView:
    """Deprecated: ``FlowView(flow_field, embedding)``, which draws the embedding beside the state space."""
    _deprecated("EmbeddingExplorer(embedding, flow_field)", "mw.FlowView(flow_field, embedding)")
    return FlowView(flow_field, embedding, color_by=color_by, dims=dims or 2)


def link_explorers(embedding_explorer: FlowView, flow_explorer: FlowView) -> Link:
    """Deprecated: link two views' ``sample`` in the browser (``ipywidgets.jslink``); returns the link.

    The second view starts at the first one's sample; ``.unlink()`` undoes the link.
    """
    _deprecated("link_explorers", "one mw.FlowView(flow_field, embedding), or ipywidgets.jslink on 'sample'")
    for name, view in (("embedding_explorer", embedding_explorer), ("flow_explorer", flow_explorer)):
        if not isinstance(view, FlowView):
            raise TypeError(f"{name} must be a FlowView (what EmbeddingExplorer/FlowFieldExplorer now return); "
                            f"got {type(view).__name__}.")
    flow_explorer.sample = embedding_explorer.sample
    return widgets.jslink((embedding_explorer, "sample"), (flow_explorer, "sample"))
