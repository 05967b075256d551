"""ipywidgets dashboards: traitlets state + FigureWidget views built from plotting/.

Each dashboard is an ``ipywidgets.VBox`` whose state lives in a few traitlets (``sample``,
``selection``, ...); views observe that state and redraw only what changed. :class:`FlowView` is
the first view that draws in the browser itself (anywidget + plotly.js, data sent once as binary
buffers, stepping/Play/selection computed in JavaScript, interactive ``to_html`` export).
"""
from __future__ import annotations

from marble_widgets.widgets.alignment import AlignmentView
from marble_widgets.widgets.dashboard import Dashboard, dashboard
from marble_widgets.widgets.embedding_explorer import EmbeddingExplorer, link_explorers
from marble_widgets.widgets.flow_explorer import FlowFieldExplorer
from marble_widgets.widgets.flow_view import FlowView
from marble_widgets.widgets.training import TrainingMonitor

__all__ = ["AlignmentView", "Dashboard", "EmbeddingExplorer", "FlowFieldExplorer", "FlowView", "TrainingMonitor",
           "dashboard", "link_explorers"]
