"""dashboard(): results built once (or taken as given), its three views, and the one-page export."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import toy_results
import xarray as xr

from marble_widgets.widgets import AlignmentView, FlowView, TrainingView, dashboard
from marble_widgets.widgets.flow_view import PLOTLY_JS, unpack


def results_of(ff, ins):
    """The toy flow field with the toy inspect variables (feature coords included): the results schema."""
    ds = xr.merge([ff, ins], join="exact", combine_attrs="override")
    return ds.assign_attrs({k: ins.attrs[k] for k in ("manifold_dim", "order", "local_gauges")})


class FakeModel:
    """What dashboard() reads from a fitted MARBLE: inspect (or results), history, params."""

    def __init__(self, ins, history=True):
        self._ins = ins
        self.calls = []
        if history:
            self.loss_history_ = toy_results.history(6)
            self.best_epoch_ = 4

    def inspect(self, flow_field):
        self.calls.append("inspect")
        return self._ins

    def get_params(self):
        return {"k": 5, "out_dim": 3, "epochs": 6}


class ResultsModel(FakeModel):
    def results(self, flow_field):
        self.calls.append("results")
        return results_of(flow_field, self._ins)


ALIGN = dict(dist=toy_results.distances(), mds_coords=toy_results.mds(), align_fn=lambda s, t: s,
             consistency_fn=lambda s, t: 0.25)


@pytest.fixture(scope="module")
def board(ff, ins):
    model = FakeModel(ins)
    return dashboard(model, ff, title="Toy", **ALIGN), model


def test_flow_field_gets_results_built_once_and_three_views(board, ins, ff):
    board, model = board
    assert model.calls == ["inspect"]
    assert list(board.parts) == ["flow", "alignment", "training"]
    assert isinstance(board.flow_view, FlowView) and isinstance(board.alignment, AlignmentView)
    assert isinstance(board.training, TrainingView) and board.training.best_epoch == 4
    a = board.flow_view.arrays()
    np.testing.assert_array_equal(a["neighbors"], ins["neighbors"].values)  # MARBLE's own graph, -1 kept
    np.testing.assert_array_equal(a["embedding"], ins["embedding"].values[:, :2].astype(np.float32))
    np.testing.assert_array_equal(a["x"], ff["x"].values[:, :2].astype(np.float32))
    # starts mid-way through the first trajectory (15 steps: its 8th sample in time order)
    assert board.flow_view.sample == int(a["order"][7])
    assert board.children[0] is board.header and "Toy" in board.header.value
    assert board.embedding_explorer is board.flow_explorer is board.flow_view
    assert "mw-dashboard" in board._dom_classes


def test_results_dataset_is_drawn_without_recomputing(ff, ins):
    model = FakeModel(ins, history=False)
    ds = results_of(ff, ins)
    board = dashboard(model, ds, **ALIGN)
    assert model.calls == [] and board.training is None and list(board.parts) == ["flow", "alignment"]
    assert board.results is ds


def test_model_results_is_preferred_over_inspect(ff, ins):
    model = ResultsModel(ins)
    board = dashboard(model, ff.assign(direction=("sample", np.ones(90))), **ALIGN)
    assert model.calls == ["results"] and board.results["feature_order"].dims == ("feature",)
    # a behaviour variable named like a plain word (the rat's direction) reaches the results as is
    np.testing.assert_array_equal(board.results["direction"].values, np.ones(90))


def test_given_embedding_replaces_the_stored_one(ff, ins, emb):
    other = emb.copy(data=emb.values[:, ::-1])
    board = dashboard(FakeModel(ins), ff, embedding=other, inspect_ds=ins, **ALIGN)
    np.testing.assert_array_equal(board.flow_view.arrays()["embedding"], other.values[:, :2].astype(np.float32))


def test_one_condition_means_no_alignment_and_failures_warn(ff, ins):
    one = ff.isel(sample=np.flatnonzero(ff["condition"].values == "left"))
    one = one.assign_coords(sample=np.arange(one.sizes["sample"]))
    board = dashboard(FakeModel(toy_results.inspect(one)), one)
    assert board.alignment is None and list(board.parts) == ["flow", "training"]

    def bad_align(source, target):
        raise ValueError("no shared bins.")

    with pytest.warns(UserWarning, match="alignment view left out: aligning 'left' onto 'right' failed: no shared"):
        board = dashboard(FakeModel(ins), ff, **{**ALIGN, "align_fn": bad_align})
    assert board.alignment is None and list(board.parts) == ["flow", "training"]


def test_default_alignment_bins_on_a_behaviour_variable_of_the_flow_field(ff, ins):
    from marble_widgets.analysis import procrustes_align

    board = dashboard(FakeModel(ins), ff, dist=toy_results.distances(), mds_coords=toy_results.mds(), label="position")
    emb = ins["embedding"].assign_coords(position=("sample", ff["position"].values),
                                         condition=("sample", ff["condition"].values))
    left, right = (emb.isel(sample=np.flatnonzero(ff["condition"].values == g)) for g in ("left", "right"))
    a = board.alignment.arrays()
    np.testing.assert_array_equal(a["aligned"][:a["pair_offsets"][1]],
                                  procrustes_align(left, right, "position").aligned.values[:, :2].astype(np.float32))
    assert np.isfinite(a["scores"]).all()


def test_bad_input_names_the_argument(ff, ins):
    with pytest.raises(TypeError, match="flow_field must be an xarray.Dataset"):
        dashboard(FakeModel(ins), ff["x"])
    with pytest.raises(ValueError, match=r"the results lack \['neighbors'\]"):
        dashboard(FakeModel(ins), ff, inspect_ds=ins.drop_vars("neighbors"))


def _payload(text: str) -> dict:
    return json.loads(re.search(r"<script type='application/json' id='mw-payload'>(.*?)</script>", text, re.S).group(1))


def test_to_html_is_one_interactive_page_with_every_view(board, tmp_path):
    board, _ = board
    board.flow_view.sample = 40
    board.alignment.pair = ["up", "left"]
    path = board.to_html(tmp_path / "out" / "dash.html", title="Toy <dash>")
    text = path.read_text(encoding="utf-8")
    assert "<title>Toy &lt;dash&gt;</title>" in text and "mw-dashboard-head" in text
    assert not re.search(r"<script[^>]*\bsrc=", text, re.I)
    payload = _payload(text)
    assert [v["key"] for v in payload["views"]] == ["flow", "alignment", "training"]
    assert text.count(payload["plotly"]["source"][:200]) == 1  # plotly.js once for the whole page
    state = {v["key"]: v["state"] for v in payload["views"]}
    assert state["flow"]["sample"] == 40 and state["alignment"]["pair"] == ["up", "left"]
    assert all("_plotly" not in s for s in state.values())
    for key, view in board.parts.items():
        for name, value in view.arrays().items():
            np.testing.assert_array_equal(unpack(state[key]["_arrays"][name]), value, err_msg=f"{key}/{name}")
    for key in ("flow", "alignment", "training"):
        assert f"id='mw-root-{key}'" in text
    assert path.stat().st_size < 1.5 * PLOTLY_JS.stat().st_size  # compressed buffers and plotly.js

