"""dashboard(recording=...): the spike raster joins the views, all on one page channel, and is exported."""
from __future__ import annotations

import base64
import json
import re
import uuid

import numpy as np
import pytest
import toy_results

from marble_widgets.widgets import dashboard
from marble_widgets.widgets.page import unpack
from marble_widgets.widgets.raster_view import RasterView


class FakeModel:
    """What dashboard() reads from a fitted MARBLE: inspect, history, params."""

    def __init__(self, ins):
        self._ins = ins
        self.loss_history_ = toy_results.history(6)
        self.best_epoch_ = 4

    def inspect(self, flow_field):
        return self._ins

    def get_params(self):
        return {"k": 5, "out_dim": 3, "epochs": 6}


ALIGN = dict(dist=toy_results.distances(), mds_coords=toy_results.mds(), align_fn=lambda s, t: s,
             consistency_fn=lambda s, t: 0.25)


@pytest.fixture(scope="module")
def board(ff, ins):
    return dashboard(FakeModel(ins), ff, recording=toy_results.recording(ff), raster_window=2.0, title="Toy", **ALIGN)


def test_a_recording_adds_the_raster_at_the_flow_views_sample(board, ff):
    assert list(board.parts) == ["flow", "raster", "alignment", "training"]
    raster = board.raster
    assert isinstance(raster, RasterView) and raster.window == 2.0
    assert raster.sample == board.flow_view.sample and raster.time == ff["time"].values[raster.sample]
    np.testing.assert_array_equal(raster.arrays()["sample_time"], ff["time"].values)


def test_every_view_with_a_channel_shares_one_uuid(board, ff, ins):
    assert board.channel.startswith("mw-") and uuid.UUID(board.channel[3:]).hex == board.channel[3:]
    with_channel = [k for k, v in board.parts.items() if v.has_trait("channel")]
    assert "raster" in with_channel
    assert {board.parts[k].channel for k in with_channel} == {board.channel}
    other = dashboard(FakeModel(ins), ff, recording=toy_results.recording(ff), **ALIGN)
    assert other.channel != board.channel and other.raster.channel == other.channel  # one channel per dashboard


def test_no_recording_no_raster_and_no_warning(ff, ins, recwarn):
    board = dashboard(FakeModel(ins), ff, **ALIGN)
    assert board.raster is None and "raster" not in board.parts
    assert not [w for w in recwarn if "raster" in str(w.message)]


def test_a_recording_that_does_not_cover_the_samples_is_refused(ff, ins):
    short = toy_results.recording(ff).isel(time=slice(0, 20))  # up to 0.95 s; samples run to 5.65 s
    with pytest.raises(ValueError, match=r"results samples have times outside the recording \(-0.025..0.975 s\)"):
        dashboard(FakeModel(ins), ff, recording=short, **ALIGN)


def test_to_html_exports_the_raster_with_its_channel(board, tmp_path):
    board.flow_view.sample = 33
    board.raster.sample = 33
    text = board.to_html(tmp_path / "dash.html").read_text(encoding="utf-8")
    payload = json.loads(re.search(r"id='mw-payload'>(.*?)</script>", text, re.S).group(1))
    state = {v["key"]: v["state"] for v in payload["views"]}
    assert list(state) == ["flow", "raster", "alignment", "training"] and "id='mw-root-raster'" in text
    assert state["raster"]["channel"] == board.channel and state["raster"]["sample"] == 33
    for name, value in board.raster.arrays().items():
        np.testing.assert_array_equal(unpack(state["raster"]["_arrays"][name]), value, err_msg=name)


def _plotly_array(value) -> np.ndarray:
    """A figure JSON array: a list, or plotly's typed-array spec {dtype, bdata (base64), shape}."""
    if not isinstance(value, dict):
        return np.asarray(value, dtype=float)
    data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return data.reshape([int(n) for n in str(value.get("shape", data.size)).split(",")]).astype(float)


@pytest.mark.parametrize("ot_points", [7, None])
def test_default_distances_compare_seeded_subsamples_of_ot_points(ff, ins, ot_points):
    from marble_widgets.analysis import distances

    board = dashboard(FakeModel(ins), ff, align_fn=lambda s, t: s, consistency_fn=lambda s, t: 0.25, ot_points=ot_points)
    emb = board.results["embedding"]
    expected = distances(emb, "condition", max_points=ot_points).values
    z = _plotly_array(board.alignment._meta["heatmap"]["data"][0]["z"])
    np.testing.assert_allclose(z, expected, rtol=1e-12)
    if ot_points is not None:  # the subsample changes the figure: the option is really used
        assert not np.allclose(z, distances(emb, "condition").values)
