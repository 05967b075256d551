"""Dashboards drawn in the browser: anywidget views over binary buffers, with small synced traits.

Each view's ES module draws with plotly.js (loaded once per page) from typed arrays it received
once and answers interactions itself; Python reads and sets a few two-way traits. :class:`FlowView`
steps through a flow field and its embedding, :class:`AlignmentView` compares conditions,
:class:`TrainingView` shows the training curves, :class:`RasterView` the recording's spikes
around the current sample, and :func:`dashboard` stacks them for a fitted
model; every ``to_html`` writes an interactive, self-contained page.
"""
from __future__ import annotations

from marble_widgets.widgets.alignment_view import AlignmentView
from marble_widgets.widgets.dashboard import Dashboard, dashboard
from marble_widgets.widgets.flow_view import FlowView
from marble_widgets.widgets.legacy import EmbeddingExplorer, FlowFieldExplorer, link_explorers
from marble_widgets.widgets.raster_view import RasterView
from marble_widgets.widgets.training_view import TrainingView

#: The live training view's former name (same class).
TrainingMonitor = TrainingView

__all__ = ["AlignmentView", "Dashboard", "EmbeddingExplorer", "FlowFieldExplorer", "FlowView", "RasterView",
           "TrainingMonitor",
           "TrainingView", "dashboard", "link_explorers"]
