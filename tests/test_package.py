"""Package-level contracts: lazy public API and the separation of rooms."""
from __future__ import annotations

import subprocess
import sys

import pytest

import marble_widgets


def _modules_after_import(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_import_is_light():
    mods = _modules_after_import("import marble_widgets")
    assert "torch" not in mods and "plotly" not in mods and "ipywidgets" not in mods


def test_data_room_never_imports_torch():
    mods = _modules_after_import(
        "import marble_widgets.data.containers, marble_widgets.data.errors\n"
        "import importlib, pkgutil, marble_widgets.data as d\n"
        "[importlib.import_module(f'marble_widgets.data.{m.name}') for m in pkgutil.iter_modules(d.__path__)]"
    )
    assert "torch" not in mods


def test_engine_room_never_imports_views():
    mods = _modules_after_import(
        "import importlib, pkgutil, marble_widgets.engine as e\n"
        "[importlib.import_module(f'marble_widgets.engine.{m.name}') for m in pkgutil.iter_modules(e.__path__)]"
    )
    assert "plotly" not in mods and "ipywidgets" not in mods


def test_unknown_attribute_raises():
    with pytest.raises(AttributeError, match="no attribute"):
        marble_widgets.not_a_thing  # noqa: B018
