"""Latency from a slider step in the browser to the redrawn plotly FigureWidget in the DOM.

Runs a real JupyterLab + headless Debian chromium (helpers shared with the browser tests in
``tests/browser/lab.py``), presses ArrowRight on an ipywidgets IntSlider, and times in the
page, from the ``keydown`` to the ``plotly_restyle``/``plotly_update``/``plotly_afterplot``
event that carries the new data (``drawn``) and to the next animation frame (``frame``).
The slider's Python callback moves a one-point marker trace. Variants:

- ``scatter_100``: 100-point SVG Scatter under the marker.
- ``scattergl_1e5``: 10^5-point Scattergl under the marker (all traces WebGL).
- ``scattergl_1e5_recolor``: naive large view, each step also recolours the 10^5 points.
- ``static_layer_1e5``: large-view design, the 10^5-point cloud drawn once as a 2-D histogram
  heatmap layer under the small live marker trace.

Usage: ``python benchmarks/widget_latency.py [--steps 30]``; prints a table and writes
``benchmarks/results/widget_latency.json``. Target: median ``frame`` latency < 100 ms.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "widget_latency.json"
TARGET_MS = 100.0


def _load_lab() -> Any:
    """Import ``tests/browser/lab.py`` by path (shared JupyterLab/chromium helpers)."""
    spec = importlib.util.spec_from_file_location("marble_browser_lab",
                                                  ROOT / "tests" / "browser" / "lab.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


lab = _load_lab()

SETUP = '''import time
import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

rng = np.random.default_rng(0)
N_STEPS = 400
path = np.stack([np.cos(np.linspace(0, 6 * np.pi, N_STEPS)),
                 np.sin(np.linspace(0, 4 * np.pi, N_STEPS))], axis=1) * 2.5
big = rng.normal(size=(100_000, 2))
small = rng.normal(size=(100, 2))
LAYOUT = dict(width=520, height=420, margin=dict(l=40, r=10, t=30, b=30), showlegend=False,
              xaxis=dict(range=[-4, 4]), yaxis=dict(range=[-4, 4]))


def panel(name, fig, on_step):
    """Slider + figure; each step calls on_step(i) inside one batch_update."""
    slider = widgets.IntSlider(value=0, min=0, max=N_STEPS - 1, description=name)
    def _step(change):
        with fig.batch_update():
            on_step(change["new"])
    slider.observe(_step, names="value")
    box = widgets.VBox([slider, fig])
    box.add_class("mw-bench-" + name)
    return box


def mover(fig, trace=1):
    def on_step(i):
        fig.data[trace].x = [float(path[i, 0])]
        fig.data[trace].y = [float(path[i, 1])]
    return on_step


MARKER = dict(size=14, color="red")'''

VARIANTS = {
    "scatter_100": '''fig = go.FigureWidget([go.Scatter(x=small[:, 0], y=small[:, 1], mode="markers"),
                       go.Scatter(x=[path[0, 0]], y=[path[0, 1]], mode="markers", marker=MARKER)],
                      layout=LAYOUT)
panel("scatter_100", fig, mover(fig))''',
    "scattergl_1e5": '''fig = go.FigureWidget([go.Scattergl(x=big[:, 0], y=big[:, 1], mode="markers",
                                    marker=dict(size=2, opacity=0.4)),
                       go.Scattergl(x=[path[0, 0]], y=[path[0, 1]], mode="markers", marker=MARKER)],
                      layout=LAYOUT)
panel("scattergl_1e5", fig, mover(fig))''',
    "scattergl_1e5_recolor": '''fig = go.FigureWidget([go.Scattergl(x=big[:, 0], y=big[:, 1], mode="markers",
                                    marker=dict(size=2, color=np.zeros(len(big)), cmin=0, cmax=1)),
                       go.Scattergl(x=[path[0, 0]], y=[path[0, 1]], mode="markers", marker=MARKER)],
                      layout=LAYOUT)
move = mover(fig)
def recolor(i):
    move(i)
    fig.data[0].marker.color = (np.linalg.norm(big - path[i], axis=1) < 0.5).astype(float)
panel("scattergl_1e5_recolor", fig, recolor)''',
    "static_layer_1e5": '''edges = np.linspace(-4, 4, 201)
counts, _, _ = np.histogram2d(big[:, 0], big[:, 1], bins=[edges, edges])
centres = (edges[:-1] + edges[1:]) / 2
fig = go.FigureWidget([go.Heatmap(z=np.log1p(counts.T), x=centres, y=centres, colorscale="Greys",
                                  showscale=False, hoverinfo="skip"),
                       go.Scatter(x=[path[0, 0]], y=[path[0, 1]], mode="markers", marker=MARKER)],
                      layout=LAYOUT)
panel("static_layer_1e5", fig, mover(fig))''',
}

N_POINTS = {"scatter_100": 100, "scattergl_1e5": 100_000, "scattergl_1e5_recolor": 100_000,
            "static_layer_1e5": 100_000}

# In-page probe: keydown on the slider handle starts the clock; the first plotly event after
# which the marker trace holds new data stops it ("drawn"); the next animation frame ("frame").
PROBE_JS = """([sel, trace]) => {
    const gd = document.querySelector(sel + ' .js-plotly-plot');
    const sig = () => JSON.stringify([gd.data[trace].x[0], gd.data[trace].y[0]]);
    const st = {t0: null, drawn: [], frame: [], last: sig()};
    window._mwBench = st;
    document.querySelector(sel + ' .noUi-handle').addEventListener(
        'keydown', () => { st.t0 = performance.now(); }, true);
    const done = () => {
        if (st.t0 === null || sig() === st.last) return;
        const t0 = st.t0, t1 = performance.now();
        st.t0 = null; st.last = sig();
        requestAnimationFrame(() => { st.drawn.push(t1 - t0); st.frame.push(performance.now() - t0); });
    };
    for (const ev of ['plotly_afterplot', 'plotly_restyle', 'plotly_update', 'plotly_redraw'])
        gd.on(ev, done);
}"""


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), without importing numpy here."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def measure_variant(page: Any, name: str, steps: int, warmup: int = 3) -> dict:
    """Press ArrowRight ``warmup + steps`` times on variant ``name``; latencies in ms."""
    sel = f".mw-bench-{name}"
    page.locator(f"{sel} .js-plotly-plot").first.scroll_into_view_if_needed()
    page.evaluate(PROBE_JS, [sel, 1])
    handle = page.locator(f"{sel} .noUi-handle").first
    handle.focus()
    for k in range(warmup + steps):
        handle.press("ArrowRight")
        page.wait_for_function("n => window._mwBench.frame.length >= n", arg=k + 1,
                               timeout=30_000, polling=5)
        time.sleep(0.05)  # let the kernel settle so steps do not queue behind each other
    st = page.evaluate("() => window._mwBench")
    drawn, frame = st["drawn"][warmup:], st["frame"][warmup:]
    lab.screenshot(page, f"bench_{name}", sel)
    return {"n_points": N_POINTS[name], "steps": len(frame),
            "median_ms": _percentile(frame, 50), "p90_ms": _percentile(frame, 90),
            "median_drawn_ms": _percentile(drawn, 50), "p90_drawn_ms": _percentile(drawn, 90),
            "frame_ms": [round(v, 2) for v in frame]}


def _versions(context: Any) -> dict:
    """Software versions and machine facts that the numbers depend on."""
    import jupyterlab
    import plotly

    return {"chromium": context.browser.version if context.browser else "unknown",
            "jupyterlab": jupyterlab.__version__, "plotly": plotly.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "cpus": __import__("os").cpu_count()}


def run(steps: int = 30, variants: list[str] | None = None) -> dict:
    """Start lab + chromium, run every variant and return the results dict."""
    from playwright.sync_api import sync_playwright

    names = variants or list(VARIANTS)
    with tempfile.TemporaryDirectory(prefix="marble-bench-") as tmp:
        nb = lab.write_notebook(Path(tmp) / "widget_latency.ipynb",
                                [SETUP, *(VARIANTS[n] for n in names)])
        with lab.start_lab([nb]) as server, sync_playwright() as pw:
            context = lab.launch_browser(pw, Path(tmp) / "profile")
            try:
                page = context.new_page()
                lab.open_notebook(page, server.url, nb.name)
                lab.run_until_plotted(page, {f".mw-bench-{n}": 2 for n in names}, timeout=60)
                results = {n: measure_variant(page, n, steps) for n in names}
                meta = _versions(context)
            finally:
                context.close()
    meta.update(steps=steps, target_ms=TARGET_MS,
                measured="keydown on slider handle -> plotly event with new marker data "
                         "-> next requestAnimationFrame (frame); drawn = at the event")
    return {"meta": meta, "variants": results}


def print_table(results: dict) -> None:
    """Print one row per variant: points, median/p90 (frame and drawn), within target."""
    print(f"{'variant':<24}{'points':>8}{'median ms':>11}{'p90 ms':>9}"
          f"{'drawn med':>11}{'drawn p90':>11}  < {TARGET_MS:.0f} ms")
    for name, r in results["variants"].items():
        ok = "yes" if r["median_ms"] < TARGET_MS else "NO"
        print(f"{name:<24}{r['n_points']:>8}{r['median_ms']:>11.1f}{r['p90_ms']:>9.1f}"
              f"{r['median_drawn_ms']:>11.1f}{r['p90_drawn_ms']:>11.1f}  {ok}")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: run, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="measured slider steps per variant")
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS),
                        help="run only this variant (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results path")
    args = parser.parse_args(argv)
    results = run(args.steps, args.variant)
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
