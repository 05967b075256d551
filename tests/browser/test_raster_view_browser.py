"""RasterView opened from file://: the cursor follows the page channel exactly, a click jumps to the nearest
sample and publishes it, Python-set state drives it. Expected times and samples come from the toy flow field."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dashboard_checks as dc

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]
CHANNEL = "test-channel"
WINDOW = 2.0


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import toy_results

    from marble_widgets.widgets.page import THEME
    from marble_widgets.widgets.raster_view import RasterView

    ff = toy_results.flow_field()
    view = RasterView(toy_results.recording(ff), ff, window=WINDOW, channel=CHANNEL, sample=dc.START)
    path = view.to_html(Path(tmp_path_factory.mktemp("raster")) / "raster.html")
    return {"url": path.resolve().as_uri(), "time": ff["time"].values, "highlight": THEME["highlight"]}


@pytest.fixture
def raster(page: Any, built: dict[str, Any]) -> Any:
    page.goto(built["url"])
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    page.wait_for_selector(".mw-rv[data-ready=true]")
    return page


def test_drawn_at_the_start_sample(raster: Any, built: dict[str, Any]) -> None:
    dc.assert_raster_at(raster, built["time"][dc.START], dc.START, built["highlight"])
    state = dc.raster_state(raster)
    assert (state["lo"], state["hi"]) == (built["time"][dc.START] - WINDOW, built["time"][dc.START] + WINDOW)
    assert raster.locator(".mw-rv-status").inner_text() == f"sample {dc.START} · t = {built['time'][dc.START]:.3f} s"
    dc.lab.screenshot(raster, "raster_view", ".mw-rv")
    assert not raster.js_errors


def test_publishing_a_sample_moves_the_cursor_to_its_time(raster: Any, built: dict[str, Any]) -> None:
    for s in (61, 3, 89):
        dc.publish_sample(raster, CHANNEL, s)
        dc.assert_raster_at(raster, built["time"][s], s, built["highlight"])
    # followed, not re-published; reported to the (in-page) model, throttled
    dc.wait(raster, "s => window.mwModels.raster.get('sample') === s", 89)
    assert raster.evaluate("() => window.mwModels.raster.get('time')") == built["time"][89]
    assert not raster.js_errors


def test_a_click_jumps_to_the_nearest_sample_and_publishes_it(raster: Any, built: dict[str, Any]) -> None:
    times = built["time"]
    raster.evaluate("""name => { window.__heard = [];
        globalThis.__marbleWidgets.channels[name].addEventListener('sample', e => window.__heard.push(e.detail.value)); }""",
                    CHANNEL)
    state = dc.raster_state(raster)
    target = times[dc.START] + 0.312  # between two samples of one trial (0.05 s apart): the nearer one wins
    x = dc.raster_x(state, target)
    raster.mouse.click(x, state["top"] + 40)
    # the time the click pixel stands for, then the sample nearest to it (computed here, not in the page)
    clicked = state["lo"] + (round(x) - state["left"] - dc.RASTER_MARGIN["l"]) / (
        state["width"] - dc.RASTER_MARGIN["l"] - dc.RASTER_MARGIN["r"]) * (state["hi"] - state["lo"])
    want = int(np.argmin(np.abs(times - clicked)))
    assert abs(times[want] - target) < 0.05
    dc.assert_raster_at(raster, times[want], want, built["highlight"])
    assert raster.evaluate("() => window.__heard") == [want]
    dc.wait(raster, "s => window.mwModels.raster.get('sample') === s", want)
    assert not raster.js_errors


def test_model_state_drives_the_raster(raster: Any, built: dict[str, Any]) -> None:
    raster.evaluate("name => { window.__heard = []; globalThis.__marbleWidgets.channels[name]"
                    ".addEventListener('sample', e => window.__heard.push(e.detail.value)); }", CHANNEL)
    raster.evaluate("() => window.mwModels.raster.set('sample', 44)")
    dc.assert_raster_at(raster, built["time"][44], 44, built["highlight"])
    assert raster.evaluate("() => window.__heard") == [44]  # Python-set samples move the linked views too
    raster.evaluate("() => window.mwModels.raster.set('window', 0.5)")
    dc.wait(raster, "t => Number(document.querySelector('.mw-rv').dataset.hi) === t", built["time"][44] + 0.5)
    assert not raster.js_errors
