"""One dashboard for a fitted model: explorers, alignment, training, and an offline HTML export."""
from __future__ import annotations

import html
import warnings
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go
import xarray as xr

from marble_widgets.widgets.alignment import AlignmentView
from marble_widgets.widgets.embedding_explorer import EmbeddingExplorer, link_explorers
from marble_widgets.widgets.flow_explorer import FlowFieldExplorer
from marble_widgets.widgets.training import TrainingMonitor


class Dashboard(widgets.VBox):
    """Tabs of linked views over one fitted model (see :func:`dashboard`); ``to_html`` exports them.

    Attributes ``flow_explorer``, ``embedding_explorer``, ``training`` and ``alignment`` hold the
    parts (None when unavailable). CSS classes: ``mw-dashboard`` and ``mw-dashboard-tabs``.
    """

    def __init__(self, parts: dict[str, widgets.Widget | None], title: str = "MARBLE") -> None:
        self.parts = {k: v for k, v in parts.items() if v is not None}
        self.flow_explorer = parts.get("Flow field")
        self.embedding_explorer = parts.get("Embedding")
        self.alignment = parts.get("Alignment")
        self.training = parts.get("Training")
        self.tabs = widgets.Tab(children=list(self.parts.values()), titles=list(self.parts))
        self.tabs.add_class("mw-dashboard-tabs")
        header = widgets.HTML(f"<h3 style='margin:4px 0'>{html.escape(title)}</h3>")
        super().__init__([header, self.tabs])
        self.title = title
        self.add_class("mw-dashboard")

    def figures(self) -> dict[str, go.Figure]:
        """Static snapshots (``go.Figure``) of every view, keyed ``"<tab>/<view>"``."""
        out: dict[str, go.Figure] = {}
        for tab, part in self.parts.items():
            views = getattr(part, "views", None) or {"loss": part.loss_view}
            for name, fw in views.items():
                out[f"{tab}/{name}"] = go.Figure(fw)
        return out

    def to_html(self, path: str | Path) -> Path:
        """Write every view as a static figure into one offline HTML file (plotly.js embedded once)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blocks = []
        for k, (key, fig) in enumerate(self.figures().items()):
            div_id = "mw-fig-" + key.lower().replace("/", "-").replace(" ", "-")
            body = fig.to_html(full_html=False, include_plotlyjs=(k == 0), div_id=div_id)
            blocks.append(f"<section class='mw-export-view'><h4>{html.escape(key)}</h4>{body}</section>")
        doc = ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
               f"<title>{html.escape(self.title)}</title><style>body{{font-family:Helvetica,Arial,sans-serif;"
               "margin:24px;color:#2a2a2a}section{margin-bottom:28px}</style></head><body>"
               f"<h2>{html.escape(self.title)}</h2>{''.join(blocks)}</body></html>")
        path.write_text(doc, encoding="utf-8")
        return path


def _alignment(embedding: xr.DataArray, dist: xr.DataArray | None, mds_coords: xr.DataArray | None,
               align_fn: Any, consistency_fn: Any, label: str | None) -> AlignmentView | None:
    if "condition" not in embedding.coords or len(set(embedding["condition"].values.tolist())) < 2:
        return None
    if dist is None or mds_coords is None:
        try:
            from marble_widgets.analysis import distances, mds
        except ImportError:
            return None
        dist = distances(embedding, "condition") if dist is None else dist
        mds_coords = mds(dist) if mds_coords is None else mds_coords
    try:
        return AlignmentView(embedding, dist, mds_coords, align_fn, consistency_fn, label=label)
    except ValueError as err:  # e.g. groups that share no label range: show the rest of the dashboard
        warnings.warn(f"dashboard: alignment tab left out: {err}", stacklevel=3)
        return None


def dashboard(
    model: Any,
    flow_field: xr.Dataset,
    recording: xr.Dataset | None = None,
    *,
    embedding: xr.DataArray | None = None,
    inspect_ds: xr.Dataset | None = None,
    dist: xr.DataArray | None = None,
    mds_coords: xr.DataArray | None = None,
    align_fn: Any = None,
    consistency_fn: Any = None,
    label: str | None = "time",
    title: str = "MARBLE",
) -> Dashboard:
    """All views of a fitted ``model`` on ``flow_field`` in one tabbed, linked dashboard.

    Calls ``model.transform`` / ``model.inspect`` only for what is not passed in; shows the
    training curves from ``model.loss_history_`` when present; the raster appears only with a
    ``recording``; the alignment tab only with >= 2 conditions (distances/MDS from
    ``marble_widgets.analysis`` unless ``dist``/``mds_coords`` are given; ``label`` is the numeric
    sample coord the default alignment/consistency bin on; the tab is left out, with a warning, if
    they fail). The flow-field and embedding explorers share ``sample``.
    """
    embedding = model.transform(flow_field) if embedding is None else embedding
    inspect_ds = model.inspect(flow_field) if inspect_ds is None else inspect_ds
    flow = FlowFieldExplorer(flow_field, inspect_ds, embedding)
    emb = EmbeddingExplorer(embedding, flow_field, recording)
    link_explorers(emb, flow)
    history = getattr(model, "loss_history_", None)
    training = TrainingMonitor.from_history(history) if isinstance(history, xr.Dataset) else None
    alignment = _alignment(embedding, dist, mds_coords, align_fn, consistency_fn, label)
    parts = {"Flow field": flow, "Embedding": emb, "Alignment": alignment, "Training": training}
    return Dashboard(parts, title)
