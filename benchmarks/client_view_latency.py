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
- ``export.step_3d_scene``: the same with ``dims=3``, timed to the 3-D scene's redraw (``mw-scene-drawn``:
  the scene's marks moved; ``static/flow_view_scene.js``); ``rotate_3d``: a 3-s drag-rotation, one pointer
  move per animation frame, scene frames per second (each re-projects and splats every point).
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
  drawn in both clouds -> frame), click-to-jump (pointer up -> every view shows the clicked sample; clicks
  alternate between the trajectory menu as shipped and ``width: auto``, the menu before the fix, whose
  1000 options Chrome laid out after every change: ``menu_auto``). ``large_3d.1e5``: the 10^5 view with
  ``dims=3``: step to the scene and rotation.
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
  127.0.0.1, which holds every chunk 150 ms in each direction (websocket frames included). Both notebooks
  also show a 3-D view (``step_3d_scene``); its buffers are ``meta.view3d_buffers_mb`` of the bytes sent.
  The helpers live in ``client_view_common.py``, ``client_view_large.py`` and ``client_view_lab.py``.

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
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from client_view_common import (  # noqa: E402
    RESULTS, TARGET_MS, TODAY, lab, time_play, time_recolour, time_rotate, time_steps,
)
from client_view_lab import measure_lab  # noqa: E402
from client_view_large import click_only, measure_large, measure_large_3d  # noqa: E402


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
    out["rotate_3d"] = time_rotate(page)
    lab.screenshot(page, "bench_flow_view_export_3d", ".mw-fv-panel-state")
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
        if "menu_auto" in v.get("click_to_jump", {}):
            rows.append((f"{size} points, click to jump, menu width auto (before the fix)", v["click_to_jump"]["menu_auto"]))
    for size, v in res.get("large_3d", {}).items():
        rows.append((f"{size} points, 3-D state, exported HTML, step to scene", v["step_3d_scene"]))
    for name in ("lab", "lab_delayed"):
        if name in res:
            rows.append((f"results view, {name}, step", res[name]["step"]))
            if "step_3d_scene" in res[name]:
                rows.append((f"3-D view, {name}, step to scene", res[name]["step_3d_scene"]))
            rows.append((f"results view, {name}, kernel round trip", res[name]["kernel_round_trip"]))
    if "lab" in res and "devtools_latency_150ms" in res["lab"]:
        d = res["lab"]["devtools_latency_150ms"]
        rows += [("results view, lab + DevTools latency 150 ms, step", d["step"]),
                 ("results view, lab + DevTools latency 150 ms, kernel round trip", d["kernel_round_trip"])]
    prev = res.get("previous", {})
    if "export" in prev:
        rows.append(("previous run: FlowView, exported HTML, recolour", prev["export"]["recolour"]))
        rows.append(("previous run: 3-D step to scene (plotly scatter3d)", prev["export"]["step_3d_scene"]))
    if "1e5" in prev.get("large", {}):
        rows.append(("previous run: 1e5 points, click to jump", prev["large"]["1e5"]["click_to_jump"]))
    for name, v in res["today"].items():
        rows.append((f"today {name} (JupyterLab, {v['n_points']} pts)", v))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'measurement'.ljust(width)}  median ms  p90 ms  painted median/p90", "-" * (width + 39)]
    for name, v in rows:
        painted = f"  {v['painted']['median_ms']:7.1f} / {v['painted']['p90_ms']:.1f}" if "painted" in v else ""
        lines.append(f"{name.ljust(width)}  {v['median_ms']:9.1f}  {v['p90_ms']:6.1f}{painted}")
    lines.append(f"export: {e['size_mb']:.2f} MB, first draw {e['first_draw_s']:.2f} s, "
                 f"Play {e['play']['fps']:.1f} frames/s over {e['play']['seconds']} s "
                 f"(3-D state: {e['play_3d']['fps']:.1f} frames/s, the scene's marks in every frame)")
    for name, rot in (("rat", e.get("rotate_3d")), ("1e5", res.get("large_3d", {}).get("1e5", {}).get("rotate"))):
        if rot:
            lines.append(f"3-D scene rotation, {name} ({rot['n_points']} points): {rot['fps']:.1f} frames/s "
                         f"({rot['raf_fps']:.1f} rAF/s), full draw {rot['full_draw_ms']:.1f} ms")
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
                         f"{lb['kernel_to_browser_mb']:.2f} MB (the 3-D view's buffers "
                         f"{res['meta'].get('view3d_buffers_mb', float('nan')):.2f} MB of it); Play {lb['play']['fps']:.1f} frames/s"
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
            ("export 3-D: step to scene median ms", ("export", "step_3d_scene", "median_ms")),
            ("export 3-D: step to scene p90 ms", ("export", "step_3d_scene", "p90_ms")),
            ("10^5: click to jump median ms", ("large", "1e5", "click_to_jump", "median_ms")),
            ("10^5: click to jump p90 ms", ("large", "1e5", "click_to_jump", "p90_ms")),
            ("export 3-D: rotation frames/s", ("export", "rotate_3d", "fps")),
            ("10^5 3-D: rotation frames/s", ("large_3d", "1e5", "rotate", "fps")),
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
    return {k: old[k] for k in ("meta", "export", "export_results", "large", "large_3d", "lab", "lab_delayed") if k in old}


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
    view3d_mb = sum(len(entry["buffer"]) for entry in views[1]._arrays.values()) / 1e6
    res: dict[str, Any] = {"meta": {"n_samples": int(ff.sizes["sample"]), "dims": int(ff.sizes["dim"]),
                                    "state_view_dims": [2, 3], "epochs": args.epochs, "cpus": os.cpu_count(),
                                    "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
                                    "build_s": build_s, "target_ms": TARGET_MS, "view3d_buffers_mb": view3d_mb,
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
                res["large_3d"] = {"1e5": measure_large_3d(context, Path(tmp))}
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
