"""The dashboard's one-page export opened from file://: every view drawn, and step, heatmap click,
pair pickers and model-driven state change exactly what they should, without a kernel."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import dashboard_checks as dc

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    board = dc.toy_dashboard()
    path = board.to_html(Path(tmp_path_factory.mktemp("dash")) / "dashboard.html")
    return {"url": path.resolve().as_uri(), "ref": dc.reference(), "size": path.stat().st_size, "channel": board.channel}


@pytest.fixture
def board(page: Any, built: dict[str, Any]) -> Any:
    page.goto(built["url"])
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    dc.wait_ready(page)
    return page


def test_every_view_drawn_from_file(board: Any, built: dict[str, Any]) -> None:
    ref = built["ref"]
    dc.assert_flow_at(board, ref, dc.START)
    dc.assert_pair_shown(board, ref, "left", "right")
    dc.assert_training(board, ref)
    dc.assert_raster_follows(board, ref, dc.START)
    assert board.evaluate("() => Object.keys(window.mwModels)") == ["flow", "raster", "alignment", "training"]
    assert {board.evaluate(f"() => window.mwModels.{k}.get('channel')") for k in ("flow", "raster")} == {built["channel"]}
    dc.lab.screenshot(board, "dashboard_export")
    assert not board.js_errors


def test_step_and_alignment_pair_change_in_the_page(board: Any, built: dict[str, Any]) -> None:
    ref = built["ref"]
    want = dc.step_right(board, ref, 3)
    dc.wait(board, "s => window.mwModels.flow.get('sample') === s", want)  # reported to the (in-page) model
    dc.click_heatmap_cell(board, ref, *dc.CLICKED)
    dc.assert_pair_shown(board, ref, *dc.CLICKED)
    dc.wait(board, "p => JSON.stringify(window.mwModels.alignment.get('pair')) === p", '["up","left"]')
    board.locator(".mw-av-target").first.select_option(str(ref["groups"].index("right")))
    dc.assert_pair_shown(board, ref, "up", "right")
    assert not board.js_errors


def test_raster_follows_the_flow_view_and_a_click_moves_it(board: Any, built: dict[str, Any]) -> None:
    ref = built["ref"]
    want = dc.step_right(board, ref, 3)
    dc.assert_raster_follows(board, ref, want)  # in the page, through the dashboard's channel
    target = ref["time"][want] + 0.312  # between two samples of one trial (0.05 s apart)
    jumped = dc.click_raster(board, ref, target)
    assert abs(ref["time"][jumped] - target) < 0.05 and jumped != want
    dc.assert_flow_at(board, ref, jumped)
    dc.assert_raster_follows(board, ref, jumped)
    dc.wait(board, "s => window.mwModels.flow.get('sample') === s && window.mwModels.raster.get('sample') === s", jumped)
    assert not board.js_errors


def test_alignment_overlay_repaints_on_zoom(board: Any, built: dict[str, Any]) -> None:
    ref = built["ref"]
    tgt, _ = dc.aligned_pair(ref, "left", "right")
    x, y = (float(v) for v in tgt[3])
    # zoom the overlay's axes onto a small box around the target's 4th point: it must be painted there again
    board.evaluate("""async ([x, y]) => { const gd = document.querySelector('.mw-av-overlay');
        const P = Object.values(globalThis.__marbleWidgets.plotly)[0];
        await (await P).relayout(gd, { 'xaxis.range': [x - 0.3, x + 0.7], 'yaxis.range': [y - 0.6, y + 0.4] }); }""", [x, y])
    assert board.evaluate("() => document.querySelector('.mw-av-overlay').layout.xaxis.range") == [x - 0.3, x + 0.7]
    dc.assert_overlay_painted(board, tgt[3])
    assert not board.js_errors


def test_model_state_drives_the_views(board: Any, built: dict[str, Any]) -> None:
    ref = built["ref"]
    board.evaluate("() => window.mwModels.alignment.set('pair', ['right', 'left'])")
    dc.assert_pair_shown(board, ref, "right", "left")
    board.evaluate("() => window.mwModels.flow.set('sample', 77)")
    dc.assert_flow_at(board, ref, 77)
    dc.assert_raster_follows(board, ref, 77)
    assert not board.js_errors


def test_training_view_draws_diffusion_time_below_the_losses(page: Any, tmp_path: Path) -> None:
    import numpy as np

    from marble_widgets.widgets import TrainingView

    view = TrainingView(n_epochs=4, throttle_s=0.0)
    for e in range(4):
        view({"epoch": e, "n_epochs": 4, "train_loss": 1.0 / (e + 1), "val_loss": 0.9 - 0.1 * e, "lr": 0.01,
              "diffusion_time": 0.25 * (e + 1), "elapsed": 1.0})
    page.goto(view.to_html(tmp_path / "training.html").resolve().as_uri())
    dc.wait(page, "() => document.querySelector('.mw-tv')?.dataset.epochs === '4'")
    got = dc.lab.plot_data(page, ".mw-tv-plot", 3)
    np.testing.assert_array_equal(got["y"], [0.25, 0.5, 0.75, 1.0])
    domains = page.evaluate("() => { const l = document.querySelector('.mw-tv-plot')._fullLayout; "
                            "return [l.yaxis.domain, l.yaxis3.domain]; }")
    assert domains == [[0.36, 1], [0, 0.24]]
    assert page.locator(".mw-tv-stop").first.is_disabled()  # finished: nothing left to stop
    assert not page.js_errors
