"""The tutorial notebooks: committed without outputs, and each one runs top to bottom without error.

The fast test checks the stored files (no outputs, no execution counts, the seven tutorials
present, no network or ../shared paths). The slow tests execute every notebook with nbclient in
a kernel of this interpreter, with ``notebooks/`` as working directory.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXPECTED = [
    "01_quickstart.ipynb",
    "02_your_nwb_recording.ipynb",
    "03_reaching_conditions.ipynb",
    "04_cross_animal_alignment.ipynb",
    "05_what_is_a_local_flow_field.ipynb",
    "06_recurrent_networks_gain.ipynb",
    "07_many_sessions.ipynb",
]
TIMEOUT_S = 300  # per notebook; each is designed to run in < 2 min on 2 CPU cores
# code that would reach outside the repository at run time
FORBIDDEN = [r"\.\./shared", r"https?://", r"urllib", r"requests\.get", r"wget ", r"curl "]


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_seven_tutorials_are_committed():
    assert [p.name for p in _notebooks()] == EXPECTED


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path):
    nb = _load(path)
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert dirty == [], f"{path.name}: cells {dirty} hold outputs; run scripts/strip_notebooks.py"
    assert "widgets" not in nb["metadata"], f"{path.name}: saved widget state; strip it"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_notebook_code_stays_offline(path: Path):
    code = "\n".join("".join(c["source"]) for c in _load(path)["cells"] if c["cell_type"] == "code")
    hits = [pat for pat in FORBIDDEN if re.search(pat, code)]
    assert hits == [], f"{path.name}: code matches {hits}; notebooks must not use the network or ../shared"


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_notebook_has_markdown_and_cites_data(path: Path):
    cells = _load(path)["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert cells[0]["cell_type"] == "markdown" and cells[0]["source"][0].startswith("# ")
    assert "Gosztolai" in text, f"{path.name}: cite the MARBLE paper"
    assert sum(c["cell_type"] == "markdown" for c in cells) >= 5


def execute(path: Path, timeout: int = TIMEOUT_S):
    """Execute a notebook in a fresh python3 kernel of this interpreter, cwd = notebooks/."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return nb


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.timeout(TIMEOUT_S + 60)
@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_without_error(path: Path):
    assert Path(sys.executable).parent.joinpath("python").exists()
    nb = execute(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    assert all(c.get("execution_count") for c in code), "some code cells did not run"
