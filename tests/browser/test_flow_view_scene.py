"""FlowView's 3-D state scene (``dims=3``, ``static/flow_view_scene.js``) in the exported page from file://.

Every pixel position is checked against the orthographic turntable projection computed here from the
camera the page reports and the float32 positions the view was built from (the formula is the one the
scene's module header documents); colours against RGBA computed here from the colour scale.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lab
from test_flow_view_browser import flow_field  # noqa: F401  (the toy flow field, tests/plotting/toy_results.py)
from test_flow_view_browser import ROOT, START, _build, _expected_rgba, _open, _wait_drawn

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

EXPORTED = "document.querySelector('#mw-root-flow').__mwFlowView"
SCENE_JS = f"{EXPORTED}.scene"
TRAIL = 40  # flow_view.js: samples of the trajectory drawn behind the point
HALF, FIT, DRAG_RAD_PER_PX, SIZE = 0.55, 1.9, 0.008, 4  # flow_view_scene.js constants


@pytest.fixture(scope="module")
def built3(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _build(tmp_path_factory.mktemp("flow_view_3d"), dims=3)


@pytest.fixture
def sc(page: Any, built3: dict[str, Any]) -> Any:
    page = _open(page, built3["url"])
    _wait_drawn(page, START, "sceneDrawn")
    return page


def _scene(page: Any, view: str = EXPORTED) -> dict[str, Any]:
    """Camera, box size, full-draw count and the marks as the page shows them (SVG attributes, page px);
    ``view``: JS of the view's handle (``el.__mwFlowView``)."""
    return page.evaluate(f"""() => {{ const s = {view}.scene, svg = s.marks.svg, r = s.canvas.getBoundingClientRect();
        const cur = svg.querySelector('.mw-fv-current'), b = cur.getBoundingClientRect();
        const nbs = [...svg.querySelectorAll('.mw-fv-neighbours circle')].filter(c => !c.hasAttribute('display'));
        const trail = svg.querySelector('.mw-fv-trail').getAttribute('points').trim();
        return {{camera: {{...s.camera}}, w: s.w, h: s.h, bar: !!s.bar, splats: s.splats, rect: [r.left, r.top],
                current: Number(cur.getAttribute('data-sample')), current_px: cur.getAttribute('data-px').split(',').map(Number),
                current_page: [b.left + b.width / 2, b.top + b.height / 2],
                neighbours: nbs.map(c => Number(c.getAttribute('data-sample'))),
                neighbours_px: nbs.map(c => [Number(c.getAttribute('cx')), Number(c.getAttribute('cy'))]),
                trail_px: trail ? trail.split(' ').map(p => p.split(',').map(Number)) : []}}; }}""")


def _project(x: np.ndarray, all_x: np.ndarray, cam: dict[str, float], w: float, h: float) -> np.ndarray:
    """(px, py, depth) of rows ``x`` in CSS px of the scene box, computed independently of the page."""
    lo, hi = all_x.min(axis=0), all_x.max(axis=0)
    mid, half = (lo + hi) / 2, HALF * (hi - lo)
    u = (x - mid) / half
    t, p = cam["azimuth"], cam["elevation"]
    a = np.cos(t) * u[:, 0] - np.sin(t) * u[:, 1]
    b = np.sin(t) * u[:, 0] + np.cos(t) * u[:, 1]
    s = cam["zoom"] * min(w, h) / (2 * FIT)
    return np.column_stack([w / 2 + s * a, h / 2 - s * (np.sin(p) * b + np.cos(p) * u[:, 2]),
                            np.cos(p) * b - np.sin(p) * u[:, 2]])


def _assert_marks_at(got: dict[str, Any], built3: dict[str, Any], i: int) -> None:
    """The point, its neighbours and its trail sit at their independently projected pixels."""
    a, x = built3["a"], built3["a"]["x"].astype(float)
    nb = a["neighbors"][i][(a["neighbors"][i] >= 0) & (a["neighbors"][i] != i)]
    order, p = a["order"], int(built3["pos_of"][i])
    start = a["offsets"][np.searchsorted(a["offsets"], p, side="right") - 1]
    trail = order[max(start, p - TRAIL):p + 1]
    assert got["current"] == i and got["neighbours"] == nb.tolist()
    proj = lambda idx: _project(x[idx], x, got["camera"], got["w"], got["h"])[:, :2]  # noqa: E731
    np.testing.assert_allclose(got["current_px"], proj([i])[0], atol=1e-6)
    np.testing.assert_allclose(got["neighbours_px"], proj(nb), atol=1e-6)
    np.testing.assert_allclose(got["trail_px"], proj(trail), atol=1e-4)  # SVG points text: ~6 digits
    np.testing.assert_allclose(got["current_page"], np.add(got["rect"], proj([i])[0]), atol=0.5)  # where it is painted


def test_step_moves_the_marks_to_their_projection_and_leaves_the_cloud(sc: Any, built3: dict[str, Any]) -> None:
    before = _scene(sc)
    assert before["camera"] == {"azimuth": -0.65, "elevation": 0.42, "zoom": 1} and not before["bar"]
    _assert_marks_at(before, built3, START)
    order, p = built3["a"]["order"], int(built3["pos_of"][START])
    sc.locator(ROOT).focus()
    for k in (1, 2):
        sc.keyboard.press("ArrowRight")
        _wait_drawn(sc, int(order[p + k]), "sceneDrawn")
        got = _scene(sc)
        _assert_marks_at(got, built3, int(order[p + k]))
        assert got["splats"] == before["splats"]  # the cloud's image is not redrawn on a step
    stats = sc.evaluate("() => document.querySelector('#mw-root-flow').__mwFlowView.stats")
    assert stats["sceneFrames"] == stats["frames"]  # the scene moves in every frame the 2-D views do
    lab.screenshot(sc, "flow_view_export_3d", ".mw-fv-panel-state")
    assert not sc.js_errors


def test_drag_rotates_wheel_zooms_double_click_resets(sc: Any, built3: dict[str, Any]) -> None:
    before = _scene(sc)
    x0, y0 = before["rect"][0] + 30, before["rect"][1] + 30  # an empty corner of the box
    sc.mouse.move(x0, y0)
    sc.mouse.down()
    sc.mouse.move(x0 + 60, y0 - 25, steps=5)
    sc.mouse.up()
    sc.wait_for_function(f"n => {SCENE_JS}.splats > n", arg=before["splats"])
    got = _scene(sc)
    want = {"azimuth": -0.65 + 60 * DRAG_RAD_PER_PX, "elevation": 0.42 - 25 * DRAG_RAD_PER_PX, "zoom": 1}
    assert got["camera"] == pytest.approx(want, abs=1e-12)
    _assert_marks_at(got, built3, START)  # same sample (a drag is no click), marks at the new projection
    assert np.linalg.norm(np.subtract(got["current_px"], before["current_px"])) > 1
    sc.mouse.move(x0, y0)
    sc.mouse.wheel(0, 200)
    sc.wait_for_function(f"() => {SCENE_JS}.camera.zoom < 1")
    sc.wait_for_function(f"n => {SCENE_JS}.splats > n", arg=got["splats"])
    zoomed = _scene(sc)
    assert zoomed["camera"]["zoom"] == pytest.approx(np.exp(-200 * 0.0015), rel=1e-12)
    _assert_marks_at(zoomed, built3, START)
    sc.mouse.dblclick(x0, y0)
    sc.wait_for_function(f"() => {SCENE_JS}.camera.zoom === 1 && {SCENE_JS}.camera.azimuth === -0.65")
    assert int(sc.evaluate("() => document.querySelector('.mw-fv').dataset.sample")) == START
    assert not sc.js_errors


def _front_isolated(page: Any, built3: dict[str, Any], exclude: list[int], radius: float = 2 * SIZE) -> list[int]:
    """Samples with no nearer point (smaller depth) projected within ``radius`` px: their centre pixel is theirs."""
    got = _scene(page)
    x = built3["a"]["x"].astype(float)
    proj = _project(x, x, got["camera"], got["w"], got["h"])
    px, depth = proj[:, :2], proj[:, 2]
    d = np.linalg.norm(px[:, None] - px[None], axis=-1)
    d[depth[None, :] >= depth[:, None]] = np.inf  # [i, j]: only the points j in front of i can cover it
    inside = (px[:, 0] > 10) & (px[:, 0] < got["w"] - 10) & (px[:, 1] > 10) & (px[:, 1] < got["h"] - 10)
    return [int(i) for i in np.flatnonzero((d.min(axis=1) > radius) & inside) if i not in exclude]


PIXELS_JS = f"""idx => {{ const s = {SCENE_JS}, dpr = window.devicePixelRatio || 1;
    return idx.map(i => Array.from(s.ctx.getImageData(Math.floor(s.px[i] * dpr), Math.floor(s.py[i] * dpr), 1, 1).data)); }}"""


def test_click_jumps_to_the_nearest_projected_point(sc: Any, built3: dict[str, Any]) -> None:
    got = _scene(sc)
    x = built3["a"]["x"].astype(float)
    px = _project(x, x, got["camera"], got["w"], got["h"])[:, :2]
    marks = np.array([got["current_px"], *got["neighbours_px"]])
    d = np.linalg.norm(px[:, None] - px[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    free = np.linalg.norm(px[:, None] - marks[None], axis=-1).min(axis=1) > 15  # no mark under the click
    target = int(np.argmax(np.where(free, d.min(axis=1), -1)))
    click = px[target] + [1.0, -1.0]
    dist = np.linalg.norm(px - click, axis=1)
    assert np.argmin(dist) == target and np.sort(dist)[1] > dist[target] + 1  # unambiguous, computed here
    sc.mouse.click(got["rect"][0] + click[0], got["rect"][1] + click[1])
    _wait_drawn(sc, target, "sceneDrawn")
    _assert_marks_at(_scene(sc), built3, target)
    assert not sc.js_errors


def test_recolour_and_selection_paint_exact_points(sc: Any, built3: dict[str, Any]) -> None:
    sc.locator(".mw-fv-color").select_option("position")
    sc.wait_for_function("() => document.querySelector('.mw-fv').dataset.colorBy === 'position'")
    want = _expected_rgba(built3, "position")
    np.testing.assert_allclose(np.reshape(sc.evaluate(f"() => Array.from({SCENE_JS}.colours)"), (-1, 4)), want, atol=1)
    sc.wait_for_function(f"() => !{SCENE_JS}.queued")
    pts = _front_isolated(sc, built3, [])
    assert len(pts) >= 5
    # read back from the canvas (stored premultiplied at alpha 178/255: colour within 1-2 levels)
    np.testing.assert_allclose(sc.evaluate(PIXELS_JS, pts), want[pts], atol=2)
    # the model selects three of them: they are drawn in the selection colour, opaque; the rest faded
    sel = sorted(pts[:3])
    sc.evaluate("s => window.mwModel.set('_selection', s)", sel)
    sc.wait_for_function(f"() => {SCENE_JS}.nSel === 3 && !{SCENE_JS}.queued")
    sel_rgb = [int(built3["meta"]["theme"]["selection"][k:k + 2], 16) for k in (1, 3, 5)]
    np.testing.assert_array_equal(sc.evaluate(PIXELS_JS, sel), [[*sel_rgb, 255]] * 3)
    rest = sc.evaluate(PIXELS_JS, pts[3:])
    faded = np.floor(0.4 * want[pts[3:], :3] + 122.4)
    np.testing.assert_allclose(np.asarray(rest)[:, :3], faded, atol=2)
    assert not sc.js_errors


def test_play_moves_the_scene_every_frame_and_stops_where_the_views_stop(sc: Any, built3: dict[str, Any]) -> None:
    stats = "() => document.querySelector('#mw-root-flow').__mwFlowView.stats"
    before = sc.evaluate(stats)
    sc.locator(".mw-fv-play").click()
    sc.wait_for_function(f"() => ({stats})().frames >= {before['frames'] + 20}", timeout=20_000)
    sc.locator(".mw-fv-play").click()
    after = sc.evaluate(stats)
    assert after["sceneFrames"] - before["sceneFrames"] == after["frames"] - before["frames"]
    # the stop lands between frames: the sample shown last is the one the view moved to (its frame may be pending)
    sc.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    last = int(sc.evaluate("() => document.querySelector('.mw-fv').dataset.sample"))
    _wait_drawn(sc, last, "sceneDrawn")
    _assert_marks_at(_scene(sc), built3, last)
    assert not sc.js_errors


def test_colour_bar_without_embedding(page: Any, tmp_path: Path) -> None:
    """Without an embedding plot the scene carries the colour bar: the plot area leaves it room."""
    from marble_widgets.widgets.flow_view import FlowView

    ff = flow_field()
    path = FlowView(ff, dims=3, color_by="position", sample=START).to_html(tmp_path / "bar.html")
    page = _open(page, path.resolve().as_uri())
    _wait_drawn(page, START, "sceneDrawn")
    got = _scene(page)
    assert got["bar"]
    x = ff["x"].values.astype(np.float32).astype(float)
    cam, w, h = got["camera"], got["w"] - 78, got["h"]  # SCENE_BAR_ROOM
    np.testing.assert_allclose(got["current_px"], _project(x[[START]], x, cam, w, h)[0, :2], atol=1e-6)
    assert not page.js_errors
