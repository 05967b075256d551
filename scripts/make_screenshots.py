"""Render the README/docs screenshots of the dashboards from their interactive HTML exports.

Fits MARBLE on the rat demo (``marble_widgets.demo``) and on MC_Maze_Small (several reach
conditions, so the alignment view appears), exports both dashboards with ``Dashboard.to_html``
(the browser-drawn views: FlowView, RasterView, AlignmentView, TrainingView) and photographs them with
Playwright driving the system Chromium (never ``playwright install``):

    docs/demo_report.png          the whole rat dashboard page, scaled down
    docs/dashboard_flow.png       rat: the flow view (state space, embedding, local flow, behaviour ...)
    docs/dashboard_embedding.png  rat: the flow view's embedding panel
    docs/dashboard_raster.png     rat: the spike raster following the flow view's sample
    docs/dashboard_training.png   rat: the training view
    docs/dashboard_alignment.png  MC_Maze_Small: distances, MDS map, aligned pair
    docs/dashboard_state_3d.png   MC_Maze_Small: the flow view's 3-D state scene (dims=3), reach conditions

Run: ``python scripts/make_screenshots.py [--epochs 20] [--out docs]``. Every PNG is kept under
400 KB (palette-quantised, and scaled down if still too big).
"""
from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
MAX_BYTES = 400_000
WIDTH = 1440


def export_rat(work: Path, epochs: int) -> Path:
    """The rat demo (``marble_widgets.demo.run``): fit, decode, export ``demo.html``."""
    from marble_widgets import demo
    demo.run(work, epochs=epochs, verbose=False)
    return work / "demo.html"


def export_maze(work: Path, epochs: int) -> Path:
    """MC_Maze_Small, 6 reach conditions: flow field -> MARBLE -> dashboard export (3-D state scene)."""
    import marble_widgets as mw
    rec = mw.datasets.mc_maze_small(bin_size=0.02)
    ff = mw.flow_field(rec, n_components=5, smooth=0.1, condition="condition")
    model = mw.MARBLE(order=2, k=30, delta=1.5, out_dim=3, epochs=epochs, verbose=False).fit(ff)
    board = mw.dashboard(model, ff, dims=3, title="MARBLE on MC_Maze_Small (NLB, monkey J, reaching)")
    board.flow_view.color_by = "condition"
    return board.to_html(work / "maze.html")


def small_png(png: bytes, path: Path, width: int | None = None) -> Path:
    """Write ``png`` to ``path`` under MAX_BYTES: optional resize, then palette quantisation."""
    from PIL import Image
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if width is not None and image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    while True:
        buf = io.BytesIO()
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
        if buf.tell() < MAX_BYTES or image.width < 500:
            path.write_bytes(buf.getvalue())
            return path
        image = image.resize((int(image.width * 0.85), int(image.height * 0.85)), Image.LANCZOS)


def shoot(html: Path, shots: dict[str, str | None], out: Path) -> list[Path]:
    """Open ``html`` in Chromium; save each ``{name: css selector or None (whole page)}``."""
    from playwright.sync_api import sync_playwright
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
        page.goto(html.resolve().as_uri(), timeout=240_000)
        page.wait_for_selector("body[data-ready=true]", timeout=240_000)  # every view has drawn itself
        page.wait_for_timeout(5000)  # point layers and the (throttled) features panel finish painting
        for name, selector in shots.items():
            if selector is None:
                png, width = page.screenshot(full_page=True), 900
            else:
                png, width = page.locator(selector).screenshot(), None
            written.append(small_png(png, out / f"{name}.png", width))
        browser.close()
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20, help="training epochs per model")
    parser.add_argument("--out", default="docs", help="folder for the PNGs")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rat, maze = export_rat(work, args.epochs), export_maze(work, args.epochs)
        written = shoot(rat, {"demo_report": None, "dashboard_flow": "#mw-root-flow",
                              "dashboard_embedding": "#mw-root-flow .mw-fv-panel-embedding",
                              "dashboard_raster": "#mw-root-raster",
                              "dashboard_training": "#mw-root-training"}, out)
        written += shoot(maze, {"dashboard_alignment": "#mw-root-alignment",
                                "dashboard_state_3d": "#mw-root-flow .mw-fv-panel-state"}, out)
    for path in written:
        print(f"{path}  {path.stat().st_size / 1000:.0f} KB")
    return written


if __name__ == "__main__":
    main()
