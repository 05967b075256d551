"""The rat screening scripts of issue 16 (benchmarks/exp_rat_*.py): candidate routing, ensembles, CV diagnostics,
the joint (transductive) graph and the feature ablation."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import exp_rat_ensemble_decoding as ens_dec  # noqa: E402
import exp_rat_feature_ablation as ablation  # noqa: E402
import exp_rat_screen as screen  # noqa: E402
import exp_rat_transductive as trans  # noqa: E402


def test_candidates_split_into_flow_field_marble_and_ensemble_changes():
    flow, marble, ensemble = screen.split_changes({"epochs": 300, "flow_field": {"smooth": 0.3},
                                                   "ensemble": {"n_members": 2, "combine": "concat"}})
    assert (flow, marble, ensemble) == ({"smooth": 0.3}, {"epochs": 300}, {"n_members": 2, "combine": "concat"})
    assert screen.split_changes({}) == ({}, {}, {})
    for name, changes in screen.CANDIDATES.items():  # every key is a flow-field input or a MARBLE parameter
        from marble_widgets.estimator import PARAMETERS

        flow, marble, _ = screen.split_changes(changes)
        assert set(flow) <= {"n_components", "smooth"}, name
        assert set(marble) <= set(PARAMETERS), name


def test_each_flow_field_has_its_own_cache_folder(tmp_path):
    assert screen.cache_for(tmp_path, {}) == tmp_path  # the recipe's input: the old caches stay valid
    a, b = screen.cache_for(tmp_path, {"smooth": 0.3}), screen.cache_for(tmp_path, {"smooth": 0.15})
    assert a.parent == tmp_path and a != b and a.name == "ff_smooth0.3"


def test_ensemble_candidates_put_disjoint_member_seeds_side_by_side(monkeypatch, tmp_path):
    import seed_stability

    calls = []

    def member(seed: int, n: int) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((n, 2))

    def fake_fit(ff_tr, ff_te, params, seed, cache):  # a random embedding per seed
        calls.append(seed)
        return member(seed, 6), member(100 + seed, 3)

    monkeypatch.setattr(seed_stability, "cached_fit", fake_fit)
    ff = xr.Dataset({"position": ("sample", np.linspace(0, 1, 6)), "direction": ("sample", ["left", "right"] * 3)})
    out = screen.embeddings(ff, ff, {}, {"n_members": 3, "combine": "concat"}, (0, 1), tmp_path)
    assert calls == [0, 1, 2, 3, 4, 5]
    assert [z_tr.shape for z_tr, _ in out] == [(6, 6), (6, 6)] and out[0][1].shape == (3, 6)
    for e, (z_tr, z_te) in enumerate(out):  # member e*3+i in block i, rotated (norms and dot products kept)
        for i in range(3):
            block, want = z_tr[:, 2 * i:2 * i + 2], member(3 * e + i, 6)
            np.testing.assert_allclose(block @ block.T, want @ want.T, atol=1e-9)
            np.testing.assert_allclose(np.linalg.norm(z_te[:, 2 * i:2 * i + 2], axis=1),
                                       np.linalg.norm(member(100 + 3 * e + i, 3), axis=1), atol=1e-9)
    calls.clear()
    singles = screen.embeddings(ff, ff, {}, {}, (4, 7), tmp_path)
    assert calls == [4, 7]
    np.testing.assert_array_equal(singles[1][0], member(7, 6))


def test_fold_table_picks_the_same_k_as_the_decoders_median_rule():
    from marble_widgets.analysis.decoding import choose_k

    rng = np.random.default_rng(0)
    y = np.abs(np.sin(np.linspace(0, 12 * np.pi, 600)))  # a back-and-forth track
    z = np.c_[np.cos(3 * y), np.sin(3 * y), 0.3 * rng.standard_normal((600, 3))] + 2.0
    table = ens_dec.cv_by_fold(z, y, ks=(1, 5, 10, 20))
    assert set(table) == {"1", "5", "10", "20"} and all(len(v) == 5 for v in table.values())
    means = {int(k): np.mean(v) for k, v in table.items()}
    assert min(means, key=means.get) == choose_k(z, y, metric="cosine", candidates=(1, 5, 10, 20),
                                                 criterion="median_abs_error")
    # fold 0 by hand: train on rows 120.., predict rows ..120 with the 5 nearest by cosine distance
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    nearest = np.argsort(-zn[:120] @ zn[120:].T, axis=1)[:, :5] + 120
    assert table["5"][0] == pytest.approx(np.median(np.abs(y[nearest].mean(axis=1) - y[:120])) * 100)


# ---------------------------------------------------------------- exp_rat_transductive: the joint graph


def _rotation_field(n: int, seed: int, condition: str) -> xr.Dataset:
    from marble_widgets.data.containers import flow_field_from_arrays

    x = np.random.default_rng(seed).uniform(-1, 1, (n, 2))
    ff = flow_field_from_arrays([x], [np.c_[-x[:, 1], x[:, 0]]], conditions=[condition])
    return ff.assign(position=("sample", x[:, 0]))


def test_joint_field_puts_the_held_out_rows_first_under_one_label():
    val, sup = _rotation_field(7, 1, "test"), _rotation_field(11, 2, "train")
    joint = trans.joint_field(val, sup)
    assert joint.sizes["sample"] == 18 and joint["sample"].values.tolist() == list(range(18))
    assert set(joint["condition"].values) == {trans.JOINT_CONDITION}
    np.testing.assert_array_equal(joint["x"].values, np.vstack([val["x"].values, sup["x"].values]))
    np.testing.assert_array_equal(joint["position"].values[7:], sup["position"].values)
    assert set(val["condition"].values) == {"test"}  # the caller's field is not relabelled


def test_joint_transform_uses_the_support_and_not_the_row_order():
    from marble_widgets import MARBLE

    sup, val = _rotation_field(150, 3, "train"), _rotation_field(40, 4, "test")
    model = MARBLE(k=10, epochs=3, verbose=False, hidden_channels=(16,), seed=0).fit(sup)
    z_val, z_sup = trans.joint_transform(model, val, sup)
    assert z_val.shape == (40, model.out_dim) and z_sup.shape == (150, model.out_dim)
    swapped = model.transform(trans.joint_field(sup, val)).values  # same point set, support first
    np.testing.assert_allclose(z_val, swapped[150:], atol=1e-6)
    np.testing.assert_allclose(z_sup, swapped[:150], atol=1e-6)
    own = model.transform(val).values  # held-out neighbours only: other features, another embedding
    assert np.abs(own - z_val).max() > 1e-3
    np.testing.assert_allclose(z_val, model.transform(val, support=sup).values, atol=1e-6)  # the estimator's own


def test_ablation_feeds_the_network_what_transform_feeds_it_and_permutes_one_block():
    from marble_widgets import MARBLE

    ff = _rotation_field(120, 5, "train")
    model = MARBLE(k=10, epochs=2, verbose=False, hidden_channels=(16,), include_positions=True, order=1,
                   seed=1).fit(ff)
    res = model.results(ff)
    order = res["feature_order"].values
    assert set(order) == {-1, 0, 1}
    np.testing.assert_allclose(ablation.network_embedding(model, res["features"].values, order),
                               res["embedding"].values, atol=1e-5)
    f = np.arange(24.0).reshape(6, 4)
    out = ablation.permuted(f, np.array([-1, 0, 1, 1]), 1, seed=0)
    np.testing.assert_array_equal(out[:, :2], f[:, :2])  # other blocks untouched
    rows = [np.flatnonzero(f[:, 2] == v)[0] for v in out[:, 2]]  # one permutation for the whole block
    assert sorted(rows) == list(range(6)) and rows != list(range(6))
    np.testing.assert_array_equal(out[:, 3], f[rows, 3])


def test_side_by_side_unit_members_decode_by_their_mean_cosine():
    rng = np.random.default_rng(0)
    unit = [rng.standard_normal((5, 4)) for _ in range(3)]
    unit = [{"z_fit": z / np.linalg.norm(z, axis=1, keepdims=True)} for z in unit]
    z = trans.side_by_side(unit)["z_fit"]
    cos = (z @ z.T) / np.outer(np.linalg.norm(z, axis=1), np.linalg.norm(z, axis=1))
    np.testing.assert_allclose(cos, np.mean([u["z_fit"] @ u["z_fit"].T for u in unit], axis=0), atol=1e-12)


def test_graph_variants_route_the_right_rows_and_groups_are_disjoint(monkeypatch):
    fit = {k: np.full((2, 1), i) for i, k in enumerate(("z_fit", "z_val_own", "z_val_joint", "z_fit_joint"))}
    assert [tuple(int(a[0, 0]) for a in trans.pair(fit, g)) for g in trans.GRAPHS] == [(0, 1), (0, 2), (3, 2)]
    with pytest.raises(ValueError, match="graph must be one of"):
        trans.pair(fit, "joint")
    seen = []
    monkeypatch.setattr(trans, "scores", lambda a, b, *_: seen.append((a.shape[1], int(a[0, 0]))) or {
        f"cm_{t}": float(a[0, 0]) for t in ("k_by_median", "k_by_r2", *(f"k{k}" for k in trans.FIXED_K))})
    fits = [{k: np.full((3, 2), s) for k in fit} for s in range(5)]
    rows = trans.evaluate(fits, (2, 5, 6), None, None)
    assert [r["method"] for r in rows[::3]] == ["single", "concat of 2", "concat of 5"]  # 6 > 5 seeds: no row
    assert [r["cm_k_by_median_mean"] for r in rows[::3]] == [2.0, 1.0, 0.0]  # seeds' means: 0-4; (0,1),(2,3); 0-4
    assert sorted({w for w, _ in seen}) == [2, 4, 10]  # members' latents side by side


def test_merge_keeps_rows_of_other_splits(monkeypatch, tmp_path):
    import _common

    for module in (_common, trans):
        monkeypatch.setattr(module, "RESULTS", tmp_path)
    (tmp_path / "exp_rat_transductive.json").write_text(json.dumps({"feature_ablation": {"rows": [1]}}))
    trans.merge("inner", [{"method": "single", "graph": "own graph", "x": 1}], {"seeds": 5})
    trans.merge("protocol", [{"method": "single", "graph": "own graph", "x": 2}], {"seeds": 15})
    trans.merge("inner", [{"method": "single", "graph": "own graph", "x": 3}], {"seeds": 5})
    out = json.loads((tmp_path / "exp_rat_transductive.json").read_text())
    assert sorted((r["split"], r["x"]) for r in out["rows"]) == [("inner", 3), ("protocol", 2)]
    assert set(out["runs"]) == {"inner", "protocol"} and out["feature_ablation"] == {"rows": [1]}


def test_transductive_fit_trains_on_the_held_out_part_and_the_control_drops_the_first_rows(monkeypatch):
    import marble_widgets

    fitted = []

    class Recorder:  # records the field it is fitted on; embeds a row as its x
        def __init__(self, **params):
            self.params = params

        def fit(self, ff):
            fitted.append(ff["x"].values.copy())
            return self

        def transform(self, ff):
            return xr.DataArray(ff["x"].values, dims=("sample", "latent"))

    monkeypatch.setattr(marble_widgets, "MARBLE", Recorder)
    fit, val = _rotation_field(9, 6, "train"), _rotation_field(3, 7, "test")
    out = trans.fit_all(fit, val, {}, seed=0, fit_on_both=True, drop_first=1 / 3)
    np.testing.assert_array_equal(fitted[-1], np.vstack([val["x"].values, fit["x"].values[3:]]))
    np.testing.assert_array_equal(out["z_fit_joint"], fit["x"].values)  # the decoder still sees every fit row
    np.testing.assert_array_equal(out["z_val_joint"], val["x"].values)
    trans.fit_all(fit, val, {}, seed=0)
    np.testing.assert_array_equal(fitted[-1], fit["x"].values)  # the protocol: the fitted part only
