"""FlowView's standalone HTML export opened from file:// in headless chromium: no kernel anywhere.

Step, Play, click-to-jump, box selection, recolour and model-driven state are checked against
values computed here from the arrays the view was built from (exact float32 coordinates and
sample indices), not only "something changed".
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lab

sys.path.insert(0, str(Path(__file__).parents[1] / "plotting"))
from toy_results import embedding, flow_field  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

ROOT = ".mw-fv"
STATE, EMB = ".mw-fv-state", ".mw-fv-embedding"
# 2-D clouds are WebGL point layers (flow_view_gl.js) under SVG marks for the point, its neighbours and
# the trail; plotly draws axes, colour bar and selection box. The 3-D state scene: test_flow_view_scene.py.
VIEW_JS = "document.querySelector('#mw-root-flow').__mwFlowView"
START = 20


def _build(tmp: Path, **kwargs: Any) -> dict[str, Any]:
    from marble_widgets.widgets.flow_view import FlowView

    ff = flow_field()
    emb = embedding(ff)
    # the toy's two trials per condition nearly coincide: shift odd trials so that every point can be
    # clicked on its own (no twin within a few pixels)
    emb = emb.copy(data=emb.values + 0.6 * (ff["trial"].values % 2)[:, None])
    view = FlowView(ff, emb, sample=START, **kwargs)
    path = view.to_html(tmp / "flow.html")
    arrays = view.arrays()
    pos_of = np.empty_like(arrays["order"])
    pos_of[arrays["order"]] = np.arange(arrays["order"].size)
    return {"url": path.resolve().as_uri(), "a": arrays, "pos_of": pos_of, "meta": view._meta}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Toy flow field + embedding, its FlowView exported to HTML, and the arrays it was built from."""
    return _build(tmp_path_factory.mktemp("flow_view"))


def _open(page: Any, url: str) -> Any:
    page.goto(url)
    page.wait_for_selector(f"{ROOT}[data-ready=true]", timeout=30_000)
    _wait_drawn(page, START)
    return page


@pytest.fixture
def fv(page: Any, built: dict[str, Any]) -> Any:
    """The exported page, loaded and drawn at START."""
    return _open(page, built["url"])


def _wait_drawn(page: Any, sample: int, what: str = "drawn") -> None:
    page.wait_for_function("([s, w]) => document.querySelector('.mw-fv')?.dataset[w] === String(s)",
                           arg=[int(sample), what], timeout=10_000, polling=20)


def _wait_selection(page: Any, expected: Any) -> None:
    """Wait until the page's model holds selection ``expected`` (int32 indices)."""
    page.wait_for_function("""v => { const s = window.mwModel.get('_selection');
        const a = s instanceof DataView ? Array.from(new Int32Array(s.buffer, s.byteOffset, s.byteLength / 4)) : Array.from(s);
        return JSON.stringify(a) === JSON.stringify(v); }""", arg=[int(i) for i in expected], timeout=5_000, polling=20)


def _shown_selection(page: Any) -> dict[str, Any]:
    """The selection the views hold and how many points each point layer draws highlighted."""
    return page.evaluate(f"""() => {{ const v = {VIEW_JS};
        return {{selection: Array.from(v.selection), drawn: Object.fromEntries(Object.entries(v.layers).map(([k, l]) => [k, l.nSel]))}}; }}""")


def _wait_model(page: Any, name: str, value: Any) -> None:
    """Wait until the page's model (Python's side in a notebook) holds ``value``: sent within sync_ms."""
    page.wait_for_function("([n, v]) => JSON.stringify(window.mwModel.get(n)) === JSON.stringify(v)",
                           arg=[name, value], timeout=5_000, polling=20)


def _trace(page: Any, sel: str, i: int, keys: tuple[str, ...] = ("x", "y")) -> np.ndarray:
    data = lab.plot_data(page, sel, i, keys)
    return np.column_stack([np.asarray(data[k], dtype=float) for k in keys])


MARKS_JS = """panel => {
    const svg = document.querySelector(`.mw-fv-panel-${panel} .mw-fv-marks`);
    const centre = e => { const r = e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; };
    const cur = svg.querySelector('.mw-fv-current');
    const nbs = [...svg.querySelectorAll('.mw-fv-neighbours circle')].filter(c => !c.hasAttribute('display'));
    return {current: Number(cur.getAttribute('data-sample')), current_px: centre(cur),
            neighbours: nbs.map(c => Number(c.getAttribute('data-sample'))), neighbours_px: nbs.map(centre)};
}"""


def _assert_marks(page: Any, panel: str, sel: str, points: np.ndarray, i: int, nb: np.ndarray) -> None:
    """SVG marks of ``panel`` sit on sample ``i`` and its neighbours (pixels from plotly's own axes)."""
    marks = page.evaluate(MARKS_JS, panel)
    assert marks["current"] == i and marks["neighbours"] == nb.tolist()
    want = [lab.data_to_page(page, sel, *points[j]) for j in [i, *nb]]
    np.testing.assert_allclose([marks["current_px"], *marks["neighbours_px"]], want, atol=1.0)


def _assert_shows(page: Any, built: dict[str, Any], i: int) -> None:
    """Every view shows sample ``i``: the point, its neighbours (exact float32 values), the status."""
    a = built["a"]
    nb = a["neighbors"][i][a["neighbors"][i] >= 0]
    x, emb, v = a["x"].astype(float), a["embedding"].astype(float), a["v"].astype(float)
    _assert_marks(page, "state", STATE, x, i, nb)
    _assert_marks(page, "embedding", EMB, emb, i, nb)
    local = page.evaluate("""() => { const s = document.querySelector('.mw-fv-localsvg');
        const dots = [...s.querySelectorAll('circle[data-sample]')];
        const vec = s.querySelector('line[data-x]');
        return {samples: dots.map(c => Number(c.getAttribute('data-sample'))),
                xy: dots.map(c => [Number(c.getAttribute('data-x')), Number(c.getAttribute('data-y'))]),
                vector: [Number(vec.getAttribute('data-x')), Number(vec.getAttribute('data-y'))]}; }""")
    assert local["samples"] == nb.tolist()
    np.testing.assert_array_equal(np.reshape(local["xy"], (-1, 2)), x[nb] - x[i])
    np.testing.assert_allclose(local["vector"], built["meta"]["arrow_scale"] * v[i], rtol=1e-12)
    assert page.locator(".mw-fv-status").inner_text().startswith(f"sample {i} ·")
    _wait_model(page, "sample", i)


def test_export_opens_offline_at_its_sample(fv: Any, built: dict[str, Any]) -> None:
    _assert_shows(fv, built, START)
    lab.screenshot(fv, "flow_view_export")
    assert not fv.js_errors


def test_arrow_keys_and_buttons_step_in_trajectory_order(fv: Any, built: dict[str, Any]) -> None:
    order, p = built["a"]["order"], int(built["pos_of"][START])
    fv.locator(ROOT).focus()
    for _ in range(3):
        fv.keyboard.press("ArrowRight")
    _wait_drawn(fv, order[p + 3])
    _assert_shows(fv, built, int(order[p + 3]))
    fv.keyboard.press("ArrowLeft")
    _wait_drawn(fv, order[p + 2])
    fv.locator(".mw-fv-next").click()
    _wait_drawn(fv, order[p + 3])
    _assert_shows(fv, built, int(order[p + 3]))
    # the last step of a trajectory goes on to the next trajectory's first
    offsets = built["a"]["offsets"]
    last = int(order[offsets[1] - 1])
    fv.evaluate("s => window.mwModel.set('sample', s)", last)
    _wait_drawn(fv, last)
    assert fv.locator(".mw-fv-slider").input_value() == str(offsets[1] - 1 - offsets[0])
    fv.locator(ROOT).focus()
    fv.keyboard.press("ArrowRight")
    _wait_drawn(fv, order[offsets[1]])
    assert fv.locator(".mw-fv-slider").input_value() == "0"
    assert fv.locator(".mw-fv-trajectory").input_value() == "1"
    assert not fv.js_errors


def test_slider_scrubs_the_current_trajectory(fv: Any, built: dict[str, Any]) -> None:
    order, offsets = built["a"]["order"], built["a"]["offsets"]
    t = int(np.searchsorted(offsets, built["pos_of"][START], side="right") - 1)
    fv.locator(".mw-fv-slider").fill("11")
    _wait_drawn(fv, order[offsets[t] + 11])
    _assert_shows(fv, built, int(order[offsets[t] + 11]))


def _isolated(points: np.ndarray) -> int:
    """Index of the point farthest from its nearest neighbour (a click cannot hit another)."""
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return int(np.argmax(d.min(axis=1)))


def test_click_in_embedding_jumps_there(fv: Any, built: dict[str, Any]) -> None:
    emb = built["a"]["embedding"].astype(float)
    target = _isolated(emb)
    assert target != START
    x, y = lab.data_to_page(fv, EMB, *emb[target])
    others = np.array([lab.data_to_page(fv, EMB, *p) for p in np.delete(emb, target, axis=0)])
    assert np.linalg.norm(others - [x, y], axis=1).min() > 12  # the click cannot pick another point
    fv.mouse.click(x, y)
    _wait_drawn(fv, target)
    _assert_shows(fv, built, target)


def test_click_on_a_highlighted_neighbour_jumps_to_it(fv: Any, built: dict[str, Any]) -> None:
    marks = fv.evaluate(MARKS_JS, "state")
    # the neighbour whose mark overlaps no other mark, so the click cannot land on another
    px = np.asarray(marks["neighbours_px"])
    d = np.linalg.norm(px[:, None] - np.vstack([px, marks["current_px"]])[None], axis=-1)
    d[np.arange(len(px)), np.arange(len(px))] = np.inf
    k = int(np.argmax(d.min(axis=1)))
    assert d[k].min() > 12
    fv.mouse.click(*px[k])
    _wait_drawn(fv, marks["neighbours"][k])
    _assert_shows(fv, built, marks["neighbours"][k])


def _box(points: np.ndarray, margin: float) -> tuple[float, float, float, float, np.ndarray]:
    """A data box holding 3..40% of the points whose edges lie in gaps (no point within ``margin``)
    and whose drag corners are at least 3 ``margin`` from every point."""
    def edges(values: np.ndarray) -> np.ndarray:
        v = np.sort(values)
        return ((v[1:] + v[:-1]) / 2)[np.diff(v) > 2 * margin]

    xs, ys = points[:, 0], points[:, 1]
    for x0 in edges(xs):
        for x1 in edges(xs)[edges(xs) > x0]:
            for y0 in edges(ys):
                for y1 in edges(ys)[edges(ys) > y0]:
                    inner = (xs > x0) & (xs < x1) & (ys > y0) & (ys < y1)
                    # the drag starts/ends on empty plot, not on a point's (clickable) mark
                    corners = np.array([[x0, y1], [x1, y0]])
                    clear = np.linalg.norm(points[:, None] - corners[None], axis=-1).min() > 3 * margin
                    if 3 <= inner.sum() <= 0.4 * xs.size and clear:
                        return x0, x1, y0, y1, np.flatnonzero(inner)
    raise AssertionError("no clean selection box in the toy embedding")


def test_box_selection_in_embedding_sets_selection_and_highlights(fv: Any, built: dict[str, Any]) -> None:
    emb = built["a"]["embedding"].astype(float)
    x0, x1, y0, y1, expected = _box(emb, 0.1)
    px0, py0 = lab.data_to_page(fv, EMB, x0, y1)
    px1, py1 = lab.data_to_page(fv, EMB, x1, y0)
    fv.mouse.move(px0, py0)
    fv.mouse.down()
    fv.mouse.move(px1, py1, steps=10)
    fv.mouse.up()
    fv.wait_for_function("n => document.querySelector('.mw-fv').dataset.selected === String(n)",
                         arg=int(expected.size), timeout=10_000)
    _wait_selection(fv, expected)
    assert _shown_selection(fv) == {"selection": expected.tolist(), "drawn": {"state": expected.size, "embedding": expected.size}}
    lab.screenshot(fv, "flow_view_export_selection")


def _expected_rgba(built: dict[str, Any], key: str) -> np.ndarray:
    """RGBA bytes of ``key`` computed here: linear RGB interpolation between the scale's stops (alpha 0.7)."""
    from matplotlib.colors import to_rgb

    spec = built["meta"]["colors"][key]
    values = built["a"][f"color:{key}"].astype(float)
    t = np.clip((values - spec["cmin"]) / (spec["cmax"] - spec["cmin"]), 0, 1)
    stops = np.array([s[0] for s in spec["colorscale"]], dtype=float)
    colours = np.array([to_rgb(s[1]) for s in spec["colorscale"]]) * 255
    rgb = np.column_stack([np.interp(t, stops, colours[:, c]) for c in range(3)])
    return np.column_stack([np.rint(rgb), np.full(values.size, np.floor(0.7 * 255 + 0.5))])


def test_recolour_restyles_both_clouds(fv: Any, built: dict[str, Any]) -> None:
    fv.locator(".mw-fv-color").select_option("position")
    fv.wait_for_function("() => document.querySelector('.mw-fv').dataset.colorBy === 'position'")
    want = _expected_rgba(built, "position")
    for name in ("state", "embedding"):
        got = fv.evaluate(f"n => Array.from({VIEW_JS}.layers[n].colours)", name)
        np.testing.assert_allclose(np.reshape(got, (-1, 4)), want, atol=1)
    bar = fv.evaluate("() => document.querySelector('.mw-fv-embedding')._fullData[0].marker.colorbar.title.text")
    assert bar == "position"
    _wait_model(fv, "color_by", "position")
    # the model drives it back to categories: codes and the category colour scale
    fv.evaluate("() => window.mwModel.set('color_by', 'condition')")
    fv.wait_for_function("() => document.querySelector('.mw-fv').dataset.colorBy === 'condition'")
    got = fv.evaluate(f"() => Array.from({VIEW_JS}.layers.state.colours)")
    np.testing.assert_array_equal(np.reshape(got, (-1, 4)), _expected_rgba(built, "condition"))
    assert fv.locator(".mw-fv-color").input_value() == "condition"


def test_play_advances_one_sample_per_frame_in_order(fv: Any, built: dict[str, Any]) -> None:
    fv.evaluate("""() => { window.__seen = [];
        document.querySelector('#mw-root-flow').addEventListener('mw-drawn', e => window.__seen.push(e.detail.sample)); }""")
    fv.locator(".mw-fv-play").click()
    fv.wait_for_function("() => window.__seen.length >= 12", timeout=15_000)
    _wait_model(fv, "playing", True)
    fv.locator(".mw-fv-play").click()
    _wait_model(fv, "playing", False)
    seen = fv.evaluate("() => window.__seen")
    order, p = built["a"]["order"], int(built["pos_of"][START])
    assert seen == order[p + 1:p + 1 + len(seen)].tolist()
    # the model starts and stops it too
    fv.evaluate("() => window.mwModel.set('playing', true)")
    fv.wait_for_function("n => window.__seen.length >= n + 5", arg=len(seen), timeout=15_000)
    fv.evaluate("() => window.mwModel.set('playing', false)")
    assert fv.locator(".mw-fv-play").inner_text().strip().endswith("Play")


def test_model_sets_sample_and_selection(fv: Any, built: dict[str, Any]) -> None:
    fv.evaluate("() => window.mwModel.set('sample', 77)")
    _wait_drawn(fv, 77)
    _assert_shows(fv, built, 77)
    fv.evaluate("() => window.mwModel.set('_selection', [60, 4, 9])")
    fv.wait_for_function("() => document.querySelector('.mw-fv').dataset.selected === '3'")
    assert _shown_selection(fv) == {"selection": [4, 9, 60], "drawn": {"state": 3, "embedding": 3}}
    assert not fv.js_errors


def test_browser_to_model_sync_is_throttled(fv: Any, built: dict[str, Any]) -> None:
    """Eight steps within one task reach the model (Python's side) once, as the last value."""
    order, p = built["a"]["order"], int(built["pos_of"][START])
    fv.evaluate("""() => { window.__sends = []; const m = window.mwModel, save = m.save_changes;
        m.save_changes = () => { window.__sends.push(m.get('sample')); save(); };
        const root = document.querySelector('.mw-fv');
        for (let k = 0; k < 8; k++) root.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true})); }""")
    _wait_drawn(fv, order[p + 8])
    _wait_model(fv, "sample", int(order[p + 8]))
    fv.wait_for_timeout(400)  # nothing else is sent afterwards
    assert fv.evaluate("() => window.__sends") == [order[p + 8]]


# --- from MARBLE's results Dataset: frame view, transported vectors, features, behaviour -------------
@pytest.fixture(scope="module")
def built_res(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The toy results Dataset (flow field + inspection + feature coords) exported to HTML."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "widgets"))
    from test_flow_view import results_of
    from toy_results import inspect

    from marble_widgets.widgets.flow_view import FlowView

    ff = flow_field()
    view = FlowView(results_of(ff, inspect(ff)), sample=START)
    path = view.to_html(tmp_path_factory.mktemp("flow_view_res") / "flow.html")
    return {"url": path.resolve().as_uri(), "a": view.arrays(), "meta": view._meta}


LOCAL_JS = """() => { const s = document.querySelector('.mw-fv-localsvg');
    const num = (e, k) => Number(e.getAttribute(k));
    return {dots: [...s.querySelectorAll('circle[data-sample]')].map(c => [num(c, 'data-sample'), num(c, 'data-x'), num(c, 'data-y')]),
            moved: [...s.querySelectorAll('.mw-fv-transported line[data-sample]')].map(l => [num(l, 'data-sample'), num(l, 'data-tx'), num(l, 'data-ty')]),
            shown: getComputedStyle(s.querySelector('.mw-fv-transported')).display !== 'none'}; }"""


def _assert_frame_view(page: Any, built: dict[str, Any], i: int) -> None:
    """Local view of ``i``: offsets projected on the sample's frame, transported vectors verbatim."""
    a = built["a"]
    row = a["neighbors"][i]
    keep = (row >= 0) & (row != i)
    nb, cols = row[keep], np.flatnonzero(keep)
    frame = a["frame"][i].astype(float)  # (dim, 2)
    got = page.evaluate(LOCAL_JS)
    assert [d[0] for d in got["dots"]] == nb.tolist()
    offsets = (a["xf"][nb].astype(float) - a["xf"][i].astype(float)) @ frame
    np.testing.assert_allclose([d[1:] for d in got["dots"]], offsets, rtol=1e-9, atol=1e-12)
    t = a["transported"][i, cols].astype(float)
    finite = np.isfinite(t[:, 0])
    assert [m[0] for m in got["moved"]] == nb[finite].tolist()
    np.testing.assert_array_equal([m[1:] for m in got["moved"]], t[finite])


FEATURES_JS = """() => { const f = document.querySelector('.mw-fv').parentElement.__mwFlowView.features, c = f.canvas;
    const ctx = c.getContext('2d'), dpr = window.devicePixelRatio || 1, w = c.clientWidth / f.m, mid = c.clientHeight / 2;
    const pixel = (x, y) => Array.from(ctx.getImageData(Math.floor(x * dpr), Math.floor(y * dpr), 1, 1).data);
    const heights = Array.from(f.heights);
    return {sample: Number(c.dataset.sample), slots: Array.from(f.slots), heights, half: mid - 6,
            inside: heights.map((hg, s) => pixel((s + 0.5) * w, mid - hg / 2)),
            above: heights.map((hg, s) => pixel((s + 0.5) * w, mid - hg - Math.sign(hg) * 3))}; }"""


def _assert_feature_bars(page: Any, built: dict[str, Any], i: int) -> None:
    """Features panel of sample ``i``: one bar per feature, grouped by order, its height the (8-bit
    decoded) value over the panel's scale, drawn in its order's colour and ending there."""
    meta, values = built["meta"], built["a"]["features"][i].astype(float)
    got = page.evaluate(FEATURES_JS)
    assert got["sample"] == i and got["slots"] == [0, 1, 2, 3, 4, 5]  # already grouped by order: 0, 0, 1, 1, 1, 1
    want = np.minimum(1, np.abs(values) / meta["features"]["scale"]) * got["half"] * np.sign(values)
    np.testing.assert_allclose(got["heights"], want, rtol=1e-6)
    palette = [tuple(int(c[k:k + 2], 16) for k in (1, 3, 5)) for c in meta["theme"]["palette"]]
    for s, (inside, above) in enumerate(zip(got["inside"], got["above"])):
        assert tuple(inside[:3]) == palette[meta["features"]["order"][s]] and inside[3] == 255, s
        assert tuple(above[:3]) != tuple(inside[:3]), s  # the bar ends at its height
    assert page.locator(".mw-fv-featgroups span").all_inner_texts() == ["v (2)", "∂v (4)"]
    # hovering a bar names its feature and value
    box = page.locator(".mw-fv-featcanvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 2.5 / 6, box["y"] + box["height"] / 2)
    title = page.locator(".mw-fv-featcanvas").get_attribute("title")
    assert title == f"{meta['features']['names'][2]} (order 1, component 1 · d1) = {values[2]:.4g}".replace("e+0", "e+")


def test_results_view_shows_frame_transported_features_and_behaviour(page: Any, built_res: dict[str, Any]) -> None:
    fv = _open(page, built_res["url"])
    a, order = built_res["a"], built_res["a"]["order"]
    _assert_frame_view(fv, built_res, START)
    pos = int(np.flatnonzero(order == START)[0])
    fv.locator(ROOT).focus()
    fv.keyboard.press("ArrowRight")
    i = int(order[pos + 1])
    _wait_drawn(fv, i)
    _assert_frame_view(fv, built_res, i)
    _assert_feature_bars(fv, built_res, i)
    # behaviour panel: condition colours are categories, so it plots the first numeric variable
    cursor = fv.evaluate("""() => { const c = document.querySelector('.mw-fv-cursor');
        return [Number(c.dataset.sample), Number(c.dataset.time), Number(c.dataset.value)]; }""")
    assert cursor == [i, a["time"][i], float(a["color:position"][i])]
    fv.locator(".mw-fv-behaviour-key").select_option("hand_velocity[1]")
    _wait_model(fv, "behaviour", "hand_velocity[1]")
    value = fv.evaluate("() => Number(document.querySelector('.mw-fv-cursor').dataset.value)")
    assert value == float(a["color:hand_velocity[1]"][i])
    n_traj = fv.evaluate("() => Number(document.querySelector('.mw-fv-behavsvg polyline').dataset.n)")
    assert n_traj == 15
    lab.screenshot(fv, "flow_view_export_results")
    # the transported vectors toggle, from the page and from the model
    fv.locator(".mw-fv-transported-toggle").uncheck()
    _wait_model(fv, "show_transported", False)
    assert fv.evaluate(LOCAL_JS)["shown"] is False
    fv.evaluate("() => window.mwModel.set('show_transported', true)")
    assert fv.evaluate(LOCAL_JS)["shown"] is True
    assert not fv.js_errors


# --- the dashboard channel: views of one page follow each other's sample, in the page -----------------
@pytest.fixture(scope="module")
def built_pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One exported page with two FlowViews of the toy flow field on channel "c1" (at START and 0) and a
    third on no channel (at 0)."""
    from marble_widgets.widgets.flow_view import FlowView
    from marble_widgets.widgets.page import page_view, write_page

    ff = flow_field()
    emb = embedding(ff)
    views = {"a": FlowView(ff, emb, sample=START, channel="c1"), "b": FlowView(ff, emb, sample=0, channel="c1"),
             "c": FlowView(ff, emb, sample=0)}
    path = write_page(tmp_path_factory.mktemp("flow_view_pair") / "pair.html", "pair",
                      [page_view(k, v) for k, v in views.items()])
    return {"url": path.resolve().as_uri(), "a": views["a"].arrays()}


def _shown_in(page: Any, key: str) -> dict[str, Any]:
    """What view ``key`` shows: its sample, its state-panel marker's pixel centre and the data->px map."""
    return page.evaluate("""k => { const root = document.querySelector(`#mw-root-${k}`), v = root.__mwFlowView;
        const cur = root.querySelector('.mw-fv-panel-state .mw-fv-current'), r = cur.getBoundingClientRect();
        const gd = root.querySelector('.mw-fv-state'), fl = gd._fullLayout, box = gd.querySelector('.main-svg').getBoundingClientRect();
        return {sample: v.sample, drawn: Number(root.querySelector('.mw-fv').dataset.drawn), id: v.id,
                marker: [r.left + r.width / 2, r.top + r.height / 2], model: window.mwModels[k].get('sample'),
                axes: [box.left + fl.xaxis._offset, fl.xaxis._length, ...fl.xaxis.range,
                       box.top + fl.yaxis._offset, fl.yaxis._length, ...fl.yaxis.range]}; }""", key)


def _assert_at(page: Any, key: str, x: np.ndarray, i: int) -> None:
    page.wait_for_function("([k, s]) => document.querySelector(`#mw-root-${k} .mw-fv`).dataset.drawn === String(s)",
                           arg=[key, int(i)], timeout=10_000, polling=20)
    got = _shown_in(page, key)
    assert got["sample"] == got["drawn"] == i
    x0, w, xa, xb, y0, hgt, ya, yb = got["axes"]
    want = [x0 + (x[i, 0] - xa) / (xb - xa) * w, y0 + (yb - x[i, 1]) / (yb - ya) * hgt]
    np.testing.assert_allclose(got["marker"], want, atol=1.0)


def test_views_on_one_channel_follow_each_others_sample(page: Any, built_pair: dict[str, Any]) -> None:
    page.goto(built_pair["url"])
    page.wait_for_function("() => document.querySelectorAll('.mw-fv[data-ready=true]').length === 3")
    a, x = built_pair["a"], built_pair["a"]["x"].astype(float)
    order = a["order"]
    p = int(np.flatnonzero(order == START)[0])
    # loading publishes nothing: each view is at its own start
    assert [_shown_in(page, k)["sample"] for k in "abc"] == [START, 0, 0]
    # record what the channel carries
    page.evaluate("""() => { window.__heard = []; const t = globalThis.__marbleWidgets.channels.c1;
        for (const topic of ['sample', 'selection']) t.addEventListener(topic, e => window.__heard.push(
            [topic, e.detail.value instanceof Int32Array ? Array.from(e.detail.value) : e.detail.value, e.detail.source])); }""")
    page.locator("#mw-root-a .mw-fv").focus()
    page.keyboard.press("ArrowRight")
    i = int(order[p + 1])
    _assert_at(page, "a", x, i)
    _assert_at(page, "b", x, i)  # b followed a, exactly as a click there would: its model hears it too
    page.wait_for_function("s => window.mwModels.b.get('sample') === s", arg=i, timeout=5_000)
    assert _shown_in(page, "c")["sample"] == 0  # not on the channel
    ida, idb = _shown_in(page, "a")["id"], _shown_in(page, "b")["id"]
    assert ida != idb and page.evaluate("() => window.__heard") == [["sample", i, ida]]  # b does not echo
    # a publication from elsewhere (another kind of view) moves both views; bad values are ignored
    page.evaluate("""() => { const t = globalThis.__marbleWidgets.channels.c1, say = v => t.dispatchEvent(
        new CustomEvent('sample', {detail: {value: v, source: 'raster-1'}}));
        say(-1); say(1e9); say(2.5); say('7'); say(7); }""")
    _assert_at(page, "a", x, 7)
    _assert_at(page, "b", x, 7)
    # Python (the model) moves b: it publishes, a follows
    page.evaluate("() => window.mwModels.b.set('sample', 11)")
    _assert_at(page, "a", x, 11)
    # a selection set on a goes out as sample positions
    page.evaluate("() => window.__heard.length = 0")
    page.evaluate("() => window.mwModels.a.set('_selection', [3, 1, 2])")
    page.wait_for_function("() => window.__heard.length > 0")
    assert page.evaluate("() => window.__heard") == [["selection", [1, 2, 3], ida]]
    assert not page.js_errors
