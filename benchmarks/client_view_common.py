"""Shared pieces of the FlowView latency benchmarks (``client_view_latency.py``): the browser helpers of
``tests/browser/lab.py``, step / recolour / Play / 3-D rotation timers run in a page showing a FlowView."""
from __future__ import annotations

import importlib.util
import sys
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
HOOK_JS = """([event, nth]) => {
    const el = document.querySelectorAll('.mw-fv')[nth].parentElement;
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


def _stats(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=float)
    return {"n": int(arr.size), "median_ms": float(np.median(arr)), "p90_ms": float(np.percentile(arr, 90)),
            "ms": [round(float(v), 2) for v in arr]}


def time_steps(page: Any, steps: int, pause_s: float = 0.12, event: str = "mw-drawn", nth: int = 0) -> dict[str, Any]:
    """Press ArrowRight ``steps`` times on the ``nth`` view of the page (one at a time, each drawn before the
    next); ``event``: ``mw-drawn`` (all 2-D views and the local flow) or ``mw-scene-drawn`` (3-D scene)."""
    page.evaluate(HOOK_JS, [event, nth])
    page.locator(".mw-fv").nth(nth).focus()
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



# one synthetic pointermove per animation frame on the 3-D scene (mouse button held by the driver): the
# rotation is as fast as the page can follow; frames = full scene draws (Scene3D.splats)
ROTATE_JS = """async ([nth, seconds]) => {
    const v = document.querySelectorAll('.mw-fv')[nth].parentElement.__mwFlowView, scene = v.scene;
    const r = scene.box.getBoundingClientRect(), cx = r.left + 30, cy = r.top + 30;
    const splats0 = scene.splats, t0 = performance.now(), cam0 = {...scene.camera};
    let ticks = 0;
    await new Promise(done => {
        const tick = (now) => {
            ticks += 1;
            const k = (now - t0) / 1000;
            scene.box.dispatchEvent(new PointerEvent('pointermove', {bubbles: true, buttons: 1, pointerId: 1,
                clientX: cx + 150 * Math.sin(2 * k), clientY: cy + 40 * Math.sin(3 * k)}));
            if (now - t0 < seconds * 1000) requestAnimationFrame(tick); else done();
        };
        requestAnimationFrame(tick);
    });
    const elapsed = (performance.now() - t0) / 1000;
    return {seconds: elapsed, fps: (scene.splats - splats0) / elapsed, raf_fps: ticks / elapsed,
            full_draw_ms: scene.drawMs, n_points: scene.n, camera_moved: scene.camera.azimuth !== cam0.azimuth};
}"""


def time_rotate(page: Any, seconds: float = 3.0, nth: int = 0) -> dict[str, Any]:
    """Drag-rotate the ``nth`` view's 3-D scene for ``seconds`` (button held at the box's corner): scene
    frames drawn per second (each a full re-projection and splat of the cloud) and rAF ticks per second."""
    box = page.evaluate("n => { const r = document.querySelectorAll('.mw-fv')[n].parentElement.__mwFlowView.scene"
                        ".box.getBoundingClientRect(); return [r.left + 30, r.top + 30]; }", nth)
    page.mouse.move(*box)
    page.mouse.down()
    try:
        out = page.evaluate(ROTATE_JS, [nth, seconds])
    finally:
        page.mouse.up()
    page.evaluate("n => document.querySelectorAll('.mw-fv')[n].parentElement.__mwFlowView.scene.box"
                  ".dispatchEvent(new MouseEvent('dblclick', {bubbles: true}))", nth)  # camera back to its default
    return out
