"""One dashboard for a fitted model: explorers, alignment, training, and an offline HTML export."""
from __future__ import annotations

import html
import warnings
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go
import xarray as xr

from marble_widgets.plotting.theme import FONT, INK, PALETTE, SUBTLE
from marble_widgets.widgets.alignment import AlignmentView
from marble_widgets.widgets.embedding_explorer import EmbeddingExplorer, link_explorers
from marble_widgets.widgets.flow_explorer import FlowFieldExplorer
from marble_widgets.widgets.report import model_summary, report_html
from marble_widgets.widgets.training import TrainingMonitor


class Dashboard(widgets.VBox):
    """Tabs of linked views over one fitted model (see :func:`dashboard`); ``to_html`` exports them.

    Attributes ``flow_explorer``, ``embedding_explorer``, ``training`` and ``alignment`` hold the
    parts (None when unavailable). CSS classes: ``mw-dashboard`` and ``mw-dashboard-tabs``.
    """

    def __init__(self, parts: dict[str, widgets.Widget | None], title: str = "MARBLE", *,
                 summary: dict[str, list[tuple[str, str]]] | None = None) -> None:
        self.parts = {k: v for k, v in parts.items() if v is not None}
        self.flow_explorer = parts.get("Flow field")
        self.embedding_explorer = parts.get("Embedding")
        self.alignment = parts.get("Alignment")
        self.training = parts.get("Training")
        self.tabs = widgets.Tab(children=list(self.parts.values()), titles=list(self.parts))
        self.tabs.add_class("mw-dashboard-tabs")
        self.summary = summary or {}
        header = widgets.HTML(header_html(title, self.summary))
        header.add_class("mw-dashboard-header")
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

    def to_html(self, path: str | Path, subtitle: str = "") -> Path:
        """Write every view as a static figure into one offline HTML report (plotly.js embedded once).

        The page has a header with the data/model/training summary, then one section per tab
        (``id="mw-section-<tab>"``) holding a responsive two-column grid of captioned panels.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report_html(self.title, self.summary, self.figures(), subtitle), encoding="utf-8")
        return path


def header_html(title: str, summary: dict[str, list[tuple[str, str]]]) -> str:
    """Compact live-dashboard header: the title and one line of key facts per summary group."""
    lines = "".join(
        f"<div><span style='color:{SUBTLE}'>{html.escape(group)}:</span> "
        + " · ".join(f"{html.escape(k)} <b>{html.escape(v)}</b>" for k, v in rows[:7]) + "</div>"
        for group, rows in summary.items())
    return (f"<div style='font-family:{FONT};color:{INK};border-left:4px solid {PALETTE[0]};padding:2px 10px;"
            f"margin:2px 0 8px 0'><div style='font-size:17px;font-weight:650'>{html.escape(title)}</div>"
            f"<div style='font-size:12px;line-height:1.5'>{lines}</div></div>")


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
    first = flow.trajectory()
    flow.sample = int(first[first.size // 2])  # mid-trajectory: a more typical point than its start
    history = getattr(model, "loss_history_", None)
    best = getattr(model, "best_epoch_", None)
    training = TrainingMonitor.from_history(history, best_epoch=best) if isinstance(history, xr.Dataset) else None
    alignment = _alignment(embedding, dist, mds_coords, align_fn, consistency_fn, label)
    parts = {"Flow field": flow, "Embedding": emb, "Alignment": alignment, "Training": training}
    return Dashboard(parts, title, summary=model_summary(model, flow_field, embedding))
