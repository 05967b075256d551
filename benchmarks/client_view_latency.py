"""Latency of the browser-drawn FlowView (``marble_widgets.widgets.flow_view``), no kernel on the path.

Builds the rat flow field (``mw.flow_field(rat, n_components=10, smooth=0.25)``, 10-D, 3 dims
drawn) with a MARBLE embedding (rat recipe, ``--epochs`` epochs: the drawing cost does not depend
on how well it is trained), then measures in headless Debian chromium (``tests/browser/lab.py``
flags, software GL):

- ``export.step``: the exported HTML opened from ``file://``; ArrowRight on the view -> every view
  changed (2-D state: point, trail, neighbours; embedding: point, neighbours; local flow) -> the
  animation frame that shows it (``mw-drawn``; the definition of ``widget_latency.json``). Timed in
  the page from the ``keydown`` event's timestamp; ``painted`` adds one more frame (an upper bound
  for the change being on screen).
- ``export.step_3d_scene``: the same with ``dims=3``, timed to the 3-D scene's redraw (``mw-scene-drawn``).
- ``export.recolour``: choosing another colour (time <-> position) in the colour menu -> both
  clouds restyled -> next frame.
- ``export.play`` / ``play_3d``: Play for ``--play-s`` seconds: frames drawn per second while playing
  (the page's own counters; ``wall_fps``: frames over the wall time between the two clicks, the
  definition of runs before 2026-12), the gaps between frames and the JS ms per step of each part.
- ``export_results.step`` / ``play``: the view built from MARBLE's results Dataset
  (``FlowView(model.results(ff))``: MARBLE's neighbours, local view in the sample's frame with the
  transported vectors, derivative-features and behaviour panels), exported and opened from file://.
- ``large.1e5``: a synthetic 10^5-sample view (``large_view``) exported: first draw, recolour
  (colour menu -> both WebGL clouds recoloured -> frame), box selection (mouse up -> the selection
  drawn in both clouds -> frame), click-to-jump (pointer up -> every view shows the clicked sample).
  ``large.1e6``: 10^6 samples: first draw (navigation -> ready) and pan: a scripted 3-s drag in
  pan mode, frames the embedding's point layer drew and requestAnimationFrame ticks per second (a
  layer whose full draw takes > 8 ms follows the drag by moving its last image: ``shifted_frames``;
  ``full_draws`` redraw every point, one on release).
- ``lab.step`` / ``lab.play`` (unless ``--no-lab``): the results view displayed by a JupyterLab
  notebook; also the bytes the kernel sent to the page during Run All (websocket frames; plotly.js
  included), the kernel round trip (browser step -> Python hears it -> a Label changes), whether
  Chrome DevTools' ``Network.emulateNetworkConditions`` (latency 150 ms) delays that round trip
  (websocket frames), and, running the view cell again (model fitted), seconds until the new view is
  drawn and its bytes. ``lab_delayed``: the same notebook served through ``DelayProxy`` on
  127.0.0.1, which holds every chunk 150 ms in each direction (websocket frames included).

Today's dashboard figures (``benchmarks/results/widget_latency.json``: ``FlowFieldExplorer`` in
JupyterLab, one slider step = kernel round trip + plotly redraws) are printed beside them.
Usage: ``python benchmarks/client_view_latency.py [--steps 40] [--no-lab] [--no-large]``; prints a table
and writes ``benchmarks/results/client_view_latency.json`` (the figures of the run before are kept
under ``previous``). Targets (issue 14): step < 50 ms median (also with 150 ms kernel latency), Play
>= 30 frames/s, 10^5: recolour < 100 ms, selection < 100 ms, click-to-jump < 50 ms; 10^6: first
draw < 5 s, pan >= 30 frames/s.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import threading
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TODAY = RESULTS / "widget_latency.json"
TARGET_MS = 50.0


def _load_lab() -> Any:
    """Import ``tests/browser/lab.py`` by path (shared JupyterLab/chromium helpers)."""
    spec = importlib.util.spec_from_file_location("marble_browser_lab", ROOT / "tests" / "browser" / "lab.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


lab = _load_lab()

# Timing hooks installed in the page: keydown timestamp -> the view's `mw-drawn` event, which
# flow_view.js fires in the animation frame after all views are restyled.
HOOK_JS = """event => {
    const el = document.querySelector('.mw-fv').parentElement;
    window.__mw = { key: null, out: [] };
    document.addEventListener('keydown', e => { window.__mw.key = e.timeStamp; }, true);
    window.__mw.painted = [];
    el.addEventListener(event, e => {
        if (window.__mw.key === null) return;
        const key = window.__mw.key;
        window.__mw.key = null;
        // the frame after: by then the changed frame has been painted (an upper bound)
        requestAnimationFrame(() => { window.__mw.painted.push(performance.now() - key); });
        window.__mw.out.push(e.detail.t - key);
    });
    el.addEventListener('mw-recoloured', () => requestAnimationFrame(() => {
        window.__mw.out.push(performance.now() - window.__mw.t0);
    }));
}"""


def rat_views(epochs: int) -> tuple[Any, Any, Any, Any]:
    """FlowViews of the rat flow field with a briefly trained MARBLE (rat recipe): 2-D and 3-D state
    view from the embedding, the view of ``model.results(ff)``, and the flow field."""
    import torch

    import marble_widgets as mw
    from marble_widgets.widgets.flow_view import FlowView

    torch.set_num_threads(1)
    ff = mw.flow_field(mw.datasets.rat_hippocampus(), n_components=10, smooth=0.25)
    model = mw.MARBLE(epochs=epochs, k=50, hidden_channels=128, batch_size=256, seed=0).fit(ff)
    emb = model.transform(ff)
    res = FlowView(model.results(ff), color_by="time")
    return FlowView(ff, emb, color_by="time"), FlowView(ff, emb, color_by="time", dims=3), res, ff


def large_view(n: int, seed: int = 0) -> Any:
    """A FlowView of ``n`` synthetic samples: 100-step trajectories on circles (3 dims), a uniform random
    2-D embedding, each sample's neighbours its trajectory neighbours (no kNN search), coloured by
    ``position`` (step / 100); colour keys condition (2), trial, time, position."""
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
    return FlowView(ff, emb, neighbors=nb, sample=0, color_by="position")


def _stats(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=float)
    return {"n": int(arr.size), "median_ms": float(np.median(arr)), "p90_ms": float(np.percentile(arr, 90)),
            "ms": [round(float(v), 2) for v in arr]}


def time_steps(page: Any, steps: int, pause_s: float = 0.12, event: str = "mw-drawn") -> dict[str, Any]:
    """Press ArrowRight ``steps`` times on the view (one at a time, each drawn before the next);
    ``event``: ``mw-drawn`` (all 2-D views and the local flow) or ``mw-scene-drawn`` (3-D scene)."""
    page.evaluate(HOOK_JS, event)
    page.locator(".mw-fv").first.focus()
    for k in range(steps):
        page.keyboard.press("ArrowRight")
        page.wait_for_function("k => window.__mw.painted.length > k", arg=k, timeout=10_000, polling=10)
        time.sleep(pause_s)
    return {**_stats(page.evaluate("() => window.__mw.out")),
            "painted": _stats(page.evaluate("() => window.__mw.painted"))}


def _choose_colour(page: Any, key: str) -> None:
    """Pick ``key`` in the view's colour menu, stamping the start time the page's timers read."""
    page.evaluate("""key => { const s = document.querySelector('.mw-fv-color'); s.value = key;
        window.__mw.t0 = performance.now(); s.dispatchEvent(new Event('change')); }""", key)


def time_recolour(page: Any, repeats: int) -> dict[str, Any]:
    """Switch the colour menu between ``time`` and ``position``; select change -> frame after restyle."""
    page.evaluate("() => { window.__mw.out = []; }")
    for k in range(repeats):
        key = "position" if k % 2 == 0 else "time"
        _choose_colour(page, key)
        page.wait_for_function("k => window.__mw.out.length > k", arg=k, timeout=10_000, polling=10)
        time.sleep(0.15)
    return _stats(page.evaluate("() => window.__mw.out"))


PLAY_STATS_JS = """() => { const s = document.querySelector('.mw-fv').parentElement.__mwFlowView.stats;
    return {frames: s.frames, play: {...s.play}, gaps: s.gaps.length,
            prof: Object.fromEntries(Object.entries(s.prof).map(([k, v]) => [k, [...v]]))}; }"""


def time_play(page: Any, seconds: float, rate: float | None = None) -> dict[str, Any]:
    """Play for ``seconds``: ``fps`` = frames the view drew while playing / time it was playing (the page's
    own counters: each frame shows one more sample), ``wall_fps`` = frames / wall time between the two
    clicks (includes the driver's round trips); the gaps between those frames; JS ms per step by part.

    Play advances the view's ``fps`` trait (default 30) samples per second, so at the default the figure
    cannot exceed 30; ``rate`` (an exported page only) asks for more, to measure what the view can draw.
    """
    if rate is not None:
        page.evaluate("r => Object.values(globalThis.mwModels).find((m) => m.get('fps') !== undefined).set('fps', r)",
                      rate)
    before = page.evaluate(PLAY_STATS_JS)
    page.locator(".mw-fv-play").first.click()
    t0 = time.monotonic()
    time.sleep(seconds)
    page.locator(".mw-fv-play").first.click()
    elapsed = time.monotonic() - t0
    after = page.evaluate(PLAY_STATS_JS)
    gaps = page.evaluate("n => document.querySelector('.mw-fv').parentElement.__mwFlowView.stats.gaps.slice(n)",
                         before["gaps"])
    frames, played = after["play"]["frames"] - before["play"]["frames"], after["play"]["ms"] - before["play"]["ms"]
    prof = {k: (v[0] - before["prof"].get(k, [0, 0])[0]) / max(1, v[1] - before["prof"].get(k, [0, 0])[1])
            for k, v in after["prof"].items()}
    return {"seconds": round(played / 1000, 2), "frames": frames, "fps": frames / (played / 1000),
            "wall_fps": (after["frames"] - before["frames"]) / elapsed,
            "frame_gap_ms": {"median": float(np.median(gaps)) if gaps else None,
                             "p90": float(np.percentile(gaps, 90)) if gaps else None,
                             "max": float(max(gaps)) if gaps else None},
            "js_ms_per_update": prof}


def open_export(view: Any, context: Any, path: Path) -> tuple[Any, float]:
    """Write ``view`` to ``path``, open it from file:// and wait for its first frame; (page, seconds)."""
    view.to_html(path, title="Rat hippocampus: flow field")
    page = context.new_page()
    t0 = time.monotonic()
    page.goto(path.resolve().as_uri())
    page.wait_for_selector(".mw-fv[data-ready=true]", timeout=60_000)
    page.wait_for_function("() => document.querySelector('.mw-fv').dataset.drawn !== undefined")
    return page, time.monotonic() - t0


def measure_export(views: tuple[Any, Any], args: argparse.Namespace, context: Any, tmp: Path) -> dict[str, Any]:
    page, first = open_export(views[0], context, tmp / "rat_flow_view.html")
    lab.screenshot(page, "bench_flow_view_export")
    out = {"size_mb": (tmp / "rat_flow_view.html").stat().st_size / 1e6, "first_draw_s": first,
           "step": time_steps(page, args.steps), "recolour": time_recolour(page, args.recolour),
           "play": time_play(page, args.play_s)}
    page.close()
    page, _ = open_export(views[1], context, tmp / "rat_flow_view_3d.html")
    out["step_3d_scene"] = time_steps(page, args.steps // 2, event="mw-scene-drawn")
    out["play_3d"] = time_play(page, args.play_s)
    page.close()
    return out


def measure_export_results(view: Any, args: argparse.Namespace, context: Any, tmp: Path) -> dict[str, Any]:
    """The results-based view exported: size, first draw, step and Play."""
    page, first = open_export(view, context, tmp / "rat_results_view.html")
    lab.screenshot(page, "bench_flow_view_results_export")
    out = {"size_mb": (tmp / "rat_results_view.html").stat().st_size / 1e6, "first_draw_s": first,
           "step": time_steps(page, args.steps), "play": time_play(page, args.play_s),
           "play_at_60": time_play(page, args.play_s, rate=60.0)}
    page.close()
    return out


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


def time_large_click(page: Any, emb: np.ndarray, repeats: int) -> dict[str, Any]:
    """Clicks on isolated points of the embedding; pointer up -> every view shows that sample."""
    from scipy.spatial import cKDTree

    px = _emb_pixels(page, emb)
    dist, _ = cKDTree(px).query(px, k=2)
    targets = np.argsort(-dist[:, 1])[:repeats]
    _reset(page, "mw-drawn")
    for k, target in enumerate(targets):
        page.mouse.click(*px[target])
        page.wait_for_function("s => document.querySelector('.mw-fv').dataset.drawn === String(s)", arg=int(target),
                               timeout=10_000, polling=10)
        page.wait_for_function("k => window.__mw.painted.length > k", arg=k, timeout=10_000, polling=10)
        time.sleep(0.2)
    return _large_stats(page)


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


def open_large(n: int, context: Any, tmp: Path) -> tuple[Any, Any, dict[str, Any]]:
    """Build and export the ``n``-sample view, open it; (page, embedding, build/size/first-draw figures)."""
    t0 = time.monotonic()
    view = large_view(n)
    build = time.monotonic() - t0
    path = view.to_html(tmp / f"large_{n}.html")
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
            clicks = time_large_click(page, emb, args.recolour)
        finally:
            context.close()
    print(f"10^5 points, fresh page, click to jump: {clicks['median_ms']:.1f} / {clicks['p90_ms']:.1f} ms "
          f"(median / p90 of {clicks['n']})")
    return clicks


def measure_large(args: argparse.Namespace, context: Any, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    page, emb, info = open_large(100_000, context, tmp)
    out["1e5"] = {**info, "recolour": time_large_recolour(page, args.recolour),
                  "box_selection": time_large_selection(page, args.recolour),
                  "click_to_jump": time_large_click(page, emb, args.recolour), "pan": time_pan(page)}
    lab.screenshot(page, "bench_flow_view_1e5")
    page.close()
    page, emb, info = open_large(1_000_000, context, tmp)
    out["1e6"] = {**info, "pan": time_pan(page), "recolour": time_large_recolour(page, 4)}
    lab.screenshot(page, "bench_flow_view_1e6")
    page.close()
    return out


LAB_CELLS = [
    "import os\nos.environ['OMP_NUM_THREADS'] = '1'\nimport torch\ntorch.set_num_threads(1)\n"
    "import ipywidgets as widgets\nimport marble_widgets as mw\nfrom marble_widgets.widgets.flow_view import FlowView\n"
    "ff = mw.flow_field(mw.datasets.rat_hippocampus(), n_components=10, smooth=0.25)\n"
    "model = mw.MARBLE(epochs={epochs}, k=50, hidden_channels=128, batch_size=256, seed=0).fit(ff)\n"
    "res = model.results(ff)",
    "view = FlowView(res, color_by='time')\nview",
    "echo = widgets.Label('-')\necho.add_class('mw-echo')\n"
    "view.observe(lambda c: setattr(echo, 'value', str(c['new'])), 'sample')\necho",
]

# keydown -> the kernel heard the new sample and its Label changed in the page (a full round trip)
ECHO_JS = """async () => {
    const root = document.querySelector('.mw-fv');
    const label = () => document.querySelector('.mw-echo')?.textContent.trim();
    const t0 = performance.now();
    root.focus();
    root.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true}));
    const want = root.dataset.sample;
    while (label() !== want) { await new Promise(r => setTimeout(r, 2)); if (performance.now() - t0 > 10000) return null; }
    return performance.now() - t0;
}"""


def time_echo(page: Any, repeats: int = 8) -> dict[str, Any]:
    """Kernel round trip: a step in the browser until Python's Label shows it (sync_ms throttle idle)."""
    out = []
    for _ in range(repeats):
        time.sleep(0.4)  # past the 150 ms throttle: the step is sent at once
        value = page.evaluate(ECHO_JS)
        if value is not None:
            out.append(value)
    return _stats(out)


class DelayProxy:
    """TCP proxy on 127.0.0.1 that holds every chunk ``delay_s`` in each direction (websockets included).

    Why: Chrome's network emulation may not delay websocket frames; this delays the kernel connection
    whatever the browser does. Order is kept per direction.
    """

    def __init__(self, target_port: int, delay_s: float) -> None:
        self.target_port, self.delay_s, self.port = target_port, delay_s, lab.free_port()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        ready.set()
        self.loop.run_forever()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def pump_in() -> None:
            while data := await reader.read(65536):
                await queue.put((self.loop.time() + self.delay_s, data))
            await queue.put((None, b""))

        async def pump_out() -> None:
            while True:
                due, data = await queue.get()
                if due is None:
                    break
                if (wait := due - self.loop.time()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            writer.close()

        try:
            await asyncio.gather(pump_in(), pump_out())
        except (ConnectionError, asyncio.CancelledError):
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    def close(self) -> None:
        """Stop serving, cancel the open connections' pumps, stop the loop."""
        async def shutdown() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        self.thread.join(5)


def measure_lab(args: argparse.Namespace, context: Any, tmp: Path, delay_ms: float = 0.0) -> dict[str, Any]:
    """The results view in a JupyterLab notebook: first draw, bytes sent by the kernel, step and Play,
    the kernel round trip; ``delay_ms`` > 0: served through a :class:`DelayProxy` (each direction)."""
    nb = lab.write_notebook(tmp / f"flow_view_bench_{int(delay_ms)}.ipynb", [c.format(epochs=args.epochs) for c in LAB_CELLS])
    received = {"bytes": 0}
    with lab.start_lab([nb]) as server:
        proxy = DelayProxy(int(server.url.rsplit(":", 1)[1].split("/")[0]), delay_ms / 1000) if delay_ms else None
        url = f"http://127.0.0.1:{proxy.port}" if proxy else server.url
        page = context.new_page()
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: received.__setitem__(
            "bytes", received["bytes"] + len(payload if isinstance(payload, (bytes, str)) else b""))))
        lab.open_notebook(page, url, nb.name, timeout=300)
        received["bytes"] = 0
        t0 = time.monotonic()
        lab.run_all_cells(page, timeout=600)
        page.wait_for_selector(".mw-fv[data-ready=true]", timeout=120_000)
        page.wait_for_function("() => document.querySelector('.mw-fv').dataset.drawn !== undefined")
        visible = time.monotonic() - t0
        sent = received["bytes"]
        lab.screenshot(page, "bench_flow_view_lab", ".mw-fv")
        page.wait_for_selector(".mw-echo", timeout=120_000)
        out = {"delay_ms_each_way": delay_ms, "run_all_to_drawn_s": visible, "kernel_to_browser_mb": sent / 1e6,
               "kernel_round_trip": time_echo(page), "step": time_steps(page, args.steps),
               "play": time_play(page, args.play_s)}
        if not delay_ms:
            out["devtools_latency_150ms"] = devtools_check(page, context)
            try:
                out.update(rerun_view_cell(page, received))
            except Exception as err:  # noqa: BLE001 - keep the other figures; say what failed
                lab.screenshot(page, "bench_flow_view_lab_rerun_failed")
                out["view_cell_error"] = f"{type(err).__name__}: {str(err)[:300]}"
        page.close()
        if proxy:
            proxy.close()
    return out


def devtools_check(page: Any, context: Any) -> dict[str, Any]:
    """Kernel round trip under ``Network.emulateNetworkConditions`` (latency 150 ms): does it delay the
    websocket? Also the step latency meanwhile (nothing should wait for the kernel)."""
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 150, "downloadThroughput": -1,
                                                   "uploadThroughput": -1})
    try:
        echo = time_echo(page)
        step = time_steps(page, 20)
    finally:
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                       "uploadThroughput": -1})
        cdp.detach()
    return {"kernel_round_trip": echo, "step": step}


def rerun_view_cell(page: Any, received: dict[str, int]) -> dict[str, Any]:
    """Run the view cell again (model fitted, plotly.js already on the page): seconds until the new
    view is drawn, and the bytes the kernel sent meanwhile."""
    page.evaluate("() => document.querySelector('.mw-fv').setAttribute('data-old', '1')")
    page.locator(".jp-NotebookPanel .jp-Cell").nth(1).locator(".jp-InputArea-editor").click()  # edit mode
    received["bytes"] = 0
    page_t0 = page.evaluate("() => performance.now()")
    t0 = time.monotonic()
    page.keyboard.press("Shift+Enter")  # runs the cell being edited
    page.wait_for_selector(".mw-fv[data-ready=true]:not([data-old])", timeout=120_000)
    page.wait_for_function("() => document.querySelector('.mw-fv:not([data-old])').dataset.drawn !== undefined")
    seconds = time.monotonic() - t0
    # where the time went, in the page: render() called (the kernel built the view and its buffers
    # arrived), buffers decoded, plotly plots drawn, every view ready (seconds after the key press)
    marks = page.evaluate("""t0 => { const t = document.querySelector('.mw-fv:not([data-old])').parentElement
        .__mwFlowView.stats.times; return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, (v - t0) / 1000])); }""",
                          page_t0)
    return {"view_cell_to_drawn_s": seconds, "view_cell_kernel_to_browser_mb": received["bytes"] / 1e6,
            "view_cell_page_milestones_s": marks}


def today() -> dict[str, Any]:
    """Today's FlowFieldExplorer figures from widget_latency.json (JupyterLab, kernel round trip)."""
    if not TODAY.exists():
        return {}
    data = json.loads(TODAY.read_text())
    keep = ("flow_explorer", "flow_explorer_3d", "flow_explorer_playing", "embedding_1e5_recolor")
    return {k: {"median_ms": v["median_ms"], "p90_ms": v["p90_ms"], "n_points": v["n_points"]}
            for k, v in data["variants"].items() if k in keep}


def table(res: dict[str, Any]) -> str:
    e = res["export"]
    rows = [("FlowView, exported HTML (file://), step", e["step"]),
            ("FlowView 3-D state, exported HTML, step to scene", e["step_3d_scene"]),
            ("FlowView, exported HTML, recolour 2 clouds", e["recolour"])]
    if "export_results" in res:
        rows.append(("results view, exported HTML, step", res["export_results"]["step"]))
    for size, v in res.get("large", {}).items():
        for key in ("recolour", "box_selection", "click_to_jump"):
            if key in v:
                rows.append((f"{size} points, exported HTML, {key.replace('_', ' ')}", v[key]))
    for name in ("lab", "lab_delayed"):
        if name in res:
            rows.append((f"results view, {name}, step", res[name]["step"]))
            rows.append((f"results view, {name}, kernel round trip", res[name]["kernel_round_trip"]))
    if "lab" in res and "devtools_latency_150ms" in res["lab"]:
        d = res["lab"]["devtools_latency_150ms"]
        rows += [("results view, lab + DevTools latency 150 ms, step", d["step"]),
                 ("results view, lab + DevTools latency 150 ms, kernel round trip", d["kernel_round_trip"])]
    prev = res.get("previous", {})
    if "export" in prev:
        rows.append(("previous run: FlowView, exported HTML, recolour", prev["export"]["recolour"]))
    for name, v in res["today"].items():
        rows.append((f"today {name} (JupyterLab, {v['n_points']} pts)", v))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'measurement'.ljust(width)}  median ms  p90 ms  painted median/p90", "-" * (width + 39)]
    for name, v in rows:
        painted = f"  {v['painted']['median_ms']:7.1f} / {v['painted']['p90_ms']:.1f}" if "painted" in v else ""
        lines.append(f"{name.ljust(width)}  {v['median_ms']:9.1f}  {v['p90_ms']:6.1f}{painted}")
    lines.append(f"export: {e['size_mb']:.2f} MB, first draw {e['first_draw_s']:.2f} s, "
                 f"Play {e['play']['fps']:.1f} frames/s over {e['play']['seconds']} s "
                 f"(3-D state: {e['play_3d']['fps']:.1f} frames/s of the 2-D views)")
    if "export_results" in res:
        r = res["export_results"]
        lines.append(f"results export: {r['size_mb']:.2f} MB, first draw {r['first_draw_s']:.2f} s, "
                     f"Play {r['play']['fps']:.1f} frames/s (asked for 60 samples/s: "
                     f"{r['play_at_60']['fps']:.1f} frames/s)")
    for size, v in res.get("large", {}).items():
        pan = v["pan"]
        lines.append(f"{size}: HTML {v['html_mb']:.1f} MB, first draw {v['first_draw_s']:.2f} s, pan "
                     f"{pan['fps']:.1f} layer frames/s ({pan['raf_fps']:.1f} rAF/s) over {pan['seconds']} s")
    for name in ("lab", "lab_delayed"):
        if name in res:
            lb = {"view_cell_to_drawn_s": float("nan"), "view_cell_kernel_to_browser_mb": float("nan"), **res[name]}
            lines.append(f"{name} (+{lb['delay_ms_each_way']:.0f} ms each way): Run All -> drawn "
                         f"{lb['run_all_to_drawn_s']:.1f} s (includes the fit), kernel -> browser "
                         f"{lb['kernel_to_browser_mb']:.2f} MB; Play {lb['play']['fps']:.1f} frames/s"
                         + (f"; view cell again -> drawn {lb['view_cell_to_drawn_s']:.2f} s, "
                            f"{lb['view_cell_kernel_to_browser_mb']:.2f} MB" if name == "lab" else ""))
    lines += side_by_side(res)
    return "\n".join(lines)


#: Figures printed beside the previous run's: (label, path into the results).
COMPARED = [("export: Play frames/s", ("export", "play", "fps")),
            ("results export: MB", ("export_results", "size_mb")),
            ("results export: first draw s", ("export_results", "first_draw_s")),
            ("results export: Play frames/s", ("export_results", "play", "fps")),
            ("results export: Play at 60 samples/s, frames/s", ("export_results", "play_at_60", "fps")),
            ("10^6: pan frames/s", ("large", "1e6", "pan", "fps")),
            ("10^6: first draw s", ("large", "1e6", "first_draw_s")),
            ("lab: Play frames/s", ("lab", "play", "fps")),
            ("lab: view cell -> drawn s", ("lab", "view_cell_to_drawn_s")),
            ("lab: view cell kernel -> browser MB", ("lab", "view_cell_kernel_to_browser_mb")),
            ("lab: Run All kernel -> browser MB", ("lab", "kernel_to_browser_mb")),
            ("lab +150 ms: Play frames/s", ("lab_delayed", "play", "fps"))]


def _get(tree: dict[str, Any], path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return float(tree)


def side_by_side(res: dict[str, Any]) -> list[str]:
    """This run's headline figures next to the previous run's (``previous`` in the JSON)."""
    prev = res.get("previous", {})
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    width = max(len(label) for label, _ in COMPARED)
    out = ["", f"{'figure'.ljust(width)}  {'now':>8}  {'previous':>8}"]
    out += [f"{label.ljust(width)}  {fmt(_get(res, path)):>8}  {fmt(_get(prev, path)):>8}" for label, path in COMPARED]
    return out


def previous(path: Path) -> dict[str, Any]:
    """The figures of the run before (kept for comparison): its meta, export and lab sections."""
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    return {k: old[k] for k in ("meta", "export", "export_results", "large", "lab", "lab_delayed") if k in old}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--recolour", type=int, default=10)
    parser.add_argument("--play-s", type=float, default=10.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=150.0, help="added latency each way (lab_delayed)")
    parser.add_argument("--no-lab", action="store_true", help="skip the JupyterLab measurements")
    parser.add_argument("--no-large", action="store_true", help="skip the 10^5 / 10^6 clouds")
    parser.add_argument("--click-only", action="store_true",
                        help="only click-to-jump in a fresh 10^5 cloud (no recolour or selection first); print, write nothing")
    parser.add_argument("--out", type=Path, default=RESULTS / "client_view_latency.json")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    if args.click_only:
        click_only(args)
        return
    t0 = time.monotonic()
    *views, ff = rat_views(args.epochs)
    build_s = time.monotonic() - t0
    res: dict[str, Any] = {"meta": {"n_samples": int(ff.sizes["sample"]), "dims": int(ff.sizes["dim"]),
                                    "state_view_dims": [2, 3], "epochs": args.epochs, "cpus": os.cpu_count(),
                                    "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
                                    "build_s": build_s, "target_ms": TARGET_MS,
                                    "measured": "keydown.timeStamp -> the requestAnimationFrame in which the "
                                                "views were changed (mw-drawn; the definition of "
                                                "widget_latency.json); painted: -> the frame after it"},
                           "today": today(), "previous": previous(args.out)}
    with tempfile.TemporaryDirectory(prefix="marble-bench-") as tmp, sync_playwright() as pw:
        context = lab.launch_browser(pw, Path(tmp) / "profile")
        res["meta"]["chromium"] = context.browser.version if context.browser else None
        try:
            res["export"] = measure_export(tuple(views[:2]), args, context, Path(tmp))
            res["export_results"] = measure_export_results(views[2], args, context, Path(tmp))
            if not args.no_large:
                res["large"] = measure_large(args, context, Path(tmp))
            if not args.no_lab:
                res["lab"] = measure_lab(args, context, Path(tmp))
                res["lab_delayed"] = measure_lab(args, context, Path(tmp), delay_ms=args.delay_ms)
        finally:
            context.close()
    print(table(res))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
