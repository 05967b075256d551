"""Real-browser checks: ipywidgets + plotly FigureWidgets driven in JupyterLab by chromium."""
from __future__ import annotations

import json
import urllib.request
from typing import Any

import numpy as np
import pytest

import lab
from conftest import notebook_page_fixtures

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

SLIDER = ".mw-test-slider"
CLICK = ".mw-test-click"
SELECT = ".mw-test-select"


_widgets_page, widgets_page = notebook_page_fixtures("widgets_page", "plotly_widgets.ipynb",
                                                     {SLIDER: 2, CLICK: 1, SELECT: 1})


def _wait_label(page: Any, selector: str, prefix: str) -> str:
    """Wait until the Label widget at ``selector`` shows text starting with ``prefix``."""
    page.wait_for_function(
        "([sel, pre]) => (document.querySelector(sel)?.textContent || '').trim().startsWith(pre)",
        arg=[selector, prefix], timeout=15_000, polling=50,
    )
    return page.locator(selector).first.inner_text().strip()


def _try_wait(page: Any, js: str, arg: Any, timeout_ms: int = 15_000) -> None:
    """Wait for ``js(arg)`` to be truthy; on timeout return so the test's assert explains."""
    try:
        page.wait_for_function(js, arg=arg, timeout=timeout_ms, polling=50)
    except Exception:  # noqa: BLE001 - the assertion that follows reports the actual state
        pass


def _marker_translate(page: Any) -> list[float]:
    """SVG translate (x, y) in px of the slider figure's marker (trace 1, point 0)."""
    return page.evaluate(
        """sel => {
            const pts = document.querySelectorAll(sel + ' .js-plotly-plot .scatterlayer .trace');
            const t = pts[1].querySelector('.point').getAttribute('transform');
            return t.match(/translate\\(([-\\d.e]+),\\s*([-\\d.e]+)\\)/).slice(1).map(Number);
        }""", SLIDER)


def test_slider_moves_figurewidget_marker(widgets_page: Any) -> None:
    page = widgets_page
    before = lab.plot_data(page, SLIDER, 1)
    assert before == {"x": [1], "y": [0]}
    px_before = _marker_translate(page)
    lab.screenshot(page, "slider_before", SLIDER)

    handle = page.locator(f"{SLIDER} .noUi-handle").first
    handle.focus()
    for _ in range(3):
        handle.press("ArrowRight")
    angle = 2.0 * np.pi * 3 / 49  # slider value 3 on linspace(0, 2 pi, 50)
    want = [np.cos(angle), np.sin(angle)]
    _try_wait(page, """([sel, x, y]) => {
        const t = document.querySelector(sel + ' .js-plotly-plot').data[1];
        return Math.abs(t.x[0] - x) < 1e-9 && Math.abs(t.y[0] - y) < 1e-9;
    }""", [SLIDER, *want])
    after = lab.plot_data(page, SLIDER, 1)
    np.testing.assert_allclose([after["x"][0], after["y"][0]], want, atol=1e-9)
    assert page.locator(f"{SLIDER} .widget-readout").first.inner_text().strip() == "3"
    # the drawn SVG marker moved to the new data position, not only the data array
    px = _marker_translate(page)
    expected_px = page.evaluate(
        """([sel, x, y]) => {
            const fl = document.querySelector(sel + ' .js-plotly-plot')._fullLayout;
            return [fl.xaxis.l2p(x), fl.yaxis.l2p(y)];
        }""", [SLIDER, after["x"][0], after["y"][0]])
    np.testing.assert_allclose(px, expected_px, atol=1.0)
    assert abs(px[0] - px_before[0]) + abs(px[1] - px_before[1]) > 10
    lab.screenshot(page, "slider_after", SLIDER)
    assert not page.js_errors


def test_click_point_calls_python_on_click(widgets_page: Any) -> None:
    page = widgets_page
    assert page.locator(".mw-click-label").first.inner_text().strip() == "no click"
    page.locator(f"{CLICK} .js-plotly-plot").first.scroll_into_view_if_needed()
    x, y = lab.data_to_page(page, CLICK, 6.0, 9.0)  # point index 6 of the notebook's data
    page.mouse.move(x + 20, y + 20)
    page.mouse.move(x, y, steps=4)
    page.mouse.click(x, y)
    assert _wait_label(page, ".mw-click-label", "clicked") == "clicked 6"
    lab.screenshot(page, "click_after", CLICK)


def test_box_selection_calls_python_on_selection(widgets_page: Any) -> None:
    page = widgets_page
    data = lab.plot_data(page, SELECT, 0)
    xs, ys = np.asarray(data["x"]), np.asarray(data["y"])
    x_lo, x_hi, y_lo, y_hi = 2.0, 7.5, 1.75, 6.5
    expected = np.flatnonzero((xs > x_lo) & (xs < x_hi) & (ys > y_lo) & (ys < y_hi))
    assert 3 <= expected.size < xs.size  # a real, partial selection
    # no point within 0.1 data units (~3 px) of the box edge: pixel rounding cannot flip one
    m = 0.1
    outer = (xs > x_lo - m) & (xs < x_hi + m) & (ys > y_lo - m) & (ys < y_hi + m)
    inner = (xs > x_lo + m) & (xs < x_hi - m) & (ys > y_lo + m) & (ys < y_hi - m)
    assert not (outer & ~inner).any()

    page.locator(f"{SELECT} .js-plotly-plot").first.scroll_into_view_if_needed()
    x0, y0 = lab.data_to_page(page, SELECT, x_lo, y_hi)
    x1, y1 = lab.data_to_page(page, SELECT, x_hi, y_lo)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=12)
    page.mouse.up()
    text = _wait_label(page, ".mw-select-label", "selected ")
    got = [int(i) for i in text.removeprefix("selected ").split(",")]
    assert got == expected.tolist()
    lab.screenshot(page, "select_after", SELECT)


def test_lab_server_stop_kills_server_and_kernels() -> None:
    """``LabServer.stop`` leaves no server or kernel process behind."""
    import psutil

    server = lab.start_lab()
    try:
        req = urllib.request.Request(f"{server.url}/api/kernels", method="POST",
                                     data=json.dumps({"name": "python3"}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert json.load(resp)["name"] == "python3"
        tree = [server.proc.pid, *(c.pid for c in psutil.Process(server.proc.pid).children(True))]
        assert len(tree) >= 2  # server + kernel
    finally:
        server.stop()
    alive = [pid for pid in tree if psutil.pid_exists(pid)
             and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert not server.tmp.exists()
