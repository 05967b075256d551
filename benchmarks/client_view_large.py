"""10^5 / 10^6-sample FlowViews for ``client_view_latency.py``: recolour, box selection, click-to-jump, pan,
and the 3-D state scene's rotation, in the exported page (``python benchmarks/client_view_latency.py
--click-only`` runs the click rows alone)."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from client_view_common import _choose_colour, _stats, lab, time_rotate, time_steps


def large_view(n: int, seed: int = 0, dims: int = 2) -> Any:
    """A FlowView of ``n`` synthetic samples: 100-step trajectories on circles (3 dims), a uniform random
    2-D embedding, each sample's neighbours its trajectory neighbours (no kNN search), coloured by
    ``position`` (step / 100); colour keys condition (2), trial, time, position. ``dims=3``: a 3-D state scene."""
    import xarray as xr

    from marble_widgets.widgets.flow_view import FlowView

    rng = np.random.default_rng(seed)
    steps = 100
    traj, step = np.divmod(np.arange(n), steps)
    phase = 2 * np.pi * step / steps + traj
    x = np.column_stack([np.cos(phase), np.sin(phase), 0.01 * rng.standard_normal(n)]) * (1 + traj % 7)[:, None]
    v = np.column_stack([-np.sin(phase), np.cos(phase), np.zeros(n)])
    ff = xr.Dataset({"x": (("sample", "dim"), x), "v": (("sample", "dim"), v), "position": ("sample", step / steps)},
                    coords={"dim": ["PC1", "PC2", "PC3"], "condition": ("sample", np.where(traj % 2, "a", "b")),
                            "trial": ("sample", traj), "time": ("sample", 0.01 * step)})
    nb = np.column_stack([np.arange(n) - 1, np.arange(n) + 1])
    nb[step == 0, 0] = -1
    nb[step == steps - 1, 1] = -1
    emb = xr.DataArray(rng.uniform(-1, 1, (n, 2)), dims=("sample", "latent"))
    return FlowView(ff, emb, neighbors=nb, sample=0, color_by="position", dims=dims)


# --- 10^5 / 10^6 clouds ---------------------------------------------------------------------------
LARGE_HOOK_JS = """() => {
    const el = document.querySelector('.mw-fv').parentElement;
    const mw = window.__mw = { out: [], painted: [], up: null };
    window.addEventListener('pointerup', e => { mw.up = e.timeStamp; }, true);
    const done = e => {
        if (e.type !== mw.want || (mw.up === null && mw.t0 === undefined)) return;
        const start = mw.up !== null ? mw.up : mw.t0;
        mw.up = null; mw.t0 = undefined;
        mw.out.push(e.detail.t - start);
        requestAnimationFrame(() => mw.painted.push(performance.now() - start));
    };
    for (const name of ['mw-selected', 'mw-drawn', 'mw-recoloured']) el.addEventListener(name, done);
}"""


def _large_stats(page: Any) -> dict[str, Any]:
    return {**_stats(page.evaluate("() => window.__mw.out")), "painted": _stats(page.evaluate("() => window.__mw.painted"))}


def _reset(page: Any, want: str) -> None:
    """Start a series timed to event ``want`` (mw-recoloured, mw-selected or mw-drawn)."""
    page.evaluate("w => { Object.assign(window.__mw, {out: [], painted: [], up: null, t0: undefined, want: w}); }", want)


def _emb_pixels(page: Any, points: np.ndarray) -> np.ndarray:
    ax = page.evaluate("""() => { const gd = document.querySelector('.mw-fv-embedding'), fl = gd._fullLayout;
        const box = gd.querySelector('.main-svg').getBoundingClientRect();
        return [box.left + fl.xaxis._offset, fl.xaxis._length, ...fl.xaxis.range,
                box.top + fl.yaxis._offset, fl.yaxis._length, ...fl.yaxis.range]; }""")
    x0, w, xa, xb, y0, h, ya, yb = ax
    return np.column_stack([x0 + (points[:, 0] - xa) / (xb - xa) * w, y0 + (yb - points[:, 1]) / (yb - ya) * h])


def time_large_recolour(page: Any, repeats: int) -> dict[str, Any]:
    """Colour menu position <-> condition; change -> both point layers and colour bars redrawn -> frame."""
    _reset(page, "mw-recoloured")
    for k in range(repeats):
        key = "condition" if k % 2 == 0 else "position"
        _choose_colour(page, key)
        page.wait_for_function("k => window.__mw.painted.length > k", arg=k, timeout=10_000, polling=10)
        time.sleep(0.2)
    return _large_stats(page)


def time_large_selection(page: Any, repeats: int) -> dict[str, Any]:
    """Box drags in the embedding (alternating two boxes); mouse up -> selection drawn in both clouds."""
    boxes = [np.array([[-0.6, 0.6], [0.3, -0.4]]), np.array([[-0.2, 0.9], [0.8, 0.1]])]
    _reset(page, "mw-selected")
    sizes = []
    for k in range(repeats):
        (ax, ay), (bx, by) = _emb_pixels(page, boxes[k % 2])
        page.mouse.move(ax, ay)
        page.mouse.down()
        page.mouse.move(bx, by, steps=6)
        page.mouse.up()
        page.wait_for_function("k => window.__mw.painted.length > k", arg=k, timeout=10_000, polling=10)
        sizes.append(int(page.evaluate("() => Number(document.querySelector('.mw-fv').dataset.selected)")))
        time.sleep(0.2)
    return {**_large_stats(page), "selected": sizes}


def time_large_click(page: Any, emb: np.ndarray, repeats: int, menu_widths: tuple[str, ...] = ("",)) -> dict[str, Any]:
    """Clicks on isolated points of the embedding; pointer up -> every view shows that sample.

    ``menu_widths``: CSS widths given to the trajectory menu in turn, one per click (``""``: as shipped,
    a fixed width; ``"auto"``: sized to its widest option, as before the fix: Chrome then lays out all
    its 1000 options after each change). Returns the first's figures, the others' under ``menu_<width>``."""
    from scipy.spatial import cKDTree

    px = _emb_pixels(page, emb)
    dist, _ = cKDTree(px).query(px, k=2)
    targets = np.argsort(-dist[:, 1])[:repeats * len(menu_widths)]
    _reset(page, "mw-drawn")
    for k, target in enumerate(targets):
        page.evaluate("w => { document.querySelector('.mw-fv-trajectory').style.width = w; }", menu_widths[k % len(menu_widths)])
        page.wait_for_timeout(50)
        page.mouse.click(*px[target])
        page.wait_for_function("s => document.querySelector('.mw-fv').dataset.drawn === String(s)", arg=int(target),
                               timeout=10_000, polling=10)
        page.wait_for_function("k => window.__mw.painted.length > k", arg=k, timeout=10_000, polling=10)
        time.sleep(0.2)
    page.evaluate("() => { document.querySelector('.mw-fv-trajectory').style.width = ''; }")
    out, painted = page.evaluate("() => window.__mw.out"), page.evaluate("() => window.__mw.painted")
    m = len(menu_widths)
    res = [{**_stats(out[j::m]), "painted": _stats(painted[j::m]), "menu_width": w or "fixed (CSS)"}
           for j, w in enumerate(menu_widths)]
    return {**res[0], **{f"menu_{w}": r for w, r in zip(menu_widths[1:], res[1:])}}


PAN_JS = """async ([cx, cy, seconds]) => {
    // one synthetic mousemove per animation frame (plotly's drag listens on document): the drag is
    // as fast as the page can follow, not as fast as a test driver sends events
    const v = document.querySelector('.mw-fv').parentElement.__mwFlowView, layer = v.layers.embedding;
    const draws0 = layer.draws, splats0 = layer.splats, shifts0 = layer.shifts, t0 = performance.now();
    let ticks = 0;
    await new Promise(done => {
        const tick = (now) => {
            ticks += 1;
            const k = (now - t0) / 1000;
            document.dispatchEvent(new MouseEvent('mousemove', {bubbles: true, buttons: 1,
                clientX: cx + 120 * Math.sin(3 * k), clientY: cy + 80 * Math.cos(2 * k)}));
            if (now - t0 < seconds * 1000) requestAnimationFrame(tick); else done();
        };
        requestAnimationFrame(tick);
    });
    const elapsed = (performance.now() - t0) / 1000;
    return {seconds: elapsed, layer_draws: layer.draws - draws0, fps: (layer.draws - draws0) / elapsed,
            raf_fps: ticks / elapsed, backend: layer.backend, full_draws: layer.splats - splats0,
            shifted_frames: layer.shifts - shifts0, full_draw_ms: layer.drawMs};
}"""


def time_pan(page: Any, seconds: float = 3.0) -> dict[str, Any]:
    """Pan the embedding (dragmode pan) for ``seconds``, one mouse move per animation frame: frames the
    point layer drew per second (each follows plotly's ``plotly_relayouting``) and rAF ticks per second."""
    page.evaluate("() => window.__mwPlotly.relayout(document.querySelector('.mw-fv-embedding'), {dragmode: 'pan'})")
    (cx, cy), = _emb_pixels(page, np.array([[0.0, 0.0]]))
    page.mouse.move(cx, cy)
    page.mouse.down()
    try:
        out = page.evaluate(PAN_JS, [cx, cy, seconds])
    finally:
        page.mouse.up()
    page.evaluate("() => window.__mwPlotly.relayout(document.querySelector('.mw-fv-embedding'), {dragmode: 'select'})")
    return out


def open_large(n: int, context: Any, tmp: Path, dims: int = 2) -> tuple[Any, Any, dict[str, Any]]:
    """Build and export the ``n``-sample view, open it; (page, embedding, build/size/first-draw figures)."""
    t0 = time.monotonic()
    view = large_view(n, dims=dims)
    build = time.monotonic() - t0
    path = view.to_html(tmp / f"large_{n}_{dims}d.html")
    page = context.new_page()
    t0 = time.monotonic()
    page.goto(path.resolve().as_uri(), timeout=120_000)
    page.wait_for_selector(".mw-fv[data-ready=true]", timeout=120_000)
    page.wait_for_function("() => { const v = document.querySelector('.mw-fv').parentElement.__mwFlowView;"
                           " return Object.values(v.layers).every(l => l.draws > 0); }", timeout=120_000)
    first = time.monotonic() - t0
    page.evaluate("() => { window.__mwPlotly = document.querySelector('.mw-fv').parentElement.__mwFlowView.Plotly; }")
    page.evaluate(LARGE_HOOK_JS)
    return page, view.arrays()["embedding"].astype(float), {
        "n_points": n, "build_s": build, "html_mb": path.stat().st_size / 1e6, "first_draw_s": first}


def click_only(args: argparse.Namespace) -> dict[str, Any]:
    """Click-to-jump in a fresh 10^5 cloud, nothing before it: separates the click itself from the state
    the full run's recolour and box selection leave behind (issue 14's click-to-jump regression)."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="marble-bench-") as tmp, sync_playwright() as pw:
        context = lab.launch_browser(pw, Path(tmp) / "profile")
        try:
            page, emb, _ = open_large(100_000, context, Path(tmp))
            clicks = time_large_click(page, emb, args.recolour, menu_widths=("", "auto"))
        finally:
            context.close()
    for name, c in (("as shipped", clicks), ("menu width auto (before the fix)", clicks["menu_auto"])):
        print(f"10^5 points, fresh page, click to jump, {name}: {c['median_ms']:.1f} / {c['p90_ms']:.1f} ms "
              f"(median / p90 of {c['n']}, clicks alternating)")
    return clicks


def measure_large(args: argparse.Namespace, context: Any, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    page, emb, info = open_large(100_000, context, tmp)
    out["1e5"] = {**info, "recolour": time_large_recolour(page, args.recolour),
                  "box_selection": time_large_selection(page, args.recolour),
                  "click_to_jump": time_large_click(page, emb, args.recolour, menu_widths=("", "auto")),
                  "pan": time_pan(page)}
    lab.screenshot(page, "bench_flow_view_1e5")
    page.close()
    page, emb, info = open_large(1_000_000, context, tmp)
    out["1e6"] = {**info, "pan": time_pan(page), "recolour": time_large_recolour(page, 4)}
    lab.screenshot(page, "bench_flow_view_1e6")
    page.close()
    return out



def measure_large_3d(context: Any, tmp: Path, n: int = 100_000) -> dict[str, Any]:
    """The ``n``-sample view with ``dims=3``: step to the scene's frame and drag-rotation frames per second."""
    page, _, info = open_large(n, context, tmp, dims=3)
    out = {**info, "step_3d_scene": time_steps(page, 20, event="mw-scene-drawn"), "rotate": time_rotate(page)}
    lab.screenshot(page, "bench_flow_view_1e5_3d", ".mw-fv-panel-state")
    page.close()
    return out
