"""The toy dashboard the browser tests open, and the checks every host shares (file://, Lab, Notebook 7, Voila).

Expected values are computed here from the arrays each view was built from (exact float32
coordinates, sample indices, group names), never read back from the page.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

import lab

TESTS = Path(__file__).resolve().parents[1]
for folder in (TESTS / "plotting", TESTS / "widgets"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

START = 20
#: the raster's half-width (s) in the toy dashboard
RASTER_WINDOW = 2.0
#: the heatmap cell the tests click: row (source) "up", column (target) "left"
CLICKED = ("up", "left")


class ToyModel:
    """A fitted-model stand-in: MARBLE.inspect-like results, a loss history and params."""

    def __init__(self) -> None:
        import toy_results

        self.loss_history_ = toy_results.history(8)
        self.best_epoch_ = 5

    def inspect(self, flow_field: Any) -> Any:
        import toy_results

        return toy_results.inspect(flow_field)

    def get_params(self) -> dict[str, Any]:
        return {"k": 5, "out_dim": 3, "epochs": 8}


def toy_dashboard() -> Any:
    """The dashboard of the toy flow field (3 conditions) and its recording, its flow view at sample START."""
    import toy_results

    from marble_widgets.widgets import dashboard

    ff = toy_results.flow_field()
    board = dashboard(ToyModel(), ff, toy_results.recording(ff), raster_window=RASTER_WINDOW,
                      dist=toy_results.distances(), mds_coords=toy_results.mds(),
                      align_fn=lambda s, t: s.values[:, ::-1] + 1.0, consistency_fn=lambda s, t: 0.5,
                      title="Toy dashboard")
    board.flow_view.sample = START
    board.raster.sample = START
    return board


def reference() -> dict[str, Any]:
    """What the page must show: each view's arrays and the toy's trajectory order."""
    board = toy_dashboard()
    flow = board.flow_view.arrays()
    pos_of = np.empty_like(flow["order"])
    pos_of[flow["order"]] = np.arange(flow["order"].size)
    return {"flow": flow, "pos_of": pos_of, "align": board.alignment.arrays(), "groups": board.alignment.groups,
            "pairs": board.alignment._meta["pairs"], "mds_xy": board.alignment._meta["mds_xy"],
            "training": board.training.arrays(),
            "best": board.training.best_epoch, "time": board.results["time"].values,
            "highlight": board.raster._meta["theme"]["highlight"]}


def wait(page: Any, js: str, arg: Any = None, timeout_ms: int = 15_000) -> None:
    page.wait_for_function(js, arg=arg, timeout=timeout_ms, polling=20)


def wait_ready(page: Any, timeout_ms: int = 60_000) -> None:
    """Every view of the dashboard has drawn itself."""
    for sel in (".mw-fv", ".mw-rv", ".mw-av", ".mw-tv"):
        page.wait_for_selector(f"{sel}[data-ready=true]", timeout=timeout_ms)


def aligned_pair(ref: dict[str, Any], source: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    """(target points, source aligned onto target) as float32, from the buffers."""
    a, groups = ref["align"], ref["groups"]
    i, j = groups.index(source), groups.index(target)
    k = ref["pairs"].index([i, j])
    go, po = a["group_offsets"], a["pair_offsets"]
    return a["points"][go[j]:go[j + 1]], a["aligned"][po[k]:po[k + 1]]


def assert_pair_shown(page: Any, ref: dict[str, Any], source: str, target: str) -> None:
    """The overlay holds exactly the pair's arrays; the heatmap marks its cell; the score is shown."""
    wait(page, "p => document.querySelector('.mw-av')?.dataset.pair === p", f"{source}|{target}")
    tgt, src = aligned_pair(ref, source, target)
    # the points painted over the overlay's axes (static/alignment_view.js avPaint) are exactly the pair's
    shown = page.evaluate("""() => { const s = document.querySelector('.mw-av').parentElement.__mwAlignmentView.shown;
        const xy = t => [Array.from(t.x), Array.from(t.y)]; return [xy(s.target), xy(s.source)]; }""")
    for (x, y), want in zip(shown, (tgt, src)):
        np.testing.assert_array_equal(np.column_stack([x, y]), want.astype(float))
    assert_overlay_painted(page, tgt[0])
    i, j = ref["groups"].index(source), ref["groups"].index(target)
    cell = page.evaluate("() => document.querySelector('.mw-av-heatmap').layout.shapes[0]")
    assert [cell["x0"], cell["x1"], cell["y0"], cell["y1"]] == [j - 0.4, j + 0.4, i - 0.4, i + 0.4]
    rings = page.evaluate("() => document.querySelector('.mw-av-mds').layout.shapes.map(s => [s.xanchor, s.yanchor])")
    assert rings == [ref["mds_xy"][source], ref["mds_xy"][target]]
    assert page.locator(".mw-av-score").first.inner_text() == f"consistency 0.500 ({source} → {target})"
    assert page.locator(".mw-av-source").first.input_value() == str(ref["groups"].index(source))


def assert_overlay_painted(page: Any, point: np.ndarray) -> None:
    """The overlay's canvas has a point painted where plotly's axes put data ``point`` (x, y)."""
    px, py = lab.data_to_page(page, ".mw-av-overlay", float(point[0]), float(point[1]))
    rgba = page.evaluate("""([x, y]) => { const c = document.querySelector('.mw-av-points'); const b = c.getBoundingClientRect();
        const r = devicePixelRatio; return Array.from(c.getContext('2d').getImageData(Math.floor((x - b.left) * r),
        Math.floor((y - b.top) * r), 1, 1).data); }""", [px, py])
    assert rgba[3] > 100, f"no point painted at {point} ({px:.1f}, {py:.1f} on the page): {rgba}"


def click_heatmap_cell(page: Any, ref: dict[str, Any], source: str, target: str) -> None:
    """Click the heatmap cell of row ``source``, column ``target`` (category axes: positions = indices)."""
    groups = ref["groups"]
    x, y = lab.data_to_page(page, ".mw-av-heatmap", groups.index(target), groups.index(source))
    page.mouse.click(x, y)


def assert_flow_at(page: Any, ref: dict[str, Any], i: int) -> None:
    """The flow view shows sample ``i``: status, and its current mark on the point's pixel in the state plot."""
    wait(page, "s => document.querySelector('.mw-fv')?.dataset.drawn === String(s)", int(i))
    assert page.locator(".mw-fv-status").first.inner_text().startswith(f"sample {i} ·")
    centre = page.evaluate("""() => { const r = document.querySelector('.mw-fv-panel-state .mw-fv-current')
        .getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }""")
    want = lab.data_to_page(page, ".mw-fv-state", *ref["flow"]["x"][i].astype(float))
    np.testing.assert_allclose(centre, want, atol=1.0)


def step_right(page: Any, ref: dict[str, Any], n: int = 3) -> int:
    """Press → ``n`` times in the flow view; returns the sample it must show (trajectory order)."""
    start = int(page.evaluate("() => Number(document.querySelector('.mw-fv').dataset.drawn)"))
    page.locator(".mw-fv").first.focus()
    for _ in range(n):
        page.keyboard.press("ArrowRight")
    want = int(ref["flow"]["order"][ref["pos_of"][start] + n])
    assert_flow_at(page, ref, want)
    return want


def assert_training(page: Any, ref: dict[str, Any]) -> None:
    """The loss curves are the history's numbers; the dashed line sits on the best epoch."""
    wait(page, "n => document.querySelector('.mw-tv')?.dataset.epochs === String(n)", ref["training"]["epoch"].size)
    for trace, key in enumerate(("train_loss", "val_loss", "lr")):
        got = lab.plot_data(page, ".mw-tv-plot", trace)
        np.testing.assert_array_equal(got["y"], ref["training"][key])
        np.testing.assert_array_equal(got["x"], ref["training"]["epoch"])
    shape = page.evaluate("() => document.querySelector('.mw-tv-plot').layout.shapes[0].x0")
    assert shape == ref["best"]
    # the toy history has no diffusion time: no third subplot (whose background would hide the losses)
    assert page.evaluate("() => document.querySelector('.mw-tv-plot').data.length") == 3


# --- the spike raster (RasterView) -------------------------------------------------------------
RASTER_JS = """sel => { const root = document.querySelector(sel);
    const box = root.querySelector('.mw-rv-canvas').getBoundingClientRect();
    return { lo: Number(root.dataset.lo), hi: Number(root.dataset.hi), time: Number(root.dataset.time),
             sample: Number(root.dataset.sample), left: box.left, top: box.top, width: box.width, height: box.height }; }"""
#: the raster's plot margins in CSS px (static/raster_view.js RV_MARGIN)
RASTER_MARGIN = {"l": 58, "r": 14, "t": 8, "b": 34}


def raster_state(page: Any, sel: str = ".mw-rv") -> dict[str, float]:
    """The raster's shown window, cursor time/sample and canvas box (page pixels)."""
    return page.evaluate(RASTER_JS, sel)


def raster_x(state: dict[str, float], t: float) -> float:
    """Page x of time ``t`` in the raster's current window."""
    m = RASTER_MARGIN
    return state["left"] + m["l"] + (t - state["lo"]) / (state["hi"] - state["lo"]) * (state["width"] - m["l"] - m["r"])


def publish_sample(page: Any, channel: str, sample: int) -> None:
    """What a linked view does: publish topic "sample" on the page channel ``channel``."""
    page.evaluate("""([name, s]) => {
        const c = globalThis.__marbleWidgets.channels[name];
        c.dispatchEvent(new CustomEvent('sample', { detail: { value: s, source: 'test' } })); }""", [channel, int(sample)])


def assert_raster_follows(page: Any, ref: dict[str, Any], sample: int) -> None:
    """The dashboard's raster shows sample ``sample`` of the flow view: cursor exactly at its time."""
    assert_raster_at(page, ref["time"][sample], sample, ref["highlight"])


def click_raster(page: Any, ref: dict[str, Any], time: float) -> int:
    """Click the raster at ``time``; returns the sample nearest the clicked pixel's time (computed here)."""
    page.locator(".mw-rv-canvas").first.scroll_into_view_if_needed()
    state = raster_state(page)
    x = raster_x(state, time)
    page.mouse.click(x, state["top"] + RASTER_MARGIN["t"] + 20)
    m = RASTER_MARGIN
    clicked = state["lo"] + (round(x) - state["left"] - m["l"]) / (state["width"] - m["l"] - m["r"]) * (
        state["hi"] - state["lo"])
    return int(np.argmin(np.abs(ref["time"] - clicked)))


def assert_raster_at(page: Any, time: float, sample: int, highlight: str) -> None:
    """The raster's cursor sits exactly at ``time`` (sample ``sample``), centred, drawn in the highlight colour."""
    wait(page, "s => document.querySelector('.mw-rv')?.dataset.sample === String(s)", int(sample))
    state = raster_state(page)
    assert state["time"] == time and state["sample"] == sample
    x = raster_x(state, time)
    rgb = page.evaluate("""([x, y]) => { const c = document.querySelector('.mw-rv-canvas'); const b = c.getBoundingClientRect();
        const r = devicePixelRatio; return Array.from(c.getContext('2d').getImageData(Math.floor((x - b.left) * r),
        Math.floor((y - b.top) * r), 1, 1).data).slice(0, 3); }""", [x, state["top"] + RASTER_MARGIN["t"] + 20])
    assert rgb == [int(highlight[i:i + 2], 16) for i in (1, 3, 5)], f"no cursor at x={x:.1f}: {rgb}"
