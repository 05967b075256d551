"""FlowView (browser-drawn flow explorer): buffers, trait validation, self-contained HTML export."""
from __future__ import annotations

import base64
import json
import re
import zlib

import ipywidgets as widgets
import numpy as np
import pytest

from marble_widgets.widgets.flow_view import PLOTLY_JS, FlowView, pack, plotly_library, unpack


@pytest.fixture(scope="module")
def view(ff, emb):
    return FlowView(ff, emb)


def _knn(x: np.ndarray, k: int) -> np.ndarray:
    """Brute-force k nearest other samples (independent of sklearn)."""
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    return np.argsort(d2, axis=1, kind="stable")[:, :k]


def _time_order(ff) -> np.ndarray:
    cond, trial, time = (ff[k].values for k in ("condition", "trial", "time"))
    return np.lexsort((time, trial, np.unique(cond, return_inverse=True)[1]))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "uint8"])
@pytest.mark.parametrize("compress", [False, True])
def test_pack_round_trips_exactly(dtype, compress):
    a = (np.random.default_rng(0).standard_normal((7, 3)) * 50).astype(dtype)
    entry = pack(a, dtype, compress=compress)
    assert isinstance(entry["buffer"], bytes) and entry["shape"] == [7, 3]
    assert len(entry["buffer"]) == a.nbytes or compress
    out = unpack(entry)
    assert out.dtype == np.dtype(dtype) and np.array_equal(out, a)
    b64 = {**entry, "buffer": base64.b64encode(entry["buffer"]).decode()}
    assert np.array_equal(unpack(b64), a)


def test_pack_rejects_unknown_dtype():
    with pytest.raises(ValueError, match="dtype must be one of"):
        pack(np.zeros(3), "int64")


def test_buffers_hold_the_arrays(view, ff, emb):
    got = view.arrays()
    np.testing.assert_array_equal(got["x"], ff["x"].values[:, :2].astype(np.float32))
    np.testing.assert_array_equal(got["v"], ff["v"].values[:, :2].astype(np.float32))
    np.testing.assert_array_equal(got["embedding"], emb.values[:, :2].astype(np.float32))
    np.testing.assert_array_equal(got["time"], ff["time"].values)
    np.testing.assert_array_equal(got["neighbors"], _knn(ff["x"].values, 10))
    np.testing.assert_array_equal(got["order"], _time_order(ff))
    np.testing.assert_array_equal(got["offsets"], np.arange(0, 91, 15))  # 6 trajectories of 15 steps
    assert view._meta["trajectories"] == [["left", 0], ["left", 1], ["right", 2], ["right", 3], ["up", 4], ["up", 5]]
    codes = np.unique(ff["condition"].values, return_inverse=True)[1]
    np.testing.assert_array_equal(got["color:condition"], codes)
    np.testing.assert_array_equal(got["color:position"], ff["position"].values.astype(np.float32))
    assert view._meta["colors"]["condition"]["colorbar"]["ticktext"] == ["left", "right", "up"]


def test_arrays_travel_as_binary_buffers_not_json(view, ff):
    from ipywidgets.widgets.widget import _remove_buffers

    state, paths, buffers = _remove_buffers(view.get_state())
    assert ["_arrays", "x", "buffer"] in paths
    x_buf = buffers[paths.index(["_arrays", "x", "buffer"])]
    assert bytes(x_buf) == ff["x"].values[:, :2].astype("<f4").tobytes()
    # besides the module text, the JSON state is small: no per-sample numbers travel as JSON
    small = {k: v for k, v in state.items() if k not in ("_esm", "_css")}
    assert len(json.dumps(small)) < 6_000


def test_dims_3_sends_three_columns(ff):
    view = FlowView(ff, dims=3)
    np.testing.assert_array_equal(view.arrays()["x"], ff["x"].values.astype(np.float32))
    assert view._meta["dims"] == ["PC1", "PC2", "PC3"] and view._meta["n_dims"] == 3


def test_neighbors_from_inspect_are_used_verbatim(ff, ins):
    got = FlowView(ff, neighbors=ins).arrays()["neighbors"]
    np.testing.assert_array_equal(got, ins["neighbors"].values)  # -1 padding kept
    assert "embedding" not in FlowView(ff, neighbors=ins).arrays()


def test_plotly_library_is_shared_and_is_plotly_min_js(ff, emb, view):
    other = FlowView(ff, emb)
    assert other._plotly is view._plotly is plotly_library()
    assert zlib.decompress(view._plotly.source) == PLOTLY_JS.read_bytes()
    assert re.fullmatch(r"\d+\.\d+\.\d+", view._plotly.version)
    assert isinstance(view._plotly, widgets.Widget)


def test_setting_traits_validates(view):
    view.sample = 17
    assert view.sample == 17
    with pytest.raises(ValueError, match=r"sample=90 is out of range; choose 0 <= sample < 90"):
        view.sample = 90
    view.color_by = "position"
    with pytest.raises(ValueError, match=r"color_by='speed' is not .*choose one of \['condition'"):
        view.color_by = "speed"
    view.color_by = ""
    view.selection = [5, 3, 3]
    assert view.selection == [3, 5]
    with pytest.raises(ValueError, match=r"selection holds indices outside \[0, 90\)"):
        view.selection = [1, 90]
    with pytest.raises(ValueError, match=r"fps=0.0 must be in \(0, 240\]"):
        view.fps = 0


def test_bad_inputs_name_the_argument(ff, emb):
    with pytest.raises(ValueError, match="embedding has 89 samples but flow_field has 90"):
        FlowView(ff, emb.isel(sample=slice(1, None)))
    with pytest.raises(ValueError, match=r"neighbors must be an int array of shape \(90, k\)"):
        FlowView(ff, neighbors=np.zeros((90, 3)))
    with pytest.raises(ValueError, match=r"neighbors holds indices outside \[-1, 90\)"):
        FlowView(ff, neighbors=np.full((90, 3), 90))
    with pytest.raises(ValueError, match="k=90 neighbours is impossible with 90 samples"):
        FlowView(ff, k=90)
    with pytest.raises(ValueError, match="dims must be 2 or 3"):
        FlowView(ff, dims=4)
    with pytest.raises(ValueError, match="lacks the sample coord 'trial'"):
        FlowView(ff.drop_vars("trial"))
    with pytest.raises(TypeError, match="flow_field must be an xarray.Dataset"):
        FlowView(ff["x"])


def _payload(text: str) -> dict:
    match = re.search(r"<script type='application/json' id='mw-payload'>(.*?)</script>", text, re.S)
    return json.loads(match.group(1))


def test_to_html_is_self_contained_and_holds_everything(view, ff, emb, tmp_path):
    view.sample, view.color_by = 33, "time"
    path = view.to_html(tmp_path / "sub" / "flow.html", title="Toy <flow>")
    text = path.read_text(encoding="utf-8")
    assert "<title>Toy &lt;flow&gt;</title>" in text
    assert not re.search(r"<script[^>]*\bsrc=", text, re.I)  # nothing loaded from anywhere
    assert not re.search(r"""(import|from)\s*\(?\s*["']https?:""", text)
    payload = _payload(text)
    assert payload["esm"] == (view._esm if isinstance(view._esm, str) else view._esm.read_text())
    state = payload["state"]
    assert (state["sample"], state["color_by"], state["playing"]) == (33, "time", False)
    assert state["_meta"]["title"] == "Toy <flow>"
    assert zlib.decompress(base64.b64decode(state["_plotly"]["source"])) == PLOTLY_JS.read_bytes()
    arrays = {k: unpack(e) for k, e in state["_arrays"].items()}
    assert all(e["compression"] == "deflate" for e in state["_arrays"].values())
    assert arrays.keys() == view.arrays().keys()
    for name, value in view.arrays().items():
        np.testing.assert_array_equal(arrays[name], value, err_msg=name)
    # compressed: smaller than plotly.min.js alone
    assert path.stat().st_size < PLOTLY_JS.stat().st_size
