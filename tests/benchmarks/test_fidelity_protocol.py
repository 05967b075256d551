"""Fast checks of the fidelity benchmark's protocol helpers: splits, leak-free decoders, scores."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from marble_widgets.recipes import split_time

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import fidelity as F  # noqa: E402
import fidelity_macaque  # noqa: E402
import fidelity_tuning as T  # noqa: E402


def _continuous(n: int = 200, units: int = 6, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {"spike_counts": (("time", "unit"), rng.poisson(2.0, (n, units)).astype(np.float32)),
         "position": ("time", np.linspace(0, 1, n))},
        coords={"time": (np.arange(n) + 0.5) * 0.025, "unit": np.arange(units)},
        attrs={"bin_size": 0.025, "kind": "continuous"},
    )


def test_time_split_is_contiguous_ordered_and_disjoint():
    rec = _continuous(200)
    train, test = split_time(rec, 0.8)
    assert (train.sizes["time"], test.sizes["time"]) == (160, 40)
    assert train["time"].values.max() < test["time"].values.min()
    assert np.array_equal(np.concatenate([train["time"].values, test["time"].values]), rec["time"].values)


def test_time_split_with_start_and_bad_fractions():
    a, b = split_time(_continuous(200), 0.6, start=0.2)
    assert a["time"].values[0] == pytest.approx(40.5 * 0.025) and a.sizes["time"] == 80
    assert b["time"].values[0] > a["time"].values[-1]
    with pytest.raises(ValueError, match="start < train_fraction"):
        split_time(_continuous(), 0.5, start=0.6)


def test_tuning_never_loads_the_test_part():
    fit, val = T.validation_parts()
    _, test = F.rat_parts()
    assert fit["time"].values.max() < val["time"].values.min()
    assert val["time"].values.max() < test["time"].values.min()
    n = fit.sizes["time"] + val.sizes["time"] + test.sizes["time"]
    assert test.sizes["time"] == round(0.2 * n) and val.sizes["time"] == pytest.approx(0.2 * n, abs=2)


def test_preprocessing_is_fitted_on_train_only():
    rec = _continuous(200)
    train, test = split_time(rec, 0.8)
    ff_tr, _ = F.flow_pair(train, test, 3, 0.05)
    louder = test.copy(deep=True)
    louder["spike_counts"] = louder["spike_counts"] * 50
    ff_tr2, ff_te2 = F.flow_pair(train, louder, 3, 0.05)
    np.testing.assert_array_equal(ff_tr["x"].values, ff_tr2["x"].values)
    assert ff_te2.sizes["sample"] == test.sizes["time"] - 1


def test_choose_k_median_uses_only_given_rows_and_prefers_small_k_for_exact_targets():
    x = np.column_stack([np.cos(np.linspace(0, 3, 300)), np.sin(np.linspace(0, 3, 300))])
    y = np.linspace(0, 3, 300)
    assert F.choose_k_median(x, y) == 1  # noiseless smooth map: the nearest neighbour is best
    noisy = y + np.random.default_rng(0).normal(0, 1.0, 300)
    assert F.choose_k_median(x, noisy) > 1  # noise favours averaging


def test_knn_decoder_never_sees_test_labels_or_bins():
    rng = np.random.default_rng(1)
    z_tr, z_te = rng.normal(size=(300, 4)), rng.normal(size=(80, 4))
    pos_tr, pos_te = z_tr[:, 0] ** 2, z_te[:, 0] ** 2
    dir_tr = np.where(z_tr[:, 1] > 0, "right", "left")
    dir_te = np.where(z_te[:, 1] > 0, "right", "left")
    res = F.knn_decode(z_tr, pos_tr, dir_tr, z_te, pos_te, dir_te)
    # the same figures when the test labels are scrambled and then scored against the scramble
    perm = rng.permutation(80)
    scrambled = F.knn_decode(z_tr, pos_tr, dir_tr, z_te, pos_te[perm], dir_te[perm])
    assert scrambled["k_position"] == res["k_position"] and scrambled["k_direction"] == res["k_direction"]
    from sklearn.neighbors import KNeighborsRegressor

    pred = KNeighborsRegressor(res["k_position"], metric="cosine").fit(z_tr, pos_tr).predict(z_te)
    assert res["position_cm"] == pytest.approx(np.median(np.abs(pred - pos_te)) * 100)
    assert scrambled["position_cm"] == pytest.approx(np.median(np.abs(pred - pos_te[perm])) * 100)
    assert res["direction_acc"] > 0.8


def test_trial_folds_hold_out_whole_trials_stratified():
    cond = np.array(["a"] * 10 + ["b"] * 5 + ["c"] * 20)
    fold = F.trial_folds(cond, 5, seed=0)
    assert sorted(np.bincount(fold)) == [7, 7, 7, 7, 7]
    for f in range(5):
        assert set(cond[fold == f]) == {"a", "b", "c"}
    assert np.array_equal(fold, F.trial_folds(cond, 5, seed=0))


def _ring_distances(angles_deg: list[float], order: list[int] | None = None) -> xr.DataArray:
    ang = np.radians(angles_deg)
    pts = np.column_stack([np.cos(ang), np.sin(ang)])
    if order is not None:
        pts = pts[order]
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    labels = [f"{int(a)}deg" for a in angles_deg]
    return xr.DataArray(d, dims=("condition", "condition_other"),
                        coords={"condition": labels, "condition_other": labels})


def test_ring_score_perfect_ring_and_scrambled_ring():
    angles = [0, 45, 135, 180, 225, 315]
    good = F.ring_score(_ring_distances(angles))
    assert good["ring_error_deg"] < 1.0 and good["ring_order_ok"]
    bad = F.ring_score(_ring_distances(angles, order=[0, 3, 1, 4, 2, 5]))
    assert bad["ring_error_deg"] > 20.0 and not bad["ring_order_ok"]


def test_copy_separation_on_a_known_matrix():
    system = np.array(["a", "a", "b", "b"])
    d = xr.DataArray(np.array([[0, 1, 4, 4], [1, 0, 4, 4], [4, 4, 0, 1], [4, 4, 1, 0]], float),
                     dims=("condition", "condition_other"))
    out = F.copy_separation(d, system)
    assert out["within_over_between"] == pytest.approx(0.25)
    assert out["nearest_is_copy"] == 1.0


def test_trial_features_flatten_each_trial_in_time_order():
    ff = xr.Dataset(coords={"trial": ("sample", [1, 1, 0, 0]), "time": ("sample", [0.1, 0.0, 0.0, 0.1]),
                            "condition": ("sample", ["x", "x", "y", "y"])})
    z = np.array([[1.0], [2.0], [3.0], [4.0]])
    feats, labels, ids = F.trial_features(z, ff)
    np.testing.assert_array_equal(feats, [[3.0, 4.0], [2.0, 1.0]])
    assert list(labels) == ["y", "x"] and list(ids) == [0, 1]


def test_heldout_trials_are_transformed_without_their_labels():
    ff = xr.Dataset({"x": (("sample", "dim"), np.arange(6.0).reshape(3, 2))},
                    coords={"condition": ("sample", ["0deg", "45deg", "0deg"])})
    out = F.unlabelled(ff)
    assert set(out["condition"].values) == {"heldout"}
    assert list(ff["condition"].values) == ["0deg", "45deg", "0deg"]  # caller's labels untouched
    np.testing.assert_array_equal(out["x"].values, ff["x"].values)


def test_marble_params_split_inputs_and_fill_the_recipe():
    inputs, params = F.marble_params({"n_components": 20, "k": 30, "hidden_channels": [128]})
    assert inputs == {"n_components": 20, "smooth": 0.25}
    assert params["k"] == 30 and params["hidden_channels"] == (128,)
    assert params["order"] == 1 and params["include_positions"] is True and "smooth" not in params


def _trials(n_trials: int = 30, n_time: int = 12, units: int = 8, seed: int = 0) -> xr.Dataset:
    """Trial-aligned toy recording whose hand velocity is a linear read-out of the rates."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 1.0, (n_trials, n_time, units))
    velocity = np.stack([rates[..., :3].sum(-1), rates[..., 3:6].sum(-1)], axis=-1)
    cond = np.array([f"{a}deg" for a in (0, 90, 180)] * (n_trials // 3))
    return xr.Dataset(
        {"spike_counts": (("trial", "time", "unit"), rates.astype(np.float32)),
         "hand_velocity": (("trial", "time", "axis"), velocity), "condition": ("trial", cond)},
        coords={"trial": np.arange(n_trials), "time": np.arange(n_time) * 0.02, "unit": np.arange(units),
                "axis": ["x", "y"]}, attrs={"bin_size": 0.02, "kind": "trials"})


def test_macaque_candidate_is_chosen_on_inner_training_trials_only(monkeypatch):
    seen: list[set] = []

    def fake_embed(ff_fit, ff_val, params, seed=0):
        seen.append(set(ff_fit["trial"].values) | set(ff_val["trial"].values))
        assert set(ff_fit["condition"].values) == {"heldout"}  # the sector labels never shape the graph
        if params["include_positions"]:
            return ff_fit["x"].values, ff_val["x"].values, {}
        rng = np.random.default_rng(1)
        return rng.normal(size=ff_fit["x"].shape), rng.normal(size=ff_val["x"].shape), {}

    monkeypatch.setattr(fidelity_macaque, "marble_embed", fake_embed)
    monkeypatch.setattr(fidelity_macaque, "MC_INPUT", {"n_components": 8, "smooth": None})
    rec = _trials()
    outer_train = rec.isel(trial=np.arange(24))
    assert F.choose_mc_candidate(outer_train, dict(F.MC_MARBLE)) == "include_positions=True"
    assert len(seen) == len(F.MC_CANDIDATES)
    assert all(trials <= set(range(24)) for trials in seen)  # outer test trials 24..29 never used


def test_partial_run_keeps_the_other_sections_and_totals_their_latest_timings(tmp_path, monkeypatch):
    import json

    (tmp_path / "fidelity.json").write_text(json.dumps(
        {"machine": {}, "date": "d", "rat": {"rows": ["old"]}, "macaque": {"rows": ["mac"]}, "total_seconds": 700.0,
         "seconds_rat": 400.0, "seconds_macaque": 300.0, "seconds_toys_rnn": 50.0}))
    monkeypatch.setattr(F, "RESULTS", tmp_path)
    merged = F.merge_sections({"rat": {"rows": ["new"]}, "section_seconds": {"rat": 90.0}, "run_seconds": 91.0,
                               "total_seconds": 91.0, "uptime_end": "u"}, ["rat"])
    assert merged["rat"] == {"rows": ["new"]} and merged["macaque"] == {"rows": ["mac"]}
    # the old full run's 700 s is gone: the total is the rat's new 90 s plus the macaque's last 300 s
    assert merged["section_seconds"] == {"rat": 90.0, "macaque": 300.0}
    assert merged["total_seconds"] == 390.0 and merged["run_seconds"] == 91.0
    assert not any(k.startswith("seconds_") for k in merged)
    (tmp_path / "fidelity.json").write_text(json.dumps(merged))
    again = F.merge_sections({"macaque": {"rows": ["mac2"]}, "section_seconds": {"macaque": 10.0},
                              "run_seconds": 11.0, "total_seconds": 11.0, "uptime_end": "u"}, ["macaque"])
    assert again["section_seconds"] == {"rat": 90.0, "macaque": 10.0} and again["total_seconds"] == 100.0


def test_label_permutation_control_is_at_chance_where_the_real_labels_decode():
    rng = np.random.default_rng(2)
    z_tr, z_te = rng.normal(size=(400, 4)), rng.normal(size=(100, 4))
    pos_tr, pos_te = 1.0 + np.tanh(z_tr[:, 0]), 1.0 + np.tanh(z_te[:, 0])
    dir_tr = np.where(z_tr[:, 1] > 0, "right", "left")
    dir_te = np.where(z_te[:, 1] > 0, "right", "left")
    res = F.knn_decode(z_tr, pos_tr, dir_tr, z_te, pos_te, dir_te)
    assert res["direction_acc"] > 0.85 and res["direction_acc_permuted"] < 0.65
    assert res["position_cm_permuted"] > 3 * res["position_cm"]
    # chance for position: the median error of predicting the training median
    assert res["position_cm_permuted"] == pytest.approx(np.median(np.abs(pos_te - np.median(pos_tr))) * 100, rel=0.3)


def test_permuted_shuffles_rows_reproducibly():
    y = np.arange(20)
    out = F.permuted(y)
    assert sorted(out) == list(y) and not np.array_equal(out, y)
    np.testing.assert_array_equal(out, F.permuted(y))
    assert F.permuted(np.arange(10).reshape(5, 2)).shape == (5, 2)  # rows stay whole


def test_ridge_velocity_takes_replacement_training_labels():
    rng = np.random.default_rng(3)
    n_trial, steps = 12, 10
    z = rng.normal(size=(n_trial * steps, 3))
    vel = z[:, :2] * [2.0, -1.0] + 0.1 * rng.normal(size=(n_trial * steps, 2))
    ff = xr.Dataset({"hand_velocity": (("sample", "axis"), vel)},
                    coords={"trial": ("sample", np.repeat(np.arange(n_trial), steps)),
                            "time": ("sample", np.tile(np.arange(steps) * 0.02, n_trial))})
    tr, te = ff.isel(sample=slice(0, 80)), ff.isel(sample=slice(80, None))
    good = F.ridge_velocity(z[:80], tr, z[80:], te)
    bad = F.ridge_velocity(z[:80], tr, z[80:], te, F.permuted(vel[:80]))
    from sklearn.metrics import r2_score

    assert r2_score(vel[80:], good) > 0.9 and r2_score(vel[80:], bad) < 0.2
    np.testing.assert_array_equal(tr["hand_velocity"].values, vel[:80])  # the caller's labels untouched


def test_macaque_recommended_changes_are_the_rat_recommended_training_changes_without_k():
    assert F.MC_RECOMMENDED == {"lr_schedule": "cosine", "selection": "average", "average_from": 0.5}


def test_table_prints_the_controls_folds_and_rnn_rows():
    results = {"macaque": {"rows": [{"method": "m", "velocity_r2": 0.3, "velocity_r2_fold_mean": 0.31,
                                     "velocity_r2_fold_sd": 0.02, "sector_acc": 0.6, "velocity_r2_permuted": -0.01,
                                     "sector_acc_permuted": 0.14, "ring_error_deg": None, "ring_order_ok": None,
                                     "seconds": 1.0}]},
               "rnn": {"rows": [{"method": "MARBLE aware, per network", "fields": "stimulated",
                                 "per-network min": 0.8, "per-network mean": 0.9},
                                {"method": "raw-vector OT, joint", "fields": "stimulated", "per-network min": 0.9,
                                 "per-network mean": 0.95, "joint": 0.5}]}}
    rows = F._table(results)
    assert rows[0]["R2 over folds"] == "0.310 ± 0.020" and rows[0]["permuted labels"] == "-0.010 / 0.140"
    assert rows[1]["score"] == 0.9 and rows[2]["score"] == 0.5
    assert rows[2]["per-network min/mean"] == "0.900 / 0.950" and rows[2]["data"] == "RNN gain (stimulated)"
