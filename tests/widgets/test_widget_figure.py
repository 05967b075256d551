"""FigureWidget (widgets/_figure.py): small loader ESM, one shared bundle, edits and events intact."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import plotly
import plotly.graph_objects as go

from marble_widgets.widgets import EmbeddingExplorer, FlowFieldExplorer
from marble_widgets.widgets import _figure
from marble_widgets.widgets._base import view
from marble_widgets.widgets._figure import LOADER_ESM, FigureWidget, PlotlyBundle, plotly_bundle


def _capture(fw: FigureWidget) -> list[tuple[dict, list]]:
    """Record every comm message the widget sends to the front end (data, buffers)."""
    sent: list[tuple[dict, list]] = []
    fw.comm.send = lambda data=None, metadata=None, buffers=None: sent.append((data, list(buffers or [])))
    return sent


def _points_msg(event: str, inds: list[int], xs: list[float], ys: list[float], selector: Any = None) -> dict:
    """A front-end points message as plotly's widget view builds it (trace 0)."""
    return {"event_type": event, "device_state": None, "selector": selector,
            "points": {"trace_indexes": [0] * len(inds), "point_indexes": inds, "xs": xs, "ys": ys}}


def test_esm_is_the_small_loader_and_the_bundle_travels_separately():
    fw = FigureWidget(go.Scatter(x=[0, 1], y=[1, 0]))
    full = (Path(plotly.__file__).parent / "package_data" / "widgetbundle.js").read_text(encoding="utf-8")
    assert len(full) > 1_000_000
    assert fw._esm == LOADER_ESM and len(fw._esm) < 10_000  # the synced ESM, not plotly's 5 MB
    assert "export default" in fw._esm and "FigureModel" in fw._esm
    assert fw._plotly_bundle.source == full and fw._plotly_bundle.version == plotly.__version__
    assert go.FigureWidget._esm != LOADER_ESM  # plotly's own class is untouched
    assert fw._config["responsive"] is True  # views follow their container's width


def test_all_views_share_one_bundle_widget(ff, emb, ins):
    explorer = EmbeddingExplorer(emb, ff)
    flow = FlowFieldExplorer(ff, ins, emb)
    views = [*explorer.views.values(), *flow.views.values()]
    assert len(views) >= 6 and all(isinstance(v, FigureWidget) for v in views)
    bundles = {id(v._plotly_bundle) for v in views}
    assert bundles == {id(plotly_bundle())}
    # the front end finds it through the serialized reference
    state = views[0].get_state("_plotly_bundle")
    assert state["_plotly_bundle"] == f"IPY_MODEL_{plotly_bundle().model_id}"


def test_closed_bundle_is_recreated():
    first = plotly_bundle()
    first.close()
    second = FigureWidget()._plotly_bundle
    assert isinstance(second, PlotlyBundle) and second is not first and second.comm is not None
    assert plotly_bundle() is second is _figure._BUNDLE


def test_batch_update_still_sends_plotly_edits():
    fw = view(go.Figure(go.Scatter(x=[0.0, 1.0], y=[0.0, 1.0], name="a")), "mw-test")
    assert {"mw-view", "mw-test"} <= set(fw._dom_classes)
    sent = _capture(fw)
    with fw.batch_update():
        fw.data[0].x = np.array([5.0, 6.0, 7.0])
        fw.layout.title.text = "moved"
    updates = [(m, b) for m, b in sent if m["state"].get("_py2js_update")]
    assert len(updates) == 1  # one message for the whole batch
    msg, buffers = updates[0]
    upd = msg["state"]["_py2js_update"]
    assert upd["layout_data"] == {"title.text": "moved"} and upd["style_traces"] == [0]
    assert msg["buffer_paths"] == [["_py2js_update", "style_data", "x", 0, "buffer"]]
    np.testing.assert_array_equal(np.frombuffer(buffers[0], dtype=np.float64), [5.0, 6.0, 7.0])
    np.testing.assert_array_equal(fw.data[0].x, [5.0, 6.0, 7.0])  # and the Python model holds it


def test_selection_and_click_arrive_on_their_own_traits():
    fw = FigureWidget(go.Scatter(x=[0.0, 1.0, 2.0, 3.0], y=[0.0, 1.0, 2.0, 3.0]))
    got: list[tuple[str, list[int], Any]] = []
    fw.data[0].on_selection(lambda tr, pts, sel: got.append(("select", pts.point_inds, sel)))
    fw.data[0].on_click(lambda tr, pts, st: got.append(("click", pts.point_inds, None)))
    fw.data[0].on_unhover(lambda tr, pts, st: got.append(("unhover", pts.point_inds, None)))
    box = {"type": "box", "selector_state": {"xrange": [0.5, 2.5], "yrange": [0.5, 2.5]}}
    fw._js2py_pointsSelection = _points_msg("plotly_selected", [1, 2], [1.0, 2.0], [1.0, 2.0], box)
    fw._js2py_pointsCallback = _points_msg("plotly_unhover", [2], [2.0], [2.0])  # hover path unchanged
    fw._js2py_pointsClick = _points_msg("plotly_click", [3], [3.0], [3.0])
    assert [(kind, inds) for kind, inds, _ in got] == [("select", [1, 2]), ("unhover", [2]), ("click", [3])]
    assert got[0][2].type == "box" and got[0][2].xrange == [0.5, 2.5]
    assert fw._js2py_pointsSelection is None and fw._js2py_pointsClick is None
    fw._js2py_pointsSelection = _points_msg("plotly_selected", [1, 2], [1.0, 2.0], [1.0, 2.0], box)
    assert len(got) == 4  # the same selection again is dispatched again
    for name, event in (("_js2py_pointsClick", "plotly_click"), ("_js2py_pointsSelection", "plotly_selected")):
        assert f'{event}: "{name}"' in LOADER_ESM  # the loader routes these events to these traits


def test_embedding_explorer_hears_a_routed_box_selection_and_clears_the_outline(ff, emb):
    explorer = EmbeddingExplorer(emb, ff)
    fw = explorer.embedding_view
    xy = emb.values[:, :2]
    inds = [3, 7, 11]
    fw._js2py_pointsSelection = _points_msg("plotly_selected", inds, xy[inds, 0].tolist(), xy[inds, 1].tolist())
    assert explorer.selection == inds and explorer.status.value == "<b>3</b> selected"
    np.testing.assert_allclose(np.column_stack([fw.data[-2].x, fw.data[-2].y]), xy[inds])
    sent = _capture(fw)
    explorer.select([])
    updates = [m["state"]["_py2js_update"] for m, _ in sent if m["state"].get("_py2js_update")]
    assert {"style_data": {"selectedpoints": [None]}, "layout_data": {"selections": []}} in [
        {k: u[k] for k in ("style_data", "layout_data")} for u in updates]
    assert explorer.status.value == "no selection"


def test_clear_selections_sends_an_update_without_python_state():
    fw = FigureWidget([go.Scatter(x=[0, 1], y=[0, 1]), go.Scatter(x=[0], y=[1])])
    sent = _capture(fw)
    fw.clear_selections()
    (upd,) = [m["state"]["_py2js_update"] for m, _ in sent if m["state"].get("_py2js_update")]
    assert upd["style_traces"] == [0, 1] and upd["layout_data"] == {"selections": []}
    assert upd["style_data"] == {"selectedpoints": [None]}  # null = plotly's default: nothing dimmed
