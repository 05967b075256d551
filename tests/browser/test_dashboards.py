"""Real-browser checks of the MARBLE dashboards: ``dashboards.ipynb`` run once in JupyterLab.

The notebook fits a small MARBLE model on van der Pol flow fields and shows ``dashboard(...)``
(flow-field explorer, embedding explorer linked to it, alignment, training history) plus a live
``TrainingMonitor``. Expected values are computed here, independently of the page: the flow
field is rebuilt from the same seeded dataset, and each view is cross-checked against another.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import lab
from conftest import notebook_page_fixtures

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

BOARD = ".mw-dashboard"
FLOW = f"{BOARD} .mw-flow-explorer"
EMB = f"{BOARD} .mw-embedding-explorer"
ALIGN = f"{BOARD} .mw-alignment-view"
HISTORY = f"{BOARD} .mw-training-monitor"
MONITOR = ".mw-test-train"
TABS = ("Flow field", "Embedding", "Alignment", "Training")
# views per tab and the traces each must show once drawn
TAB_VIEWS = {
    "Flow field": {f"{FLOW} .mw-flow-state": 6, f"{FLOW} .mw-flow-neighbourhood": 6, f"{FLOW} .mw-flow-local": 2,
                   f"{FLOW} .mw-flow-embedding": 2, f"{FLOW} .mw-flow-features": 1},
    "Embedding": {f"{EMB} .mw-emb-embedding": 3, f"{EMB} .mw-emb-state": 6},
    "Alignment": {f"{ALIGN} .mw-align-heatmap": 2, f"{ALIGN} .mw-align-mds": 2, f"{ALIGN} .mw-align-overlay": 2},
    "Training": {f"{HISTORY} .mw-train-loss": 3},
}
N_EPOCHS = 3


@pytest.fixture(scope="module")
def flow_field() -> Any:
    """The notebook's flow field, rebuilt here (seeded dataset) as the independent reference."""
    from marble_widgets.datasets import van_der_pol

    return van_der_pol(mus=np.linspace(-1, 1, 4), n_initial=20)


_board_page, board_page = notebook_page_fixtures(
    "board_page", "dashboards.ipynb", {**TAB_VIEWS["Flow field"], f"{MONITOR} .mw-train-loss": 3},
    timeout=30, run_timeout=180)


def _show_tab(page: Any, title: str) -> None:
    """Click the dashboard tab ``title`` and wait until every view in it is drawn."""
    tab = page.locator(f"{BOARD} .mw-dashboard-tabs .lm-TabBar-tab", has_text=title).first
    tab.scroll_into_view_if_needed()
    tab.click()
    page.wait_for_function(
        "t => [...document.querySelectorAll('.mw-dashboard-tabs .lm-TabBar-tab.lm-mod-current')]"
        ".some(e => e.textContent.trim() === t)", arg=title, timeout=10_000)
    for sel, n_traces in TAB_VIEWS[title].items():
        lab.wait_for_plot(page, sel, n_traces, timeout=30)
        lab.wait_for_fit(page, sel)  # drawn in a hidden tab (700 px wide), resized once shown


def _text(page: Any, selector: str) -> str:
    return page.locator(selector).first.inner_text().strip()


def _wait_text_change(page: Any, selector: str, old: str, timeout_ms: int = 15_000) -> str:
    """Wait until the text at ``selector`` differs from ``old``; return the new text."""
    page.wait_for_function("([sel, old]) => (document.querySelector(sel)?.innerText || '').trim() !== old",
                           arg=[selector, old], timeout=timeout_ms, polling=50)
    return _text(page, selector)


def _status_sample(page: Any) -> int:
    """Sample index shown in the flow explorer's status line ("sample 12 · ...")."""
    match = re.match(r"sample (\d+) ", _text(page, f"{FLOW} .mw-flow-status"))
    assert match, _text(page, f"{FLOW} .mw-flow-status")
    return int(match.group(1))


def _trajectory(ff: Any, sample: int) -> np.ndarray:
    """Samples of ``sample``'s (condition, trial) in time order, from the reference flow field."""
    cond, trial, time = (ff[k].values for k in ("condition", "trial", "time"))
    same = np.flatnonzero((cond == cond[sample]) & (trial == trial[sample]))
    return same[np.argsort(time[same], kind="stable")]


def _xyz(page: Any, selector: str, trace: int) -> np.ndarray:
    data = lab.plot_data(page, selector, trace, ("x", "y", "z"))
    return np.column_stack([data[k] for k in ("x", "y", "z")]).astype(float)


# per view: plot width, its panel's inner width, and the drawn marks (SVG points/paths, WebGL
# canvases with pixels, heatmap images) - an empty plot has axes but no marks
_VIEW_GEOMETRY_JS = """sel => { const gd = %s(sel), panel = gd.closest('.mw-panel') || gd.parentElement;
    const marks = gd.querySelectorAll('.scatterlayer .point, .scatterlayer .js-line, .scatterlayer .js-fill,'
        + ' .barlayer .point, .heatmaplayer image, .imagelayer image, .gl-canvas-focus, .gl-container canvas,'
        + ' .annotation').length;
    return {plot: gd._fullLayout.width, box: gd.clientWidth, panel: panel.clientWidth, marks}; }""" % lab.GD_JS


def test_dashboard_renders_every_tab(board_page: Any) -> None:
    page = board_page
    titles = [t.strip() for t in page.locator(f"{BOARD} .mw-dashboard-tabs .lm-TabBar-tab").all_inner_texts()]
    assert titles == list(TABS)
    for title in reversed(TABS):  # every tab by clicking, ending on the first
        _show_tab(page, title)
        for sel in TAB_VIEWS[title]:
            geo = page.evaluate(_VIEW_GEOMETRY_JS, sel)
            # laid out at its own width, inside its panel (not the 700 px of a hidden first draw)
            assert abs(geo["plot"] - geo["box"]) <= 2 and geo["plot"] <= geo["panel"], (sel, geo)
            assert geo["marks"] > 0, (sel, geo)
        lab.screenshot(page, f"dashboard_{title.split()[0].lower()}", BOARD)
    assert not page.js_errors


def test_flow_slider_moves_marker_and_neighbourhood(board_page: Any, flow_field: Any) -> None:
    page = board_page
    _show_tab(page, "Flow field")
    start = _status_sample(page)
    traj = _trajectory(flow_field, start)
    pos = int(np.flatnonzero(traj == start)[0])
    assert _text(page, f"{FLOW} .mw-flow-slider .widget-readout") == str(pos)
    nb_before = _xyz(page, f"{FLOW} .mw-flow-neighbourhood", 1)  # neighbours trace
    np.testing.assert_allclose(_xyz(page, f"{FLOW} .mw-flow-state", -1), flow_field["x"].values[[start]])

    key, steps = ("ArrowLeft", pos) if pos > 0 else ("ArrowRight", 2)
    handle = page.locator(f"{FLOW} .mw-flow-slider .noUi-handle").first
    handle.focus()
    for _ in range(steps):
        handle.press(key)
    want = int(traj[0] if key == "ArrowLeft" else traj[pos + steps])
    page.wait_for_function("([sel, s]) => (document.querySelector(sel)?.innerText || '').startsWith('sample ' + s + ' ')",
                           arg=[f"{FLOW} .mw-flow-status", want], timeout=15_000, polling=50)
    x_want = flow_field["x"].values[[want]]
    page.wait_for_function(
        "([sel, x]) => { const gd = %s(sel), t = gd.data[gd.data.length - 1];"
        " return Math.abs(t.x[0] - x[0]) < 1e-9 && Math.abs(t.y[0] - x[1]) < 1e-9; }" % lab.GD_JS,
        arg=[f"{FLOW} .mw-flow-state", x_want[0, :2].tolist()], timeout=15_000, polling=50)
    np.testing.assert_allclose(_xyz(page, f"{FLOW} .mw-flow-state", -1), x_want, atol=1e-12)
    np.testing.assert_allclose(_xyz(page, f"{FLOW} .mw-flow-neighbourhood", 3), x_want, atol=1e-12)  # "point"
    nb_after = _xyz(page, f"{FLOW} .mw-flow-neighbourhood", 1)
    assert nb_after.shape != nb_before.shape or not np.allclose(nb_after, nb_before, equal_nan=True)
    lab.screenshot(page, "dashboard_flow_after_slider", FLOW)


def _page_points(page: Any, selector: str) -> np.ndarray:
    """Trace 0's points of the plot at ``selector`` in page pixels (n, 2)."""
    return np.asarray(page.evaluate(
        """sel => { const gd = %s(sel), fl = gd._fullLayout, t = gd.data[0];
            const box = gd.querySelector('.main-svg').getBoundingClientRect();
            return Array.from(t.x, (x, i) => [box.left + fl.xaxis._offset + fl.xaxis.l2p(x),
                                             box.top + fl.yaxis._offset + fl.yaxis.l2p(t.y[i])]); }""" % lab.GD_JS,
        selector), dtype=float)


def test_embedding_click_jumps_linked_flow_explorer(board_page: Any, flow_field: Any) -> None:
    page = board_page
    view = f"{EMB} .mw-emb-embedding"
    _show_tab(page, "Embedding")
    page.locator(view).first.scroll_into_view_if_needed()
    px = _page_points(page, view)
    d = np.linalg.norm(px[:, None] - px[None], axis=2) + np.eye(len(px)) * 1e9
    current = lab.plot_data(page, view, -1)
    candidates = np.argsort(-d.min(axis=1))
    j = int(next(c for c in candidates if not np.isclose(lab.plot_data(page, view, 0)["x"][c], current["x"][0])))
    assert d[j].min() > 8  # isolated on screen: the click cannot pick a neighbour
    x, y = px[j]
    page.mouse.move(x + 15, y + 15)
    page.mouse.move(x, y, steps=4)
    page.mouse.click(x, y)
    emb = lab.plot_data(page, view, 0)
    page.wait_for_function("([sel, x]) => Math.abs(%s(sel).data.slice(-1)[0].x[0] - x) < 1e-12" % lab.GD_JS,
                           arg=[view, emb["x"][j]], timeout=15_000, polling=50)
    _show_tab(page, "Flow field")
    assert _status_sample(page) == j
    np.testing.assert_allclose(_xyz(page, f"{FLOW} .mw-flow-state", -1), flow_field["x"].values[[j]], atol=1e-12)
    emb_marker = lab.plot_data(page, f"{FLOW} .mw-flow-embedding", -1)
    np.testing.assert_allclose([emb_marker["x"][0], emb_marker["y"][0]], [emb["x"][j], emb["y"][j]], atol=1e-12)


def _gap_edge(values: np.ndarray, lo_q: float, hi_q: float) -> float:
    """Midpoint of the widest gap between sorted ``values`` within the quantile window (a safe box edge)."""
    v = np.sort(values)
    i0, i1 = int(lo_q * (v.size - 1)), int(hi_q * (v.size - 1))
    k = i0 + int(np.argmax(np.diff(v[i0:i1 + 1])))
    return float(v[k] + v[k + 1]) / 2


def test_embedding_box_select_fills_selection_trace(board_page: Any) -> None:
    page = board_page
    view = f"{EMB} .mw-emb-embedding"
    _show_tab(page, "Embedding")
    gd = page.locator(view).first
    gd.scroll_into_view_if_needed()
    data = lab.plot_data(page, view, 0)
    xs, ys = np.asarray(data["x"], float), np.asarray(data["y"], float)
    gd.hover()  # the modebar shows on hover
    page.locator(f"{view} .modebar-btn[data-val='select']").first.click()
    # box edges in gaps between the points visible inside the panel
    panel = page.locator(f"{EMB} .mw-panel-embedding").first.bounding_box()
    px = _page_points(page, view)
    visible = ((px[:, 0] > panel["x"] + 60) & (px[:, 0] < panel["x"] + panel["width"] - 20)
               & (px[:, 1] > panel["y"] + 20) & (px[:, 1] < panel["y"] + panel["height"] - 60))
    x_lo, x_hi = _gap_edge(xs[visible], 0.15, 0.4), _gap_edge(xs[visible], 0.6, 0.85)
    y_lo, y_hi = _gap_edge(ys[visible], 0.15, 0.4), _gap_edge(ys[visible], 0.6, 0.85)
    x0, y0 = lab.data_to_page(page, view, x_lo, y_hi)
    x1, y1 = lab.data_to_page(page, view, x_hi, y_lo)
    # points more than 2 px inside the drawn box must be selected, points more than 2 px outside
    # must not; the few within 2 px of the outline may go either way (pixel rounding)
    (bx0, bx1), (by0, by1) = sorted((x0, x1)), sorted((y0, y1))
    def in_box(m: float) -> np.ndarray:
        return (px[:, 0] > bx0 - m) & (px[:, 0] < bx1 + m) & (px[:, 1] > by0 - m) & (px[:, 1] < by1 + m)
    sure, maybe = np.flatnonzero(in_box(-2)), np.flatnonzero(in_box(2))
    assert 3 <= sure.size and maybe.size < xs.size  # a real, partial selection

    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=12)
    page.mouse.up()
    drawn = page.evaluate("""sel => { const gd = %s(sel), sp = gd.data[0].selectedpoints;
        return {dragmode: gd._fullLayout.dragmode, selections: (gd.layout.selections || []).length,
                selectedpoints: sp ? sp.length : null}; }""" % lab.GD_JS, view)
    assert drawn["dragmode"] == "select" and drawn["selectedpoints"], drawn  # plotly itself selected
    try:
        status = _wait_text_change(page, f"{EMB} .mw-emb-status", "no selection")
    except Exception as err:  # noqa: BLE001 - the page selected points but Python never heard of it
        raise AssertionError(f"plotly selected {drawn['selectedpoints']} points (layout.selections: "
                             f"{drawn['selections']}) but the explorer's status stayed 'no selection' "
                             "(selection lost on its way to Python)") from err
    n_sel = int(re.fullmatch(r"(\d+) selected", status).group(1))
    page.wait_for_function("([sel, n]) => %s(sel).data.slice(-2)[0].x.length === n" % lab.GD_JS,
                           arg=[view, n_sel], timeout=15_000, polling=50)
    sel = lab.plot_data(page, view, -2)
    # map the overlay's points back to sample indices (coordinates are unique in this embedding)
    chosen = [int(np.flatnonzero((xs == x) & (ys == y))[0]) for x, y in zip(sel["x"], sel["y"])]
    assert chosen == sorted(chosen) and len(set(chosen)) == n_sel
    assert set(sure) <= set(chosen) <= set(maybe)
    lab.screenshot(page, "dashboard_embedding_selected", EMB)
    page.locator(f"{EMB} .mw-emb-clear").first.click()
    assert _wait_text_change(page, f"{EMB} .mw-emb-status", status) == "no selection"


def test_alignment_pair_change_updates_overlay_and_score(board_page: Any, flow_field: Any) -> None:
    page = board_page
    _show_tab(page, "Alignment")
    overlay = f"{ALIGN} .mw-align-overlay"
    source = page.locator(f"{ALIGN} .mw-align-source select").first.input_value()
    target_select = page.locator(f"{ALIGN} .mw-align-target select").first
    options = target_select.locator("option").all_inner_texts()
    old_target, old_score = target_select.input_value(), _text(page, f"{ALIGN} .mw-align-score")
    new_target = next(o for o in reversed(options) if o not in (source, old_target))
    before = lab.plot_data(page, overlay, 1)
    target_select.select_option(label=new_target)
    score = _wait_text_change(page, f"{ALIGN} .mw-align-score", old_score)
    assert re.fullmatch(rf"consistency -?\d\.\d{{3}} \({re.escape(source)} → {re.escape(new_target)}\)", score)
    page.wait_for_function("([sel, name]) => %s(sel).data[0].name.startsWith(name)" % lab.GD_JS,
                           arg=[overlay, new_target], timeout=15_000, polling=50)
    # target overlay = the target group's points of the embedding view (same samples, same order)
    emb = lab.plot_data(page, f"{EMB} .mw-emb-embedding", 0)
    members = np.flatnonzero(flow_field["condition"].values.astype(str) == new_target)
    tgt = lab.plot_data(page, overlay, 0)
    np.testing.assert_allclose(tgt["x"], np.asarray(emb["x"])[members], atol=1e-12)
    np.testing.assert_allclose(tgt["y"], np.asarray(emb["y"])[members], atol=1e-12)
    after = lab.plot_data(page, overlay, 1)
    assert len(after["x"]) == members.size or not np.allclose(after["x"], before["x"])
    pair = lab.plot_data(page, f"{ALIGN} .mw-align-heatmap", -1)
    assert pair == {"x": [new_target], "y": [source]}
    lab.screenshot(page, "dashboard_alignment_after", ALIGN)


def test_training_monitor_draws_each_epoch_of_a_real_fit(board_page: Any) -> None:
    page = board_page
    view = f"{MONITOR} .mw-train-loss"
    done = lab.plot_data(page, view, 0)  # the notebook's own fit already ran once
    assert done["x"] == list(range(N_EPOCHS))
    page.evaluate("""sel => { const gd = %s(sel); window._mwLens = [];
        const rec = () => window._mwLens.push(gd.data[0].x ? gd.data[0].x.length : 0);
        for (const ev of ['plotly_restyle', 'plotly_update', 'plotly_afterplot']) gd.on(ev, rec); }""" % lab.GD_JS,
                  view)
    cell = page.locator(".jp-NotebookPanel .jp-CodeCell", has_text="monitor.reset()").first
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")  # re-run the fit cell: reset the monitor, fit 3 epochs
    page.wait_for_function("() => [...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'))",
                           timeout=10_000, polling=20)
    lab.wait_kernel_idle(page, timeout=120)
    lab.wait_for_plot(page, view, 3)
    page.wait_for_function("n => window._mwLens.includes(n)", arg=N_EPOCHS, timeout=15_000, polling=50)
    lens = page.evaluate("() => window._mwLens")
    firsts = [lens.index(n) for n in range(N_EPOCHS + 1)]  # 0 after reset(), then one more per epoch
    assert firsts == sorted(firsts), lens
    loss = lab.plot_data(page, view, 0)
    assert loss["x"] == list(range(N_EPOCHS)) and np.isfinite(loss["y"]).all()
    assert re.match(rf"epoch {N_EPOCHS}/{N_EPOCHS} · train \S+ · val \S+", _text(page, f"{MONITOR} .mw-train-status"))
    lab.screenshot(page, "training_monitor_after_fit", MONITOR)
    history = lab.plot_data(page, f"{HISTORY} .mw-train-loss", 0)  # dashboard's tab: model.loss_history_
    assert history["x"] == list(range(N_EPOCHS))
