"""Latency of the dashboard's browser-drawn views, beside the retired FigureWidget views' recorded figures.

Builds ``mw.dashboard`` for the rat flow field (``mw.flow_field(rat, n_components=10, smooth=0.25)``,
10-D; conditions = running direction, so the alignment view appears, aligned on ``position``) and
the rat recording (so the spike raster appears) with a
MARBLE fitted for ``--epochs`` epochs (the drawing cost does not depend on the training), and
measures in headless Debian chromium (``tests/browser/lab.py`` flags, software GL), in the exported
page opened from ``file://`` and (unless ``--no-lab``) in JupyterLab:

- ``step``: ArrowRight in the dashboard's flow view -> every flow panel changed -> the animation
  frame that shows it (``mw-drawn``, timed from the ``keydown`` event's timestamp).
- ``pair``: another target chosen in the alignment view's menu -> overlay, heatmap cell and MDS
  rings restyled (``mw-drawn``) -> the frame after.
- ``training``: the training view redrawn from its buffers (decode + ``Plotly.react``) -> the frame after.
- ``raster_step``: ArrowRight in the flow view -> the raster's cursor and window redrawn at the new
  sample (``mw-drawn`` of the raster, through the dashboard's page channel), from the ``keydown``.
- ``raster_follow``: topic "sample" published on the dashboard's channel (what a linked view does)
  -> the raster redrawn -> the frame after.
- ``raster_first_draw_ms``: the raster's ``render`` (buffer decode included) to its first drawn canvas.

The retired views were measured by the previous version of this script (kernel round trip + plotly
FigureWidget redraws, ``FlowFieldExplorer`` etc.); their figures stay in
``benchmarks/results/widget_latency.json`` under ``meta``/``variants`` and are printed beside the new
ones, which go under ``dashboard`` (the figures of the run before go under ``dashboard.previous``).
Usage: ``python benchmarks/widget_latency.py [--steps 30] [--no-lab]``.
Target (issue 14): every interaction < 50 ms median.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "widget_latency.json"
TARGET_MS = 50.0


def _load_lab() -> Any:
    """Import ``tests/browser/lab.py`` by path (shared JupyterLab/chromium helpers)."""
    spec = importlib.util.spec_from_file_location("marble_browser_lab", ROOT / "tests" / "browser" / "lab.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


lab = _load_lab()


def rat_model(epochs: int) -> tuple[Any, Any, Any]:
    """(fitted model, flow field, recording) of the rat, left and right runs as two conditions."""
    import torch

    import marble_widgets as mw

    torch.set_num_threads(1)
    rec = mw.datasets.rat_hippocampus()
    ff = mw.flow_field(rec, n_components=10, smooth=0.25)
    ff = ff.assign_coords(condition=("sample", ff["direction"].values.astype(str)))  # "left" / "right" runs
    model = mw.MARBLE(epochs=epochs, k=50, hidden_channels=128, batch_size=256, seed=0, verbose=False).fit(ff)
    return model, ff, rec


def dashboard_of(model: Any, ff: Any, rec: Any) -> Any:
    """The rat dashboard of a fitted model (flow view, raster, alignment of the runs, training curves)."""
    import marble_widgets as mw

    return mw.dashboard(model, ff, rec, label="position", title="Rat hippocampus: benchmark dashboard")


def rat_dashboard(epochs: int) -> Any:
    """The rat dashboard, model fitted here."""
    return dashboard_of(*rat_model(epochs))


# Timing hooks: keydown timestamp -> the flow view's (and the raster's) `mw-drawn`; t0 set just before a
# pair change, a training redraw or a channel publish -> that view's `mw-drawn` -> the next frame.
HOOK_JS = """() => {
    const flow = document.querySelector('.mw-fv').parentElement;
    const align = document.querySelector('.mw-av').parentElement;
    const train = document.querySelector('.mw-tv').parentElement;
    const raster = document.querySelector('.mw-rv').parentElement;
    window.__mw = { key: null, keyRaster: null, t0: null, step: [], pair: [], training: [], raster_step: [],
                    raster_follow: [] };
    document.addEventListener('keydown', e => { window.__mw.key = e.timeStamp; window.__mw.keyRaster = e.timeStamp; }, true);
    raster.addEventListener('mw-drawn', e => {
        if (window.__mw.keyRaster === null) return;
        window.__mw.raster_step.push(e.detail.t - window.__mw.keyRaster);
        window.__mw.keyRaster = null;
    });
    flow.addEventListener('mw-drawn', e => {
        if (window.__mw.key === null) return;
        window.__mw.step.push(e.detail.t - window.__mw.key);
        window.__mw.key = null;
    });
    const after = name => () => {
        if (window.__mw.t0 === null) return;
        const t0 = window.__mw.t0;
        window.__mw.t0 = null;
        requestAnimationFrame(() => window.__mw[name].push(performance.now() - t0));
    };
    align.addEventListener('mw-drawn', after('pair'));
    train.addEventListener('mw-drawn', after('training'));
    raster.addEventListener('mw-drawn', after('raster_follow'));
}"""

# what a linked view does: publish topic "sample" on the dashboard's channel (each time the raster's
# sample + 1, so it always changes); t0 just before
PUBLISH_JS = """() => {
    const root = document.querySelector('.mw-rv');
    const name = Object.keys(globalThis.__marbleWidgets.channels)[0];
    const s = (Number(root.dataset.sample) + 1) % 6000;
    window.__mw.t0 = performance.now();
    globalThis.__marbleWidgets.channels[name].dispatchEvent(new CustomEvent('sample', { detail: { value: s, source: 'bench' } }));
}"""


def _stats(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=float)
    return {"n": int(arr.size), "median_ms": float(np.median(arr)), "p90_ms": float(np.percentile(arr, 90)),
            "ms": [round(float(v), 2) for v in arr]}


def _wait_count(page: Any, name: str, k: int) -> None:
    page.wait_for_function("([n, k]) => window.__mw[n].length > k", arg=[name, k], timeout=15_000, polling=10)


def measure_page(page: Any, steps: int) -> dict[str, Any]:
    """Step, pair change, training redraw and raster follow, each ``steps`` times, one at a time."""
    page.evaluate(HOOK_JS)
    page.locator(".mw-fv").first.focus()
    for k in range(steps):
        page.keyboard.press("ArrowRight")
        _wait_count(page, "step", k)
        time.sleep(0.1)
    for k in range(steps):  # each time the next group as target: always a change
        page.evaluate("""() => { const s = document.querySelector('.mw-av-target');
            s.value = String((Number(s.value) + 1) % s.options.length);
            window.__mw.t0 = performance.now(); s.dispatchEvent(new Event('change')); }""")
        _wait_count(page, "pair", k)
        time.sleep(0.1)
    for k in range(steps):
        page.evaluate("""() => { window.__mw.t0 = performance.now();
            document.querySelector('.mw-tv').parentElement.__mwTrainingView.redraw(); }""")
        _wait_count(page, "training", k)
        time.sleep(0.1)
    for k in range(steps):
        page.evaluate(PUBLISH_JS)
        _wait_count(page, "raster_follow", k)
        time.sleep(0.1)
    got = page.evaluate("() => window.__mw")
    first = page.evaluate("() => document.querySelector('.mw-rv').parentElement.__mwRasterView.stats.firstDrawMs")
    return {**{name: _stats(got[name]) for name in ("step", "pair", "training", "raster_step", "raster_follow")},
            "raster_first_draw_ms": first}


def measure_export(board: Any, steps: int, context: Any, tmp: Path) -> dict[str, Any]:
    path = board.to_html(tmp / "rat_dashboard.html")
    page = context.new_page()
    t0 = time.monotonic()
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("body[data-ready=true]", timeout=120_000)
    first = time.monotonic() - t0
    lab.screenshot(page, "bench_dashboard_export")
    out = {"size_mb": path.stat().st_size / 1e6, "first_draw_s": first, **measure_page(page, steps)}
    page.close()
    return out


LAB_CELLS = [
    "import os, sys\nos.environ['OMP_NUM_THREADS'] = '1'\nsys.path.insert(0, {bench!r})\n"
    "from widget_latency import dashboard_of, rat_model\nfitted = rat_model({epochs})",
    "board = dashboard_of(*fitted)\nboard",
]
VIEW_CLASSES = (".mw-fv", ".mw-rv", ".mw-av", ".mw-tv")


def rerun_dashboard_cell(page: Any, received: dict[str, int]) -> dict[str, Any]:
    """Run the dashboard cell again (model fitted, plotly.js already on the page): seconds until every
    view of the new dashboard is drawn, and the bytes the kernel sent meanwhile (issue 14: < 3 s)."""
    page.evaluate(f"() => document.querySelectorAll('{', '.join(VIEW_CLASSES)}').forEach(e => e.setAttribute('data-old', '1'))")
    page.locator(".jp-NotebookPanel .jp-Cell").nth(1).locator(".jp-InputArea-editor").click()  # edit mode
    received["bytes"] = 0
    t0 = time.monotonic()
    page.keyboard.press("Shift+Enter")  # runs the cell being edited
    for sel in VIEW_CLASSES:
        page.wait_for_selector(f"{sel}[data-ready=true]:not([data-old])", timeout=120_000)
    return {"dashboard_cell_to_drawn_s": time.monotonic() - t0, "dashboard_cell_kernel_to_browser_mb": received["bytes"] / 1e6}


def measure_lab(steps: int, epochs: int, context: Any, tmp: Path) -> dict[str, Any]:
    """The dashboard in a JupyterLab notebook: Run All to drawn, bytes from the kernel, the three timings."""
    nb = lab.write_notebook(tmp / "dashboard_bench.ipynb",
                            [c.format(bench=str(ROOT / "benchmarks"), epochs=epochs) for c in LAB_CELLS])
    received = {"bytes": 0}
    with lab.start_lab([nb]) as server:
        page = context.new_page()
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: received.__setitem__(
            "bytes", received["bytes"] + len(payload if isinstance(payload, (bytes, str)) else b""))))
        lab.open_notebook(page, server.url, nb.name, timeout=120)
        received["bytes"] = 0
        t0 = time.monotonic()
        lab.run_all_cells(page, timeout=600)
        for sel in VIEW_CLASSES:
            page.wait_for_selector(f"{sel}[data-ready=true]", timeout=120_000)
        out = {"run_all_to_drawn_s": time.monotonic() - t0, "kernel_to_browser_mb": received["bytes"] / 1e6}
        lab.screenshot(page, "bench_dashboard_lab")
        out.update(measure_page(page, steps))
        out.update(rerun_dashboard_cell(page, received))
        page.close()
    return out


def _versions(context: Any) -> dict[str, Any]:
    import jupyterlab
    import plotly

    return {"chromium": context.browser.version if context.browser else None, "jupyterlab": jupyterlab.__version__,
            "plotly": plotly.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "loadavg_1_5_15": [round(v, 2) for v in os.getloadavg()]}


def table(results: dict[str, Any]) -> str:
    """New figures beside the retired views' recorded ones (median / p90 ms)."""
    new, old = results["dashboard"], results.get("variants", {})

    def cell(d: dict | None) -> str:
        return f"{d['median_ms']:.0f} / {d['p90_ms']:.0f}" if d else "–"

    rows = [("flow step", "step", "flow_explorer"), ("alignment pair change", "pair", None),
            ("training redraw", "training", None), ("raster on flow step", "raster_step", None),
            ("raster follows channel", "raster_follow", None)]
    prev = new.get("previous", {})
    lines = [f"{'interaction':24s} {'export (file://)':>18s} {'JupyterLab':>14s} {'previous run (Lab)':>20s} "
             f"{'retired view (Lab)':>20s}"]
    for label, key, old_key in rows:
        lines.append(f"{label:24s} {cell(new['export'].get(key)):>18s} {cell(new.get('lab', {}).get(key)):>14s} "
                     f"{cell(prev.get('lab', {}).get(key)):>20s} "
                     f"{cell(old.get(old_key)) if old_key else 'not measured':>20s}")
    first = [new[h].get("raster_first_draw_ms") for h in ("export", "lab") if h in new]
    lines.append("raster first draw (render -> canvas, ms): " + " / ".join(f"{v:.0f}" for v in first if v is not None)
                 + " (export / JupyterLab)")
    lines.append(f"export size {new['export']['size_mb']:.2f} MB (retired static report: 8.4 MB); "
                 f"first draw from file:// {new['export']['first_draw_s']:.1f} s")
    if "lab" in new:
        lines.append(f"JupyterLab: Run All (fit included) to drawn {new['lab']['run_all_to_drawn_s']:.1f} s, "
                     f"kernel -> browser {new['lab']['kernel_to_browser_mb']:.2f} MB")
        if "dashboard_cell_to_drawn_s" in new["lab"]:
            lines.append(f"JupyterLab: dashboard cell run again (model fitted) -> every view drawn "
                         f"{new['lab']['dashboard_cell_to_drawn_s']:.2f} s, kernel -> browser "
                         f"{new['lab']['dashboard_cell_kernel_to_browser_mb']:.2f} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="repeats of each interaction")
    parser.add_argument("--epochs", type=int, default=2, help="MARBLE epochs (drawing cost does not depend on it)")
    parser.add_argument("--no-lab", action="store_true", help="measure the exported page only")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    board = rat_dashboard(args.epochs)
    with tempfile.TemporaryDirectory(prefix="marble-bench-") as tmp, sync_playwright() as pw:
        context = lab.launch_browser(pw, Path(tmp) / "profile")
        new: dict[str, Any] = {"meta": {**_versions(context), "steps": args.steps, "epochs": args.epochs,
                                        "target_ms": TARGET_MS, "n_samples": int(board.flow_view._meta["n"]),
                                        "measured": "keydown.timeStamp -> mw-drawn frame (step); change/redraw call "
                                                    "-> mw-drawn -> next frame (pair, training)"},
                               "export": measure_export(board, args.steps, context, Path(tmp))}
        if not args.no_lab:
            new["lab"] = measure_lab(args.steps, args.epochs, context, Path(tmp))
        context.close()
    previous = results.get("dashboard")
    if previous:  # one level: the run before this one
        new["previous"] = {k: v for k, v in previous.items() if k != "previous"}
    results["dashboard"] = new
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    print(f"wrote {RESULTS}")
    return results


if __name__ == "__main__":
    main()
