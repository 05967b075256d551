"""FlowView with a 10^5-point cloud in the exported page (file://): click-to-jump and box selection select
exact indices with either point-layer backend, and a click with nothing selected redraws no cloud."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lab
from test_flow_view_browser import EMB, ROOT, VIEW_JS, _shown_selection, _wait_drawn, _wait_selection

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

# --- a 10^5-point cloud: click-to-jump and box selection ------------------------------------------
N_LARGE = 100_000


def large_view(n: int) -> Any:
    """``benchmarks/client_view_large.large_view``: n synthetic samples, uniform random 2-D embedding."""
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from client_view_large import large_view as build

    return build(n)


@pytest.fixture(scope="module")
def built_large(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    view = large_view(N_LARGE)
    path = view.to_html(tmp_path_factory.mktemp("flow_view_large") / "flow.html")
    return {"url": path.resolve().as_uri(), "emb": view.arrays()["embedding"].astype(float)}


def _pixels(page: Any, sel: str, points: np.ndarray) -> np.ndarray:
    """Page pixels of data ``points`` on plot ``sel`` (plotly's axis transform, applied here)."""
    ax = page.evaluate("""s => { const gd = document.querySelector(s), fl = gd._fullLayout;
        const box = gd.querySelector('.main-svg').getBoundingClientRect();
        return [box.left + fl.xaxis._offset, fl.xaxis._length, ...fl.xaxis.range,
                box.top + fl.yaxis._offset, fl.yaxis._length, ...fl.yaxis.range]; }""", sel)
    x0, w, xa, xb, y0, hgt, ya, yb = ax
    return np.column_stack([x0 + (points[:, 0] - xa) / (xb - xa) * w, y0 + (yb - points[:, 1]) / (yb - ya) * hgt])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["auto", "webgl"])
def test_large_cloud_click_jumps_and_box_selects_exact_indices(page: Any, built_large: dict[str, Any],
                                                                backend: str) -> None:
    """10^5 points: click-to-jump and box selection, with the point layer chosen for this browser (CPU
    splats under software GL) and with the WebGL one forced."""
    from scipy.spatial import cKDTree

    if backend == "webgl":
        page.add_init_script("globalThis.__mwPointLayer = 'webgl'")
    page.goto(built_large["url"])
    page.wait_for_selector(f"{ROOT}[data-ready=true]", timeout=60_000)
    used = page.evaluate(f"() => Object.values({VIEW_JS}.layers).map(l => l.backend)")
    assert used == (["webgl", "webgl"] if backend == "webgl" else ["cpu", "cpu"])  # chromium here: SwiftShader
    emb = built_large["emb"]
    px = _pixels(page, EMB, emb)
    dist, _ = cKDTree(px).query(px, k=2)
    target = int(np.argmax(dist[:, 1]))  # the most isolated point on screen
    assert dist[target, 1] > 2
    splats = f"() => Object.values({VIEW_JS}.layers).map(l => l.splats)"
    before = page.evaluate(splats)
    page.mouse.click(*px[target])
    _wait_drawn(page, target)
    assert page.locator(".mw-fv-status").inner_text().startswith(f"sample {target} ·")
    page.wait_for_timeout(300)  # plotly's deselect comes after the click
    assert page.evaluate(splats) == before  # nothing selected: the click redraws no cloud, only the marks
    # box selection: the page selects exactly the points inside the range plotly reports
    page.evaluate("""() => document.querySelector('.mw-fv-embedding').on('plotly_selected', e => { window.__range = e.range; })""")
    a, b = np.array([-0.5, 0.5]), np.array([0.2, -0.3])
    (ax, ay), (bx, by) = _pixels(page, EMB, np.array([a, b]))
    page.mouse.move(ax, ay)
    page.mouse.down()
    page.mouse.move(bx, by, steps=8)
    page.mouse.up()
    page.wait_for_function("() => window.__range && document.querySelector('.mw-fv').dataset.selected !== undefined")
    rng = page.evaluate("() => window.__range")
    (x0, x1), (y0, y1) = sorted(rng["x"]), sorted(rng["y"])
    inside = np.flatnonzero((emb[:, 0] >= x0) & (emb[:, 0] <= x1) & (emb[:, 1] >= y0) & (emb[:, 1] <= y1))
    assert 0.05 * N_LARGE < inside.size < 0.4 * N_LARGE
    page.wait_for_function("n => document.querySelector('.mw-fv').dataset.selected === String(n)", arg=int(inside.size))
    _wait_selection(page, inside)
    shown = _shown_selection(page)
    assert shown["drawn"] == {"state": inside.size, "embedding": inside.size}
    np.testing.assert_array_equal(shown["selection"], inside)
    lab.screenshot(page, f"flow_view_export_1e5_selection_{backend}")
    assert not page.js_errors
