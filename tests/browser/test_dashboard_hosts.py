"""The dashboard in JupyterLab 4, Notebook 7 and Voila: drawn from binary buffers sent by the kernel,
steps, raster clicks and the alignment pair change answered in the page (the raster follows the flow
view through the page channel) and reported to Python (throttled), and Python driving the views.
Expected values come from dashboard_checks.reference() (the same seeded
toy dashboard rebuilt here), never from the page.
"""
from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

import dashboard_checks as dc
import lab

HERE = Path(__file__).resolve().parent
# tests/browser/conftest.py by path: a bare `from conftest import` gets tests/widgets/conftest.py when
# both folders run in one session
_spec = importlib.util.spec_from_file_location("marble_browser_conftest", HERE / "conftest.py")
_browser_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_browser_conftest)
new_page, shoot_if_failed = _browser_conftest.new_page, _browser_conftest.shoot_if_failed

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]
CELLS = [
    f"import sys\nsys.path.insert(0, {str(HERE)!r})\nimport ipywidgets as widgets\n"
    "from dashboard_checks import toy_dashboard\nboard = toy_dashboard()\nboard",
    "heard = widgets.Label()\nheard.add_class('mw-test-heard')\n"
    "def _hear(_=None):\n"
    "    heard.value = (f\"py sample {board.flow_view.sample} raster {board.raster.sample} \"\n"
    "                   f\"pair {'|'.join(board.alignment.pair)}\")\n"
    "board.flow_view.observe(_hear, 'sample')\nboard.raster.observe(_hear, 'sample')\n"
    "board.alignment.observe(_hear, 'pair')\n_hear()\n"
    "drive = widgets.Button(description='drive')\ndrive.add_class('mw-test-drive')\n"
    "def _drive(_):\n    board.alignment.pair = ['right', 'left']\n    board.flow_view.sample = 77\n"
    "drive.on_click(_drive)\nwidgets.HBox([heard, drive])",
]
HOSTS = ("lab", "notebook", "voila")


# Notebook 7's kernel indicator reads "idle" before any kernel exists, then "connecting", then "idle";
# the faded kernel-status widget appears once the kernel has connected.
NB7_IDLE_JS = """() => document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status === 'idle'
    && !!document.querySelector('.jp-NotebookKernelStatus-fade')"""


def _run_all(page: Any) -> None:
    """Run > Run All Cells (the same menu command in JupyterLab and Notebook 7), once the kernel is up."""
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    page.wait_for_function(NB7_IDLE_JS, timeout=120_000, polling=100)
    # Notebook 7.6 itself throws "Cannot read properties of undefined (reading 'schema')" while it
    # loads (no widget exists yet): kept apart, the tests assert that nothing throws from here on
    page.host_errors = list(page.js_errors)
    page.js_errors.clear()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return dc.reference()


@pytest.fixture(scope="module", params=HOSTS)
def hosted(request: pytest.FixtureRequest, browser_context: Any) -> Iterator[Any]:
    """The dashboard notebook served by one host and run once; the page stays open for the module."""
    app = request.param
    with tempfile.TemporaryDirectory(prefix=f"marble-dash-{app}-") as tmp:
        nb = lab.write_notebook(Path(tmp) / "dashboard.ipynb", CELLS)
        with lab.start_lab([nb], app=app, notebook=nb.name if app == "voila" else None) as server:
            page = new_page(browser_context)
            try:
                if app == "lab":
                    lab.open_notebook(page, server.url, nb.name)
                    lab.run_all_cells(page, timeout=180)
                elif app == "notebook":
                    page.goto(f"{server.url}/notebooks/{nb.name}", timeout=60_000)
                    _run_all(page)
                else:
                    page.goto(server.url, timeout=180_000)  # Voila runs the notebook and shows its outputs only
                dc.wait_ready(page, timeout_ms=180_000)
            except Exception as err:
                report = _setup_report(page, server, app)
                raise RuntimeError(f"the dashboard did not come up in {app}: {err}\n{report}") from err
            page.host = app
            yield page
            page.close()


def _setup_report(page: Any, server: Any, app: str) -> str:
    """What a failed start looked like: a screenshot, the cells' prompts, page errors, the server log's end."""
    log = f"server log:\n{server.log.read_text()[-3000:]}"
    try:
        shot = lab.screenshot(page, f"FAILED-setup-{app}")
        prompts = page.evaluate("() => [...document.querySelectorAll('.jp-InputPrompt')]"
                                ".map(e => e.textContent.trim())")
        views = page.evaluate("() => [...document.querySelectorAll('[data-ready]')]"
                              ".map(e => e.className + '=' + e.dataset.ready)")
    except Exception as err:  # a closed or crashed page: the log still says something
        return f"(page not readable: {err})\n{log}"
    return (f"screenshot {shot}; input prompts {prompts}; views {views}; page errors "
            f"{getattr(page, 'host_errors', [])} {page.js_errors}\n{log}")


@pytest.fixture
def board(hosted: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield hosted
    shoot_if_failed(request, hosted)


def _heard(page: Any, text: str) -> None:
    dc.wait(page, "t => document.querySelector('.mw-test-heard')?.textContent.trim() === t", text)


def test_views_drawn_from_kernel_buffers(board: Any, reference: dict[str, Any]) -> None:
    dc.assert_flow_at(board, reference, dc.START)
    dc.assert_pair_shown(board, reference, "left", "right")
    dc.assert_training(board, reference)
    dc.assert_raster_follows(board, reference, dc.START)
    _heard(board, f"py sample {dc.START} raster {dc.START} pair left|right")
    lab.screenshot(board, f"dashboard_{board.host}")
    assert not board.js_errors


def test_step_and_pair_change_in_page_reach_python(board: Any, reference: dict[str, Any]) -> None:
    want = dc.step_right(board, reference, 3)
    dc.assert_raster_follows(board, reference, want)
    _heard(board, f"py sample {want} raster {want} pair left|right")
    jumped = dc.click_raster(board, reference, reference["time"][want] + 0.312)
    dc.assert_flow_at(board, reference, jumped)
    dc.assert_raster_follows(board, reference, jumped)
    _heard(board, f"py sample {jumped} raster {jumped} pair left|right")
    dc.click_heatmap_cell(board, reference, *dc.CLICKED)
    dc.assert_pair_shown(board, reference, *dc.CLICKED)
    _heard(board, f"py sample {jumped} raster {jumped} pair up|left")
    assert not board.js_errors


def test_python_drives_the_views(board: Any, reference: dict[str, Any]) -> None:
    board.locator(".mw-test-drive button, button.mw-test-drive").first.click()
    dc.assert_pair_shown(board, reference, "right", "left")
    dc.assert_flow_at(board, reference, 77)
    dc.assert_raster_follows(board, reference, 77)
    _heard(board, "py sample 77 raster 77 pair right|left")
    assert not board.js_errors
