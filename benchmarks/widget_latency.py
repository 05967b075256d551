"""Latency from a slider step in the browser to the redrawn plotly FigureWidget in the DOM.

Runs a real JupyterLab + headless Debian chromium (helpers shared with the browser tests in
``tests/browser/lab.py``), presses ArrowRight on an ipywidgets IntSlider, and times in the
page, from the ``keydown`` to the ``plotly_restyle``/``plotly_update``/``plotly_afterplot``
event that carries the new data (``drawn``) and to the next animation frame (``frame``).
The slider's Python callback moves a one-point marker trace. Every figure is the dashboards'
``marble_widgets.widgets._figure.FigureWidget``. Per step the page also records when the slider's
message left (``sent``) and when the kernel's first plotly edit arrived (``recv``), so
``recv - sent`` is the kernel round trip (Python included) and ``drawn - recv`` plotly's redraw.
Steps wait for the redraw and the idle kernel (no fixed sleeps). Variants:

- ``scatter_100``: 100-point SVG Scatter under the marker.
- ``scattergl_1e5``: 10^5-point Scattergl under the marker (all traces WebGL).
- ``scattergl_1e5_recolor``: naive large view, each step also recolours the 10^5 points.
- ``static_layer_1e5``: large-view design, the 10^5-point cloud drawn once as a 2-D histogram
  heatmap layer under the small live marker trace.
- ``flow_explorer``: the real ``FlowFieldExplorer`` (van der Pol, 4 conditions x 20 trajectories,
  MARBLE fitted for 3 epochs); one slider step redraws all five views (state marker,
  neighbourhood, local flow, derivative features, embedding marker). Timed to the embedding
  marker, the last view ``_redraw`` updates; ``median_view_ms`` gives each view's last redraw.
- ``flow_explorer_3d``: the same on a 3-D flow field (paraboloid, 512 points): the state view
  (trajectory, cones) and the neighbourhood are WebGL 3-D scenes.
- ``flow_explorer_playing``: the same explorer with ``play.playing`` set on its Python side, as
  while Play runs (views deferred during playback are skipped); stepped by the slider.
- ``embedding_1e5``: the real ``EmbeddingExplorer`` on a 10^5-sample embedding (density-image
  fast path + hit layer); a slider steps ``sample`` (current-point marker moves).
- ``embedding_1e5_recolor``: the same explorer; a slider cycles ``color_by`` (density image recoloured).

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
from marble_widgets.widgets._figure import FigureWidget  # the dashboards' FigureWidget

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
    "scatter_100": '''fig = FigureWidget([go.Scatter(x=small[:, 0], y=small[:, 1], mode="markers"),
                       go.Scatter(x=[path[0, 0]], y=[path[0, 1]], mode="markers", marker=MARKER)],
                      layout=LAYOUT)
panel("scatter_100", fig, mover(fig))''',
    "scattergl_1e5": '''fig = FigureWidget([go.Scattergl(x=big[:, 0], y=big[:, 1], mode="markers",
                                    marker=dict(size=2, opacity=0.4)),
                       go.Scattergl(x=[path[0, 0]], y=[path[0, 1]], mode="markers", marker=MARKER)],
                      layout=LAYOUT)
panel("scattergl_1e5", fig, mover(fig))''',
    "scattergl_1e5_recolor": '''fig = FigureWidget([go.Scattergl(x=big[:, 0], y=big[:, 1], mode="markers",
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
fig = FigureWidget([go.Heatmap(z=np.log1p(counts.T), x=centres, y=centres, colorscale="Greys",
                                  showscale=False, hoverinfo="skip"),
                       go.Scatter(x=[path[0, 0]], y=[path[0, 1]], mode="markers", marker=MARKER)],
                      layout=LAYOUT)
panel("static_layer_1e5", fig, mover(fig))''',
}

_FLOW_BUILD = '''import warnings
warnings.filterwarnings("ignore", category=UserWarning)
import marble_widgets as mw
from marble_widgets.widgets import FlowFieldExplorer
if "flow_model" not in globals():
    ff = mw.datasets.van_der_pol(mus=np.linspace(-1, 1, 4), n_initial=20)
    flow_model = mw.MARBLE(order=2, k=10, out_dim=3, epochs=3, diffusion=False, verbose=False, seed=0).fit(ff)
    flow_args = (ff, flow_model.inspect(ff), flow_model.transform(ff))
'''
VARIANTS["flow_explorer"] = _FLOW_BUILD + '''flow = FlowFieldExplorer(*flow_args)
flow.add_class("mw-bench-flow_explorer")
flow'''
# A 3-D flow field (paraboloid, 512 points): state space (with cones) and neighbourhood are
# WebGL 3-D scenes.
VARIANTS["flow_explorer_3d"] = '''import warnings
warnings.filterwarnings("ignore", category=UserWarning)
import marble_widgets as mw
from marble_widgets.widgets import FlowFieldExplorer
ff3 = mw.datasets.paraboloid_field(n=512)
model3 = mw.MARBLE(order=2, k=10, out_dim=3, epochs=3, diffusion=False, verbose=False, seed=0).fit(ff3)
flow3 = FlowFieldExplorer(ff3, model3.inspect(ff3), model3.transform(ff3))
flow3.add_class("mw-bench-flow_explorer_3d")
flow3'''
# The same explorer as if Play were running (its Python side sees ``play.playing``; the browser's
# Play timer is not started, the slider steps it). The deferred feature view is left out of every
# step (play_refresh_s=inf; by default it is redrawn at most once a second during playback).
VARIANTS["flow_explorer_playing"] = _FLOW_BUILD + '''flow_playing = FlowFieldExplorer(*flow_args, play_refresh_s=float("inf"))
flow_playing.play.playing = True
flow_playing.add_class("mw-bench-flow_explorer_playing")
flow_playing'''

# The real EmbeddingExplorer on a 10^5-sample embedding (1000 trials x 100 steps, 4 conditions):
# above max_points it draws the static density image + a light hit layer; one slider steps the
# explorer's sample (the current-point marker moves), the other cycles the colour-by variable.
_EMB_BUILD = '''import warnings
import xarray as xr
from marble_widgets.widgets import EmbeddingExplorer
if "emb_explorer" not in globals():
    n_tr, n_t = 1000, 100
    trial = np.repeat(np.arange(n_tr), n_t)
    tt = np.tile(np.arange(n_t) * 0.01, n_tr)
    phase = tt * 6.0 + trial * 0.37
    xs = np.column_stack([np.cos(phase), np.sin(phase)]) * (1 + (trial % 4))[:, None] + rng.normal(0, 0.05, (n_tr * n_t, 2))
    coords = {"condition": ("sample", np.array(["a", "b", "c", "d"])[trial % 4]), "trial": ("sample", trial),
              "time": ("sample", tt)}
    emb_ff = xr.Dataset({"x": (("sample", "dim"), xs), "v": (("sample", "dim"), np.gradient(xs, axis=0))}, coords=coords)
    emb_da = xr.DataArray(xs @ np.array([[0.8, -0.6], [0.6, 0.8]]) + rng.normal(0, 0.1, xs.shape),
                          dims=("sample", "latent"), coords=coords)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emb_explorer = EmbeddingExplorer(emb_da, emb_ff)
'''
VARIANTS["embedding_1e5"] = _EMB_BUILD + '''emb_slider = widgets.IntSlider(value=0, min=0, max=99, description="sample")
emb_slider.observe(lambda c: setattr(emb_explorer, "sample", int(c["new"])), names="value")
emb_box = widgets.VBox([emb_slider, emb_explorer])
emb_box.add_class("mw-bench-embedding_1e5")
emb_box'''
VARIANTS["embedding_1e5_recolor"] = _EMB_BUILD + '''color_slider = widgets.IntSlider(value=0, min=0, max=len(emb_explorer.color_options) - 1,
                                 description="colour")
color_slider.observe(lambda c: setattr(emb_explorer, "color_by", emb_explorer.color_options[c["new"]]),
                     names="value")
color_slider.add_class("mw-bench-embedding_1e5_recolor")
color_slider'''

# (graph selector, trace index (negative from the end), slider-handle selector, traces to wait for,
# the trace attribute whose new array marks the redraw)
PROBES = {n: (f".mw-bench-{n}", 1, f".mw-bench-{n} .noUi-handle", 2, "x") for n in VARIANTS}
PROBES["flow_explorer"] = (".mw-bench-flow_explorer .mw-flow-embedding", -1,
                           ".mw-bench-flow_explorer .mw-flow-slider .noUi-handle", 2, "x")
PROBES["flow_explorer_playing"] = tuple(v.replace("flow_explorer", "flow_explorer_playing") if isinstance(v, str)
                                       else v for v in PROBES["flow_explorer"])
PROBES["flow_explorer_3d"] = tuple(v.replace("flow_explorer", "flow_explorer_3d") if isinstance(v, str)
                                  else v for v in PROBES["flow_explorer"])
PROBES["embedding_1e5"] = (".mw-bench-embedding_1e5 .mw-emb-embedding", -1,
                           ".mw-bench-embedding_1e5 > .widget-slider .noUi-handle", 2, "x")
PROBES["embedding_1e5_recolor"] = (".mw-bench-embedding_1e5 .mw-emb-embedding", 0,
                                   ".mw-bench-embedding_1e5_recolor .noUi-handle", 2, "z")

#: Variants measured on their own page (own lab + browser) when all variants run.
SEPARATE_PAGE = ("flow_explorer_3d", "flow_explorer_playing")

N_POINTS = {"flow_explorer": 413, "flow_explorer_playing": 413, "flow_explorer_3d": 512, "embedding_1e5": 100_000, "embedding_1e5_recolor": 100_000, "scatter_100": 100, "scattergl_1e5": 100_000, "scattergl_1e5_recolor": 100_000,
            "static_layer_1e5": 100_000}

# Page-wide websocket timestamps (installed before the page loads): every send, and every
# received kernel message that carries a plotly edit (_py2js_update/restyle/relayout/animate).
WS_HOOK_JS = r"""(() => {
    const st = (window._mwWs = {send: [], recv: []});
    const Native = window.WebSocket;
    const send = Native.prototype.send;
    Native.prototype.send = function (data) { st.send.push(performance.now()); return send.call(this, data); };
    const EDIT = /"_py2js_(update|restyle|relayout|animate)":\s*\{/;
    function Hooked(...args) {
        const ws = new Native(...args);
        ws.addEventListener('message', (ev) => {
            const t = performance.now(), d = ev.data;
            const head = typeof d === 'string' ? d.slice(0, 8192)
                : d instanceof ArrayBuffer ? new TextDecoder().decode(new Uint8Array(d, 0, Math.min(8192, d.byteLength))) : '';
            if (EDIT.test(head)) st.recv.push(t);
        });
        return ws;
    }
    Hooked.prototype = Native.prototype;
    for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Hooked[k] = Native[k];
    window.WebSocket = Hooked;
})()"""

# In-page probe: keydown on the slider handle starts the clock; the first plotly event after
# which the probed trace holds a new ``key`` array stops it ("drawn"); the next animation frame
# ("frame"). Also per step: first websocket send after the keydown ("sent": slider -> kernel) and
# first received plotly edit ("recv": the kernel's answer arrives).
PROBE_JS = """([sel, trace, handle, key]) => {
    const gd = %s(sel);
    const tr = () => gd.data[trace < 0 ? gd.data.length + trace : trace];
    const sig = () => key.split('.').reduce((o, k) => (o == null ? o : o[k]), tr());
    const ws = window._mwWs;
    const st = {t0: null, drawn: [], frame: [], sent: [], recv: [], last: sig()};
    window._mwBench = st;
    document.querySelector(handle).addEventListener(
        'keydown', () => { st.t0 = performance.now(); }, true);
    const first = (arr, t0) => { const t = arr.find(v => v >= t0); return t === undefined ? null : t - t0; };
    const done = () => {
        if (st.t0 === null || sig() === st.last) return;
        const t0 = st.t0, t1 = performance.now();
        st.t0 = null; st.last = sig();
        requestAnimationFrame(() => {
            st.sent.push(first(ws.send, t0)); st.recv.push(first(ws.recv, t0));
            st.drawn.push(t1 - t0); st.frame.push(performance.now() - t0);
        });
    };
    for (const ev of ['plotly_afterplot', 'plotly_restyle', 'plotly_update', 'plotly_redraw'])
        gd.on(ev, done);
    // per-view breakdown: keydown times and every plotly redraw event of each view of the dashboard
    st.keys = []; st.views = {};
    document.querySelector(handle).addEventListener('keydown', () => st.keys.push(performance.now()), true);
    const root = gd.closest('.mw-flow-explorer, .mw-embedding-explorer');
    for (const view of root ? root.querySelectorAll('.mw-view') : []) {
        const name = [...view.classList].find(c => c.startsWith('mw-') && c !== 'mw-view');
        const plot = view.classList.contains('js-plotly-plot') ? view : view.querySelector('.js-plotly-plot');
        if (!plot || !plot.on) continue;
        st.views[name] = [];
        for (const ev of ['plotly_afterplot', 'plotly_restyle', 'plotly_update', 'plotly_redraw'])
            plot.on(ev, () => st.views[name].push(performance.now()));
    }
}""" % lab.GD_JS


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), without importing numpy here."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _stats(values: list[float | None]) -> tuple[float | None, float | None]:
    """Median and p90 of the values that were measured (None where a timestamp was missing)."""
    got = [v for v in values if v is not None]
    return (_percentile(got, 50), _percentile(got, 90)) if got else (None, None)


def measure_variant(page: Any, name: str, steps: int, warmup: int = 3) -> dict:
    """Step the slider of variant ``name`` ``warmup + steps`` times; latencies in ms.

    Steps go right, and back left from the slider's end (short trajectories), so each one moves.
    Waits for each redraw and for the kernel to go idle before the next step, so steps never
    queue behind each other (DOM/kernel conditions, no fixed sleep).
    """
    sel, trace, handle_sel, _, key = PROBES[name]
    page.locator(sel).first.scroll_into_view_if_needed()
    page.evaluate(PROBE_JS, [sel, trace, handle_sel, key])
    handle = page.locator(handle_sel).first
    handle.focus()
    key_name = "ArrowRight"
    for k in range(warmup + steps):
        now, top = (float(handle.get_attribute(a)) for a in ("aria-valuenow", "aria-valuemax"))
        key_name = "ArrowLeft" if now >= top else "ArrowRight" if now <= 0 else key_name
        handle.press(key_name)
        page.wait_for_function("n => window._mwBench.frame.length >= n", arg=k + 1,
                               timeout=30_000, polling=5)
        lab.wait_kernel_idle(page, timeout=30)
    st = page.evaluate("() => window._mwBench")
    cut = {k: st[k][warmup:] for k in ("drawn", "frame", "sent", "recv")}
    lab.screenshot(page, f"bench_{name}", sel)
    out = {"n_points": N_POINTS[name], "steps": len(cut["frame"])}
    for k, label in (("frame", ""), ("drawn", "_drawn"), ("sent", "_sent"), ("recv", "_recv")):
        out[f"median{label}_ms"], out[f"p90{label}_ms"] = _stats(cut[k])
    out["frame_ms"] = [round(v, 2) for v in cut["frame"]]
    if st["views"]:
        out["median_view_ms"] = _view_breakdown(st, warmup)
    return out


def _view_breakdown(st: dict, warmup: int) -> dict[str, float | None]:
    """Median time from each keydown to the last redraw event of each view before the next keydown.

    Why: a step redraws several views; this says which of them the time goes to (and when the
    last one is done, ``all``).
    """
    keys = st["keys"][warmup:] + [float("inf")]
    per_view: dict[str, list[float]] = {name: [] for name in st["views"]}
    last_all: list[float] = []
    for k0, k1 in zip(keys[:-1], keys[1:]):
        latest = None
        for name, times in st["views"].items():
            inside = [t - k0 for t in times if k0 <= t < k1]
            if inside:
                per_view[name].append(max(inside))
                latest = max(inside) if latest is None else max(latest, max(inside))
        if latest is not None:
            last_all.append(latest)
    out = {name: (_stats(v)[0] if v else None) for name, v in per_view.items()}
    out["all"] = _stats(last_all)[0] if last_all else None
    return {k: (round(v, 1) if v is not None else None) for k, v in out.items()}


def _versions(context: Any) -> dict:
    """Software versions and machine facts that the numbers depend on."""
    import jupyterlab
    import plotly

    return {"chromium": context.browser.version if context.browser else "unknown",
            "jupyterlab": jupyterlab.__version__, "plotly": plotly.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "cpus": __import__("os").cpu_count(),
            "loadavg_1_5_15": [round(v, 2) for v in __import__("os").getloadavg()]}


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
                page.add_init_script(WS_HOOK_JS)
                lab.open_notebook(page, server.url, nb.name)
                lab.run_until_plotted(page, {PROBES[n][0]: PROBES[n][3] for n in names}, timeout=60,
                                      run_timeout=300)
                results = {}
                for n in names:
                    print(f"measuring {n}", file=sys.stderr, flush=True)
                    results[n] = measure_variant(page, n, steps)
                meta = _versions(context)
            finally:
                context.close()
    meta.update(steps=steps, target_ms=TARGET_MS,
                measured="keydown on slider handle -> plotly event with new marker data "
                         "-> next requestAnimationFrame (frame); drawn = at the event")
    return {"meta": meta, "variants": results}


def print_table(results: dict) -> None:
    """One row per variant: points, frame median/p90, and the median breakdown (sent, recv, drawn)."""
    fmt = lambda v: f"{v:>9.1f}" if v is not None else f"{'-':>9}"  # noqa: E731
    print(f"{'variant':<26}{'points':>8}{'median':>9}{'p90':>9}{'sent':>9}{'recv':>9}{'drawn':>9}"
          f"  < {TARGET_MS:.0f} ms")
    for name, r in results["variants"].items():
        ok = "yes" if r["median_ms"] < TARGET_MS else "NO"
        print(f"{name:<26}{r['n_points']:>8}" + "".join(fmt(r[k]) for k in (
            "median_ms", "p90_ms", "median_sent_ms", "median_recv_ms", "median_drawn_ms")) + f"  {ok}")
        if r.get("median_view_ms"):
            print("    last redraw per view, median ms after keydown: " + ", ".join(
                f"{k.removeprefix('mw-')} {v}" for k, v in r["median_view_ms"].items()))


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: run, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="measured slider steps per variant")
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS),
                        help="run only this variant (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results path")
    args = parser.parse_args(argv)
    if args.variant:
        results = run(args.steps, args.variant)
    else:  # each extra flow explorer on its own page: many WebGL views on one page slow every one
        results = run(args.steps, [n for n in VARIANTS if n not in SEPARATE_PAGE])
        for name in SEPARATE_PAGE:
            results["variants"].update(run(args.steps, [name])["variants"])
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
