"""Pure functions that turn results (xarray) into plotly figures.

Every function returns a ``plotly.graph_objects.Figure`` (never calls ``show()``) styled by
:mod:`marble_widgets.plotting.theme`; the widgets build their live views from the same functions.
"""
from __future__ import annotations

from marble_widgets.plotting.embedding import DensityGrid, density_figure, embedding_scatter
from marble_widgets.plotting.features import derivative_features
from marble_widgets.plotting.local_geometry import local_flow, neighbourhood
from marble_widgets.plotting.recording import behaviour, raster
from marble_widgets.plotting.state_space import trajectories
from marble_widgets.plotting.summary import distance_heatmap, loss_curves, mds_map
from marble_widgets.plotting.theme import PALETTE, SEQUENTIAL, TEMPLATE, apply_theme

__all__ = [
    "DensityGrid", "PALETTE", "SEQUENTIAL", "TEMPLATE", "apply_theme", "behaviour", "density_figure",
    "derivative_features", "distance_heatmap", "embedding_scatter", "local_flow", "loss_curves", "mds_map",
    "neighbourhood", "raster", "trajectories",
]
