"""FlowView in JupyterLab: binary buffers and plotly.js arrive through the kernel, steps stay in the
browser, the browser reports ``sample`` back to Python (throttled) and Python drives the view."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

import lab
from conftest import new_page, shoot_if_failed

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

TOY = Path(__file__).resolve().parents[1] / "plotting"
CELLS = [
    f"import sys\nsys.path.insert(0, {str(TOY)!r})\nimport ipywidgets as widgets\n"
    "from toy_results import flow_field, embedding\nfrom marble_widgets.widgets.flow_view import FlowView\n"
    "ff = flow_field()\nview = FlowView(ff, embedding(ff), sample=20)\nview",
    "heard = widgets.Label('py sample 20')\nheard.add_class('mw-test-heard')\n"
    "view.observe(lambda c: setattr(heard, 'value', f\"py sample {c['new']}\"), 'sample')\n"
    "drive = widgets.Button(description='drive')\ndrive.add_class('mw-test-drive')\n"
    "def _drive(_):\n    view.sample = 77\n    view.color_by = 'position'\n    view.selection = [4, 9, 60]\n"
    "    view3.sample = 77\n"
    "drive.on_click(_drive)\nwidgets.HBox([heard, drive])",
    "view3 = FlowView(ff, embedding(ff), sample=20, dims=3)\nview3",
]


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    """The notebook's view rebuilt here: the arrays the page must show."""
    import sys

    sys.path.insert(0, str(TOY))
    from toy_results import embedding, flow_field

    from marble_widgets.widgets.flow_view import FlowView

    ff = flow_field()
    arrays = FlowView(ff, embedding(ff), sample=20).arrays()
    pos_of = np.empty_like(arrays["order"])
    pos_of[arrays["order"]] = np.arange(arrays["order"].size)
    return {"a": arrays, "pos_of": pos_of, "a3": FlowView(ff, embedding(ff), sample=20, dims=3).arrays()}


@pytest.fixture(scope="module")
def lab_page(browser_context: Any) -> Iterator[Any]:
    """A JupyterLab of its own running the generated notebook once."""
    with tempfile.TemporaryDirectory(prefix="marble-fv-") as tmp:
        nb = lab.write_notebook(Path(tmp) / "flow_view.ipynb", CELLS)
        with lab.start_lab([nb]) as server:
            page = new_page(browser_context)
            lab.open_notebook(page, server.url, nb.name)
            lab.run_all_cells(page, timeout=120)
            page.wait_for_selector(".mw-fv[data-ready=true]", timeout=60_000)
            yield page
            page.close()


@pytest.fixture
def fv(lab_page: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield lab_page
    shoot_if_failed(request, lab_page)


def _wait(page: Any, js: str, arg: Any = None) -> None:
    page.wait_for_function(js, arg=arg, timeout=15_000, polling=20)


def test_steps_in_browser_and_reports_to_python(fv: Any, reference: dict[str, Any]) -> None:
    a, order = reference["a"], reference["a"]["order"]
    _wait(fv, "() => document.querySelector('.mw-fv').dataset.drawn === '20'")
    fv.locator(".mw-fv").first.focus()
    active = fv.evaluate("() => [...document.querySelectorAll('.jp-Cell')].findIndex(c => c.classList.contains('jp-mod-active'))")
    for _ in range(3):
        fv.keyboard.press("ArrowRight")
    want = int(order[reference["pos_of"][20] + 3])
    _wait(fv, "s => document.querySelector('.mw-fv').dataset.drawn === String(s)", want)
    nb = a["neighbors"][want][a["neighbors"][want] >= 0]
    marks = fv.evaluate("""() => [...document.querySelector('.mw-fv').querySelectorAll('.mw-fv-panel-embedding .mw-fv-neighbours circle')]
        .filter(c => !c.hasAttribute('display')).map(c => Number(c.getAttribute('data-sample')))""")
    assert marks == nb.tolist()
    # the kernel hears where the user is (throttled), and the notebook did not take the arrow keys
    _wait(fv, "t => document.querySelector('.mw-test-heard')?.textContent.trim() === t", f"py sample {want}")
    time.sleep(0.6)  # echoes of the earlier steps have come back by now: they must not move the view
    assert fv.evaluate("() => document.querySelector('.mw-fv').dataset.drawn") == str(want)
    assert fv.locator(".mw-test-heard").first.inner_text().strip() == f"py sample {want}"
    after = fv.evaluate("() => [...document.querySelectorAll('.jp-Cell')].findIndex(c => c.classList.contains('jp-mod-active'))")
    assert after == active
    lab.screenshot(fv, "flow_view_lab", ".mw-fv")
    assert not fv.js_errors


def test_python_drives_the_view(fv: Any, reference: dict[str, Any]) -> None:
    fv.locator(".mw-test-drive button, button.mw-test-drive").first.click()
    _wait(fv, "() => document.querySelector('.mw-fv').dataset.drawn === '77'")
    _wait(fv, "() => document.querySelector('.mw-fv').dataset.colorBy === 'position'")
    _wait(fv, "() => document.querySelector('.mw-fv').dataset.selected === '3'")
    view = "document.querySelector('.mw-fv').parentElement.__mwFlowView"
    # the point layers show position's colours and the selection Python set (it crossed as int32 bytes)
    got = fv.evaluate(f"() => Array.from({view}.layers.embedding.colours)")
    assert got == fv.evaluate(f"() => Array.from({view}.colours('position'))")
    assert got != fv.evaluate(f"() => Array.from({view}.colours('condition'))")
    sel = fv.evaluate(f"() => [Array.from({view}.selection), {view}.layers.embedding.nSel, {view}.layers.state.nSel]")
    assert sel == [[4, 9, 60], 3, 3]
    assert fv.locator(".mw-fv-color").first.input_value() == "position"
    lab.screenshot(fv, "flow_view_lab_driven", ".mw-fv")


def test_3d_scene_follows_python_and_steps_in_the_browser(fv: Any, reference: dict[str, Any]) -> None:
    """The 3-D view (third cell): Python set its sample to 77 (the drive button), the scene's marks sit at
    their projection (computed in the test); a key press steps it in the page, to the scene's frame."""
    from test_flow_view_scene import _assert_marks_at, _scene

    view3 = "document.querySelectorAll('.mw-fv')[1].parentElement.__mwFlowView"
    built3 = {"a": reference["a3"], "pos_of": reference["pos_of"]}
    fv.locator(".mw-test-drive button, button.mw-test-drive").first.click()  # Python: view3.sample = 77
    _wait(fv, "() => document.querySelectorAll('.mw-fv')[1]?.dataset.sceneDrawn === '77'")
    _assert_marks_at(_scene(fv, view3), built3, 77)
    fv.locator(".mw-fv").nth(1).focus()
    fv.keyboard.press("ArrowRight")
    want = int(reference["a3"]["order"][reference["pos_of"][77] + 1])
    _wait(fv, "s => document.querySelectorAll('.mw-fv')[1].dataset.sceneDrawn === String(s)", want)
    _assert_marks_at(_scene(fv, view3), built3, want)
    assert fv.evaluate("() => document.querySelector('.mw-fv').dataset.drawn") == "77"  # the 2-D view stays
    lab.screenshot(fv, "flow_view_lab_3d", ".mw-fv-panel-state >> nth=1")
    assert not fv.js_errors
