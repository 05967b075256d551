"""benchmarks/exp_rat_diverse.py (issue 16): member overrides, seeds, greedy selection and row merging."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import exp_rat_diverse as diverse  # noqa: E402

from marble_widgets import recipes  # noqa: E402

RECOMMENDED = recipes.get("rat_recommended")


def test_member_overrides_change_one_setting_of_rat_recommended():
    from marble_widgets.estimator import PARAMETERS

    flow, params, scale = diverse.member_settings("smooth 0.15")
    assert (flow, params, scale) == ({"n_components": 10, "smooth": 0.15}, RECOMMENDED.marble, None)
    assert diverse.member_settings("n_components 12")[0] == {"n_components": 12, "smooth": 0.25}
    flow, params, scale = diverse.member_settings("graph k 100")
    assert flow == RECOMMENDED.flow_field and params == {**RECOMMENDED.marble, "k": 100} and scale is None
    assert diverse.member_settings("order 2")[1]["order"] == 2 and RECOMMENDED.marble["order"] == 1
    assert diverse.member_settings("v x3") == (RECOMMENDED.flow_field, RECOMMENDED.marble, 3.0)
    for name in diverse.MEMBERS:
        assert set(diverse.member_settings(name)[1]) <= set(PARAMETERS), name


def test_members_with_equal_inputs_share_one_input_key():
    keys = {name: diverse.input_key(name) for name in diverse.MEMBERS}
    assert keys["recommended"] == keys["graph k 100"] == keys["order 2"] == "n10_s0.25"
    assert (keys["v x3"], keys["smooth 0.4"], keys["n_components 8"]) == ("n10_s0.25_v3", "n10_s0.4", "n8_s0.25")


def _stub_pair(calls: list) -> object:
    def flow_pair(fit, val, n_components, smooth):
        calls.append((fit, val, n_components, smooth))
        v = np.arange(6.0).reshape(3, 2) + n_components
        ff = xr.Dataset({"x": (("sample", "d"), -v), "v": (("sample", "d"), v)})
        return ff, ff + 1
    return flow_pair


def test_fits_build_each_members_input_on_its_split_with_v_scaled(monkeypatch):
    import fidelity

    calls: list = []
    monkeypatch.setattr(fidelity, "rat_parts", lambda fraction=0.8, start=0.0, stop=1.0: (fraction, stop))
    monkeypatch.setattr(fidelity, "flow_pair", _stub_pair(calls))
    fits = diverse.Fits("inner")
    fit, val = fits.pair("v x3")
    plain = _stub_pair([])(None, None, 10, 0.25)
    np.testing.assert_array_equal(fit["v"].values, 3 * plain[0]["v"].values)
    np.testing.assert_array_equal(val["v"].values, 3 * plain[1]["v"].values)
    np.testing.assert_array_equal(fit["x"].values, plain[0]["x"].values)
    assert fits.pair("graph k 300") is fits.pair("order 2")  # same input: built once
    diverse.Fits("protocol").pair("smooth 0.4")
    assert calls == [(0.6, 0.8, 10, 0.25), (0.6, 0.8, 10, 0.25), (0.8, 1.0, 10, 0.4)]


def test_screen_seeds_count_copies_and_package_seeds_match_marble_ensemble():
    assert diverse.screen_seeds(["recommended", "graph k 100", "recommended"], 2) == [10, 10, 11]
    with pytest.raises(ValueError, match="at most 5 copies of one candidate"):
        diverse.screen_seeds(["recommended"] * 6, 0)
    concat = recipes.get("rat_ensemble_concat").ensemble(seed=3)
    assert diverse.package_seeds(["recommended"] * 5, 3) == concat.member_seeds == [15, 16, 17, 18, 19]
    assert diverse.package_seeds(["a", "b", "c"], 2) == [6, 7, 8]


def test_greedy_adds_the_best_candidate_until_none_improves():
    cost = {"a": 3.0, "b": 1.0, "c": 2.0}

    def score(members: list[str]) -> float:  # best near a total of 6
        return abs(sum(cost[m] for m in members) - 6.0)

    chosen, steps = diverse.greedy(list(cost), score, ["a"], max_size=6)
    assert chosen == ["a", "a"]  # 3 -> 6 exactly, then every addition is worse
    assert steps[0] == {"members": ["a"], "score": 3.0}
    assert steps[1]["pick"] == "a" and steps[1]["tried"] == {"a": 0.0, "b": 2.0, "c": 1.0}
    assert steps[-1]["improves"] is False and len(steps) == 3
    assert diverse.greedy(list(cost), score, ["b"], max_size=2)[0] == ["b", "a"]  # 5 -> 4 -> 1, capped at 2


def test_merge_replaces_rows_of_the_same_split_and_method_only():
    old = {"rows": [{"split": "inner", "method": "A", "v": 1}, {"split": "protocol", "method": "A", "v": 2}],
           "inner": {"chosen": ["x"]}}
    out = diverse.merge(old, "protocol", [{"method": "A", "v": 3}, {"method": "B", "v": 4}], members=["y"])
    assert out["rows"] == [{"split": "inner", "method": "A", "v": 1}, {"split": "protocol", "method": "A", "v": 3},
                           {"method": "B", "v": 4, "split": "protocol"}]
    assert out["inner"] == {"chosen": ["x"]} and out["protocol"] == {"members": ["y"]}
    assert out["splits"] == diverse.SPLITS and old["rows"][1]["v"] == 2  # old payload untouched


def test_recipe_members_split_marble_overrides_from_flow_field_changes():
    marble, flow = diverse.recipe_members(["recommended", "smooth 0.4", "graph k 300", "n_components 12"])
    assert marble == [{}, {}, {"k": 300}, {}]
    assert flow == [{}, {"smooth": 0.4}, {}, {"n_components": 12}]
    with pytest.raises(ValueError, match="a recipe cannot scale the flow field's v"):
        diverse.recipe_members(["recommended", "v x3"])


def test_ensembles_consistency_is_one_for_rotated_copies_and_near_chance_for_noise():
    rng = np.random.default_rng(0)
    n = 2000
    position = rng.uniform(0.0, 1.6, n)
    direction = rng.integers(0, 2, n)
    ff = xr.Dataset(coords={"position": ("sample", position), "direction": ("sample", direction)})
    # a 6-D embedding that is a function of position and direction, and two rotated copies of it
    base = np.column_stack([np.sin(k * position + direction) for k in range(1, 7)])
    rotations = [np.linalg.qr(rng.standard_normal((6, 6)))[0] for _ in range(2)]
    result = diverse.ensembles_consistency([base, *(base @ q for q in rotations)], ff)
    assert result["full"]["min"] == pytest.approx(1.0, abs=1e-9)
    assert result["3 axes"]["min"] == pytest.approx(1.0, abs=1e-9)  # same principal subspace up to rotation
    noise = diverse.ensembles_consistency([rng.standard_normal((n, 6)) for _ in range(3)], ff)
    assert noise["full"]["mean"] < 0.2 and result["chance"]["3 axes"]["dim"] == 3
    assert noise["chance"]["full"]["dim"] == 6 and noise["full"]["mean"] == pytest.approx(
        noise["chance"]["full"]["mean"], abs=0.1)


def test_doubled_sets_give_each_copy_its_own_screen_seed():
    members = ["recommended", "smooth 0.4", "smooth 0.4"]
    twice = diverse.doubled(members)
    assert twice == ["recommended", "recommended", "smooth 0.4", "smooth 0.4", "smooth 0.4", "smooth 0.4"]
    # ensemble 2: the r-th copy of a candidate has seed 2 * STRIDE + r, so no two copies share a fit
    assert diverse.screen_seeds(twice, 2) == [10, 11, 10, 11, 12, 13]
    with pytest.raises(ValueError, match="at most 5 copies"):
        diverse.screen_seeds(diverse.doubled(members * 2), 0)
