"""AlignmentView: every ordered pair aligned once in Python and sent as buffers; the pair trait."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import toy_results

from marble_widgets.analysis import consistency, procrustes_align
from marble_widgets.widgets import AlignmentView
from marble_widgets.widgets.flow_view import unpack

GROUPS = ["left", "right", "up"]


@pytest.fixture(scope="module")
def emb_pos(ff, emb):
    """The toy embedding with the behaviour the default alignment bins on."""
    return emb.assign_coords(position=("sample", ff["position"].values))


@pytest.fixture(scope="module")
def view(emb_pos):
    return AlignmentView(emb_pos, toy_results.distances(), toy_results.mds(), label="position")


def _members(emb, g):
    return np.flatnonzero(emb["condition"].values == g)


def test_every_ordered_pair_is_aligned_by_procrustes_and_scored(view, emb_pos):
    a = view.arrays()
    pairs = view._meta["pairs"]
    assert pairs == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]
    sizes = [_members(emb_pos, g).size for g in GROUPS]
    np.testing.assert_array_equal(a["group_offsets"], np.r_[0, np.cumsum(sizes)])
    np.testing.assert_array_equal(a["points"], np.concatenate(
        [emb_pos.values[_members(emb_pos, g), :2] for g in GROUPS]).astype(np.float32))
    for k, (i, j) in enumerate(pairs):
        src = emb_pos.isel(sample=_members(emb_pos, GROUPS[i]))
        tgt = emb_pos.isel(sample=_members(emb_pos, GROUPS[j]))
        want = procrustes_align(src, tgt, "position").aligned.values[:, :2]
        got = a["aligned"][a["pair_offsets"][k]:a["pair_offsets"][k + 1]]
        np.testing.assert_array_equal(got, want.astype(np.float32), err_msg=str((i, j)))
        score = float(consistency({"s": src, "t": tgt}, "position").sel(source="s", target="t"))
        assert a["scores"][k] == pytest.approx(score, abs=1e-12)


def test_meta_carries_the_static_figures_and_mds_positions(view):
    heat = view._meta["heatmap"]["data"][0]
    assert heat["type"] == "heatmap" and heat["x"] == GROUPS and heat["y"] == GROUPS
    assert view._meta["mds_xy"] == {"left": [0.0, -1.0], "right": [1.0, 0.0], "up": [2.0, 1.0]}
    assert view._meta["groups"] == GROUPS


def test_pair_trait_validates_and_source_target_set_its_halves(view):
    assert view.pair == ["left", "right"]
    view.source, view.target = "up", "left"
    assert view.pair == ["up", "left"]
    view.target = "up"  # one group against itself is allowed (the page shows it alone)
    assert view.pair == ["up", "up"]
    with pytest.raises(ValueError, match=r"pair=\['down', 'up'\] names \['down'\], not a group; choose two of"):
        view.pair = ["down", "up"]


def test_custom_align_and_score_functions_are_used(emb):
    view = AlignmentView(emb, toy_results.distances(), toy_results.mds(),
                         align_fn=lambda s, t: s.values * 2, consistency_fn=lambda s, t: 0.25)
    a = view.arrays()
    np.testing.assert_array_equal(a["scores"], np.full(6, 0.25))
    right = _members(emb, "right")
    np.testing.assert_array_equal(a["aligned"][a["pair_offsets"][2]:a["pair_offsets"][3]],
                                  (2 * emb.values[right, :2]).astype(np.float32))  # pair (right -> left)


def _no_bins(source, target):
    raise ValueError("no bins.")


def test_bad_inputs_name_the_problem(emb):
    dist, coords = toy_results.distances(), toy_results.mds()
    with pytest.raises(ValueError, match="by='animal' is not a coordinate of the embedding"):
        AlignmentView(emb, dist, coords, by="animal")
    with pytest.raises(ValueError, match=r"absent from the embedding: \['down'\]"):
        AlignmentView(emb, toy_results.distances(("left", "down")), coords)
    with pytest.raises(ValueError, match="aligning 'left' onto 'right' failed: no bins. Pass label="):
        AlignmentView(emb, dist, coords, align_fn=_no_bins)
    with pytest.raises(ValueError, match=r"align_fn returned shape \(3,\) for 'left'"):
        AlignmentView(emb, dist, coords, align_fn=lambda s, t: np.zeros(3), consistency_fn=lambda s, t: 0.0)
    with pytest.raises(ValueError, match="at least 2 latent dims"):
        AlignmentView(emb.isel(latent=[0]), dist, coords, consistency_fn=lambda s, t: 0.0)


def test_to_html_holds_every_pair(view, tmp_path):
    view.pair = ["right", "up"]
    text = view.to_html(tmp_path / "a.html").read_text(encoding="utf-8")
    payload = json.loads(re.search(r"id='mw-payload'>(.*?)</script>", text, re.S).group(1))
    (entry,) = payload["views"]
    assert entry["state"]["pair"] == ["right", "up"] and "_plotly" not in entry["state"]
    assert payload["plotly"]["version"]
    for name, value in view.arrays().items():
        np.testing.assert_array_equal(unpack(entry["state"]["_arrays"][name]), value, err_msg=name)
