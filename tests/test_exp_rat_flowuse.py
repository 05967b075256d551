"""benchmarks/exp_rat_flowuse.py (issue 16): scaling the signal scales the flow features and nothing else."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import exp_rat_flowuse as flowuse  # noqa: E402


def _rotation_field(n: int, seed: int) -> xr.Dataset:
    from marble_widgets.data.containers import flow_field_from_arrays

    x = np.random.default_rng(seed).uniform(-1, 1, (n, 2))
    ff = flow_field_from_arrays([x], [np.c_[-x[:, 1], x[:, 0]]], conditions=["train"])
    return ff.assign(position=("sample", x[:, 0]))


def test_candidates_are_marble_parameters_or_the_flow_scale():
    from marble_widgets.estimator import PARAMETERS

    for name, changes in flowuse.CANDIDATES.items():
        assert set(changes) - {"flow_scale", "concat"} <= set(PARAMETERS), name
        scale = changes.get("flow_scale", 1.0)
        assert scale == "equal" or scale > 0, name


def test_scaled_multiplies_the_signal_only_and_rejects_bad_factors():
    ff = _rotation_field(10, 0)
    out = flowuse.scaled(ff, 2.5)
    np.testing.assert_array_equal(out["v"].values, 2.5 * ff["v"].values)
    np.testing.assert_array_equal(out["x"].values, ff["x"].values)
    np.testing.assert_array_equal(ff["v"].values, _rotation_field(10, 0)["v"].values)  # input untouched
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="flow scale must be a positive finite number"):
            flowuse.scaled(ff, bad)


def test_equal_norm_scale_gives_the_flow_blocks_the_positions_norm():
    from marble_widgets import MARBLE

    ff = _rotation_field(120, 1)
    params = {"k": 10, "epochs": 1, "hidden_channels": (8,), "order": 1, "include_positions": True}
    s = flowuse.equal_norm_scale(ff, params)
    model = MARBLE(**params, seed=0, verbose=False).fit(ff)
    plain, big = model.results(ff), model.results(flowuse.scaled(ff, s))
    order = plain["feature_order"].values
    f0, f1 = plain["features"].values, big["features"].values
    np.testing.assert_array_equal(f1[:, order == -1], f0[:, order == -1])  # positions (and graph) unchanged
    np.testing.assert_allclose(f1[:, order >= 0], s * f0[:, order >= 0], rtol=1e-5, atol=1e-6)  # linear in v (float32)
    share = flowuse.block_shares(model, flowuse.scaled(ff, s))
    flow = np.sqrt(share["signal v"] ** 2 + share["order 1"] ** 2)
    assert share["positions"] == pytest.approx(np.sqrt(0.5), rel=1e-6)
    assert flow == pytest.approx(share["positions"], rel=1e-6)


def test_concat_candidates_put_disjoint_member_seeds_side_by_side(monkeypatch):
    calls = []

    def member(seed: int, n: int) -> np.ndarray:
        z = np.random.default_rng(seed).standard_normal((n, 3))
        return z / np.linalg.norm(z, axis=1, keepdims=True)

    def fake_fit(ff_fit, ff_val, params, seed):
        calls.append(seed)
        return member(seed, 8), member(50 + seed, 4), {"positions": float(seed)}, 1.0

    monkeypatch.setattr(flowuse, "fit_one", fake_fit)
    ff = xr.Dataset({"position": ("sample", np.linspace(0, 1, 8)), "direction": ("sample", ["left", "right"] * 4)})
    z_fit, z_val, share, secs = flowuse.fit_members(ff, ff, {}, seed=1, members=2)
    assert calls == [2, 3] and z_fit.shape == (8, 6) and z_val.shape == (4, 6) and secs == 2.0
    assert share == {"positions": 2.0}  # the first member's shares
    for i, s in enumerate((2, 3)):  # each member rotated: its dot products kept in its block
        for z, want in ((z_fit, member(s, 8)), (z_val, member(50 + s, 4))):
            block = z[:, 3 * i:3 * i + 3]
            np.testing.assert_allclose(block @ block.T, want @ want.T, atol=1e-9)
    assert flowuse.fit_members(ff, ff, {}, seed=5, members=1)[0].shape == (8, 3) and calls[-1] == 5


def test_rows_of_each_split_are_kept_apart_and_old_rows_count_as_inner(tmp_path, monkeypatch):
    import json

    import _common

    monkeypatch.setattr(flowuse, "RESULTS", tmp_path)
    monkeypatch.setattr(_common, "RESULTS", tmp_path)  # where write_json writes
    (tmp_path / "exp_rat_flowuse.json").write_text(json.dumps({"input": {"cm": 7.0}, "rows": [{"method": "a", "v": 1}]}))
    flowuse.merge([{"method": "a", "v": 2}], {"cm": 7.2}, "protocol")
    flowuse.merge([{"method": "b", "v": 3}], {"cm": 7.0}, "inner")
    out = json.loads((tmp_path / "exp_rat_flowuse.json").read_text())
    assert [(r["split"], r["method"], r["v"]) for r in out["rows"]] == [
        ("inner", "a", 1), ("protocol", "a", 2), ("inner", "b", 3)]
    assert out["inputs"] == {"inner": {"cm": 7.0}, "protocol": {"cm": 7.2}}
