"""marble_widgets: MARBLE on neural recordings, with interactive Jupyter dashboards.

Data flows one way: recording (xarray) -> flow field -> fitted MARBLE model -> results -> views.
Heavy rooms (torch engine, widgets) are imported lazily so that the data layer stays light;
the ``rec.marble`` accessor is registered on import.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from marble_widgets.data import accessor as _accessor  # noqa: E402,F401  registers ``rec.marble``

# public name -> module that defines it (imported on first access)
_LAZY = {
    "read_nwb": "marble_widgets.data.nwb",
    "nwb_summary": "marble_widgets.data.nwb",
    "open_sessions": "marble_widgets.sessions",
    "fit_sessions": "marble_widgets.sessions",
    "Sessions": "marble_widgets.sessions",
    "session_embeddings": "marble_widgets.sessions",
    "joint_flow_field": "marble_widgets.sessions",
    "flow_field": "marble_widgets.data.flow",
    "flow_field_from_arrays": "marble_widgets.data.flow",
    "FlowFieldBuilder": "marble_widgets.data.flow",
    "MARBLE": "marble_widgets.estimator",
    "ModelFileError": "marble_widgets.model_file",
    "MARBLEEnsemble": "marble_widgets.ensemble",
    "distances": "marble_widgets.analysis",
    "decode": "marble_widgets.analysis",
    "dashboard": "marble_widgets.widgets",
    "FlowView": "marble_widgets.widgets",
    "RasterView": "marble_widgets.widgets",
    "TrainingView": "marble_widgets.widgets",
    "AlignmentView": "marble_widgets.widgets",
}
_SUBMODULES = {"data", "datasets", "engine", "analysis", "plotting", "widgets", "estimator", "recipes", "sessions",
               "tuning", "ensemble"}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"marble_widgets.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'marble_widgets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
