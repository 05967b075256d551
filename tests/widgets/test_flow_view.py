"""FlowView (browser-drawn flow explorer): buffers, trait validation, self-contained HTML export."""
from __future__ import annotations

import base64
import json
import re
import zlib

import ipywidgets as widgets
import numpy as np
import pytest
import xarray as xr

from marble_widgets.widgets.flow_view import PLOTLY_JS, FlowView, esm_text, pack, plotly_library, unpack
from marble_widgets.widgets.page import pack_quantized, quantization_error


@pytest.fixture(scope="module")
def view(ff, emb):
    return FlowView(ff, emb)


def results_of(ff: xr.Dataset, ins: xr.Dataset) -> xr.Dataset:
    """The results Dataset (MARBLE.results schema): the flow field, the inspection and the feature coords."""
    toks = [str(n).split() for n in ins["feature"].values]
    order = [-1 if t[0] == "pos" else len(t) - 1 for t in toks]
    component = [int(t[-1].lstrip("vPC")) - 1 for t in toks]
    direction = [" ".join(t[:-1]) if o > 0 else "" for t, o in zip(toks, order)]
    ins = ins.assign_coords(feature_order=("feature", order), feature_component=("feature", component),
                            feature_direction=("feature", direction))
    return xr.merge([ff, ins])


@pytest.fixture(scope="module")
def res(ff, ins):
    return results_of(ff, ins)


def _knn(x: np.ndarray, k: int) -> np.ndarray:
    """Brute-force k nearest other samples (independent of sklearn)."""
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    return np.argsort(d2, axis=1, kind="stable")[:, :k]


def _time_order(ff) -> np.ndarray:
    cond, trial, time = (ff[k].values for k in ("condition", "trial", "time"))
    return np.lexsort((time, trial, np.unique(cond, return_inverse=True)[1]))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "uint8", "uint16"])
@pytest.mark.parametrize("compress", [False, True])
def test_pack_round_trips_exactly(dtype, compress):
    a = np.abs(np.random.default_rng(0).standard_normal((7, 3)) * 50).astype(dtype)
    entry = pack(a, dtype, compress=compress)
    assert isinstance(entry["buffer"], bytes) and entry["shape"] == [7, 3]
    assert len(entry["buffer"]) == a.nbytes or entry.get("compression") == "deflate"
    out = unpack(entry)
    assert out.dtype == np.dtype(dtype) and np.array_equal(out, a)
    b64 = {**entry, "buffer": base64.b64encode(entry["buffer"]).decode()}
    assert np.array_equal(unpack(b64), a)


def test_pack_leaves_incompressible_bytes_alone():
    noise = np.random.default_rng(1).standard_normal(4096).astype(np.float32)
    entry = pack(noise, "float32", compress=True)
    assert "compression" not in entry and entry["buffer"] == noise.tobytes()
    smooth = pack(np.zeros(4096), "float32", compress=True)
    assert smooth["compression"] == "deflate" and len(smooth["buffer"]) < 200
    np.testing.assert_array_equal(unpack(smooth), np.zeros(4096, np.float32))


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
    assert view._selection == np.array([3, 5], "<i4").tobytes()  # what travels: int32 bytes
    np.testing.assert_array_equal(view.selected, [3, 5])
    view._selection = np.array([40, 7], "<i4").tobytes()  # as the page sends it
    assert view.selection == [7, 40]
    view.selected = np.arange(3)
    assert view.selection == [0, 1, 2]
    with pytest.raises(ValueError, match="multiple of 4 bytes"):
        view._selection = b"\x01\x02\x03"
    view.selection = []
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
    (only,) = payload["views"]  # the same one-page format as the dashboard's export
    assert only["key"] == "flow" and only["esm"] == esm_text() == view._esm
    state = only["state"]
    assert (state["sample"], state["color_by"], state["playing"]) == (33, "time", False)
    assert state["_meta"]["title"] == "Toy <flow>"
    assert zlib.decompress(base64.b64decode(payload["plotly"]["source"])) == PLOTLY_JS.read_bytes()
    arrays = {k: unpack(e) for k, e in state["_arrays"].items()}
    # compressed where that saves >= 10 % (here every array but the noisy float ones may shrink)
    for name, e in state["_arrays"].items():
        raw = view.arrays()[name].astype(np.dtype(e["dtype"])).nbytes
        assert (e.get("compression") == "deflate") == (len(base64.b64decode(e["buffer"])) < raw), name
    assert arrays.keys() == view.arrays().keys()
    for name, value in view.arrays().items():
        np.testing.assert_array_equal(arrays[name], value, err_msg=name)
    # compressed: smaller than plotly.min.js alone
    assert path.stat().st_size < PLOTLY_JS.stat().st_size


# --- from MARBLE's results Dataset ---------------------------------------------------------------
def test_results_dataset_buffers_equal_its_values(res):
    view = FlowView(res)
    got = view.arrays()
    np.testing.assert_array_equal(got["neighbors"], res["neighbors"].values)  # MARBLE's own graph, -1 kept
    np.testing.assert_array_equal(got["embedding"], res["embedding"].values[:, :2].astype(np.float32))
    # features travel as per-feature 8-bit codes: within half a step, (max - min) / 508, of the Dataset's values
    f = res["features"].values
    bound = (f.max(axis=0) - f.min(axis=0)) / 508
    assert view._arrays["features"]["dtype"] == "uint8" and len(view._arrays["features"]["buffer"]) == f.size
    assert (np.abs(got["features"] - f) <= bound * (1 + 1e-6) + 2.0**-23 * np.abs(f)).all()
    assert np.abs(got["features"] - f).max() > 0  # quantised, not sent as float32
    np.testing.assert_array_equal(got["transported"], res["transported"].values[:, :, :2].astype(np.float32))
    assert np.isnan(got["transported"][0, -2:]).all()  # where neighbors == -1
    np.testing.assert_array_equal(got["frame"], res["frame"].values[:, :, :2].astype(np.float32))
    np.testing.assert_array_equal(got["xf"], res["x"].values.astype(np.float32))
    np.testing.assert_array_equal(got["vf"], res["v"].values.astype(np.float32))
    feats = view._meta["features"]
    assert feats["names"] == ["v1", "v2", "d1 v1", "d2 v1", "d1 v2", "d2 v2"]
    assert feats["order"] == [0, 0, 1, 1, 1, 1] and feats["component"] == [0, 1, 0, 0, 1, 1]
    assert feats["direction"] == ["", "", "d1", "d2", "d1", "d2"]
    assert feats["scale"] == pytest.approx(np.percentile(np.abs(res["features"].values), 99.5))
    assert view._meta["tangent_dims"] == 2
    # results variables are read by the views, not offered as colours; behaviour keys are the numeric ones
    assert view.color_keys == ["condition", "trial", "time", "position", "hand_velocity[0]", "hand_velocity[1]"]
    assert view.behaviour_keys == ["position", "hand_velocity[0]", "hand_velocity[1]"]
    np.testing.assert_array_equal(got["color:hand_velocity[1]"], res["hand_velocity"].values[:, 1].astype(np.float32))
    assert FlowView.from_results(res).arrays().keys() == got.keys()
    lean = FlowView(res, features=False)  # the largest buffer left out on request
    assert "features" not in lean.arrays() and "features" not in lean._meta and "transported" in lean.arrays()


def test_results_one_tangent_dim_gets_a_zero_column(res):
    one = res.isel(tangent=[0])
    got = FlowView(one).arrays()
    np.testing.assert_array_equal(got["transported"][..., 0], one["transported"].values[..., 0].astype(np.float32))
    np.testing.assert_array_equal(got["transported"][..., 1][res["neighbors"].values >= 0], 0)
    np.testing.assert_array_equal(got["frame"][..., 1], 0)


def test_results_validation_names_the_problem(res, ff):
    with pytest.raises(ValueError, match="neighbors= cannot be combined with a results Dataset"):
        FlowView(res, neighbors=res["neighbors"].values)
    coords = ["feature_order", "feature_component", "feature_direction"]
    with pytest.raises(ValueError, match=r"lacks the feature coords \['feature_order', 'feature_component', "
                                         r"'feature_direction'\]"):
        FlowView(res.drop_vars(coords))
    # the earlier spelling (order/component/direction) is read too
    legacy = FlowView(res.rename({c: c.removeprefix("feature_") for c in coords}))
    assert legacy._meta["features"] == FlowView(res)._meta["features"]
    with pytest.raises(ValueError, match="results"):
        FlowView.from_results(ff)
    with pytest.raises(TypeError, match="results must be an xarray.Dataset"):
        FlowView.from_results(res["x"])
    view = FlowView(res)
    view.behaviour = "hand_velocity[0]"
    with pytest.raises(ValueError, match=r"behaviour='condition' is not a numeric per-sample variable.*'position'"):
        view.behaviour = "condition"


def test_named_colour_scales_travel_as_explicit_stops(view):
    import plotly.colors

    stops = view._meta["colors"]["position"]["colorscale"]
    assert stops == [[float(t), c] for t, c in plotly.colors.get_colorscale("Viridis")]
