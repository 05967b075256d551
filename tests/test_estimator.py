"""The MARBLE estimator: sklearn contract, reproducibility, persistence, edge cases."""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.base import clone

from marble_widgets.data.containers import flow_field_from_arrays
from marble_widgets.engine.config import FeatureConfig, GraphConfig, TrainingConfig
from marble_widgets.estimator import MARBLE, PARAMETERS, parameter_table

FAST = dict(epochs=3, verbose=False, hidden_channels=(16,))


def _rotation_fields(n: int = 120, n_cond: int = 2, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    xs = [rng.uniform(-1, 1, (n, 2)) for _ in range(n_cond)]
    vs = [(c + 1) * np.c_[-x[:, 1], x[:, 0]] for c, x in enumerate(xs)]
    return flow_field_from_arrays(xs, vs, conditions=[f"c{c}" for c in range(n_cond)])


@pytest.fixture(scope="module")
def flow():
    return _rotation_fields()


@pytest.fixture(scope="module")
def fitted(flow):
    return MARBLE(k=10, **FAST).fit(flow)


def test_every_parameter_has_a_table_entry_and_defaults_live_in_the_signature():
    sig = inspect.signature(MARBLE.__init__)
    defaults = {name: p.default for name, p in sig.parameters.items() if name != "self"}
    assert set(PARAMETERS) == set(defaults)  # every parameter documented, nothing else
    assert all(len(row) == 2 and all(isinstance(x, str) and x for x in row) for row in PARAMETERS.values())
    table = parameter_table()
    assert [row[0] for row in table] == list(defaults)
    assert {name: default for name, default, _, _ in table} == defaults
    assert ("k", 20, "construct_dataset k", "CkNN neighbours") in table
    with pytest.raises(TypeError, match="unexpected keyword"):
        MARBLE(n_layers=3)


def test_engine_configs_default_to_the_estimators_defaults():
    model = MARBLE()
    assert model._graph_config(fitting=True) == GraphConfig()
    assert model._feature_config() == FeatureConfig()
    assert model._training_config() == TrainingConfig()


def test_clone_and_params():
    model = MARBLE(order=1, hidden_channels=[64], out_dim=32)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and copy is not model
    assert copy.set_params(k=7).k == 7 and model.k == 20


def test_transform_keeps_coords_and_shape(flow, fitted):
    emb = fitted.transform(flow)
    assert emb.name == "embedding" and emb.dims == ("sample", "latent")
    assert emb.shape == (flow.sizes["sample"], 3) and np.isfinite(emb.values).all()
    np.testing.assert_array_equal(emb["condition"].values, flow["condition"].values)
    np.testing.assert_array_equal(emb["time"].values, flow["time"].values)
    assert list(fitted.loss_history_.data_vars) == ["train_loss", "val_loss", "lr", "diffusion_time"]
    assert fitted.loss_history_.sizes["epoch"] == 3
    assert list(fitted.conditions_) == ["c0", "c1"]
    assert fitted.feature_names_[:3] == ["v1", "v2", "d1 v1"] and len(fitted.feature_names_) == 14


def test_eval_mode_single_row_equals_its_row_in_the_full_batch(flow, fitted):
    features = fitted.results(flow)["features"].values
    net = fitted.network_
    assert not net.training
    with torch.no_grad():
        full = net(torch.as_tensor(features, dtype=torch.float32)).numpy()
        single = net(torch.as_tensor(features[5:6], dtype=torch.float32)).numpy()
    np.testing.assert_allclose(single[0], full[5], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full, fitted.transform(flow).values, rtol=1e-5, atol=1e-6)


def test_same_seed_identical_different_seed_different(flow):
    a = MARBLE(k=10, seed=3, **FAST).fit_transform(flow).values
    b = MARBLE(k=10, seed=3, **FAST).fit_transform(flow).values
    c = MARBLE(k=10, seed=4, **FAST).fit_transform(flow).values
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_save_load_round_trip(tmp_path, flow, fitted):
    path = fitted.save(tmp_path / "model.pt")
    loaded = MARBLE.load(path)
    np.testing.assert_array_equal(loaded.transform(flow).values, fitted.transform(flow).values)
    assert loaded.get_params() == fitted.get_params()
    assert loaded.feature_names_ == fitted.feature_names_
    np.testing.assert_array_equal(loaded.loss_history_.train_loss, fitted.loss_history_.train_loss)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a model file written by MARBLE.save"):
        MARBLE.load(tmp_path / "other.pt")


def test_callback_receives_every_epoch_and_can_stop(flow):
    infos = []
    MARBLE(k=10, **{**FAST, "epochs": 4}).fit(flow, callback=infos.append)
    assert len(infos) == 4 and {i["n_epochs"] for i in infos} == {4}
    model = MARBLE(k=10, **{**FAST, "epochs": 10}).fit(flow, callback=lambda i: i["epoch"] >= 1)
    assert model.loss_history_.sizes["epoch"] == 2


def test_diffusion_time_is_learned(flow):
    model = MARBLE(k=10, order=1, epochs=5, verbose=False).fit(flow)
    times = model.loss_history_.diffusion_time.values
    assert times[-1] > 1e-4 and model.diffusion_time_ == pytest.approx(times[model.best_epoch_], rel=1e-5)


def test_results_global_gauge(flow, fitted):
    ins = fitted.results(flow, max_neighbors=5)
    assert ins.sizes["neighbor"] <= 5 and ins.attrs["manifold_dim"] == 2
    nb = ins["neighbors"].values
    row, col = np.argwhere(nb >= 0)[0]
    # global gauge: transported neighbour vectors are the raw vectors v_j, frames the identity
    np.testing.assert_allclose(ins["transported"].values[row, col], flow["v"].values[nb[row, col]])
    np.testing.assert_allclose(ins["frame"].values[0], np.eye(2))
    assert np.isnan(ins["transported"].values[nb < 0]).all()
    same = flow["condition"].values[np.maximum(nb, 0)] == flow["condition"].values[:, None]
    assert same[nb >= 0].all()  # never across conditions


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(k=0), "k must be an integer >= 1"),
        (dict(dropout=1.5), "dropout must be in"),
        (dict(hidden_channels=[32, -1]), "hidden_channels must be positive"),
        (dict(order=0, include_self=False), "leaves no features"),
        (dict(temperature=0), "temperature must be a positive number"),
        (dict(temperature="low"), "temperature must be a positive number"),
        (dict(loss="nce"), "loss must be one of \\('sigmoid', 'infonce'\\)"),
        (dict(loss=None), "loss must be one of"),
        (dict(selection="best"), "selection must be one of \\('best_val', 'last', 'average'\\)"),
        (dict(lr_schedule="linear"), "lr_schedule must be one of \\('plateau', 'cosine'\\)"),
        (dict(selection="average", patience=None, average_from=-0.1), "average_from must be a fraction"),
        (dict(selection="average", patience=20), "set patience=None with selection='average'"),
    ],
)
def test_bad_parameters_are_named(flow, bad, match):
    with pytest.raises(ValueError, match=match):
        MARBLE(**{**FAST, **bad}).fit(flow)


def test_bad_flow_fields(flow):
    with pytest.raises(TypeError, match="xarray.Dataset"):
        MARBLE(**FAST).fit(np.zeros((10, 2)))
    with pytest.raises(ValueError, match="k=50 needs at least"):
        MARBLE(k=50, **FAST).fit(_rotation_fields(n=40))
    nan = flow.copy(deep=True)
    nan["x"][3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MARBLE(**FAST).fit(nan)
    with pytest.raises(ValueError, match="not fitted"):
        MARBLE().transform(flow)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            MARBLE(device="cuda", **FAST).fit(flow)


def test_scalar_signal_with_inner_products_does_not_crash():
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (100, 1))
    ff = flow_field_from_arrays(x, np.sin(3 * x))
    emb = MARBLE(k=8, inner_product_features=True, **FAST).fit_transform(ff)
    assert emb.shape == (100, 3) and np.isfinite(emb.values).all()
    with pytest.raises(ValueError, match="vec_norm"):
        MARBLE(k=8, vec_norm=True, **FAST).fit(ff)


def test_circle_in_3d_with_local_gauges_has_one_direction():
    theta = np.linspace(0, 2 * np.pi, 150, endpoint=False)
    x = np.c_[np.cos(theta), np.sin(theta), 0.1 * np.cos(theta)]
    v = np.c_[-np.sin(theta), np.cos(theta), -0.1 * np.sin(theta)]
    model = MARBLE(k=6, local_gauges=True, inner_product_features=True, **FAST)
    emb = model.fit_transform(flow_field_from_arrays(x, v))
    assert model.n_directions_ == 1 and np.isfinite(emb.values).all()


def test_duplicates_and_more_dims_than_neighbours():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(60, 30))
    x = np.concatenate([x, x[:10]])  # exact duplicates
    v = rng.normal(size=x.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the geometry warns about the duplicates' components
        emb = MARBLE(k=5, order=1, **FAST).fit_transform(flow_field_from_arrays(x, v))
    assert emb.shape == (70, 3) and np.isfinite(emb.values).all()


SEED_STABLE = dict(temperature=0.1, selection="average", lr_schedule="cosine", average_from=0.5, patience=None)


def test_training_options_are_deterministic_and_round_trip(tmp_path, flow):
    params = dict(k=10, seed=5, **{**FAST, "epochs": 4}, **SEED_STABLE)
    a = MARBLE(**params).fit(flow)
    b = MARBLE(**params).fit(flow)
    np.testing.assert_array_equal(a.transform(flow).values, b.transform(flow).values)
    assert a.best_epoch_ == 3  # the last epoch of the average (epochs 2 and 3)
    np.testing.assert_allclose(a.loss_history_.lr.values, [0.01 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(4)])
    loaded = MARBLE.load(a.save(tmp_path / "stable.pt"))
    assert {k: loaded.get_params()[k] for k in SEED_STABLE} == SEED_STABLE
    np.testing.assert_array_equal(loaded.transform(flow).values, a.transform(flow).values)
    assert clone(a).get_params() == a.get_params()


def test_temperature_changes_the_fit_and_one_is_the_default(flow):
    base = MARBLE(k=10, **FAST).fit(flow).loss_history_.train_loss.values
    same = MARBLE(k=10, temperature=1.0, **FAST).fit(flow).loss_history_.train_loss.values
    other = MARBLE(k=10, temperature=0.5, **FAST).fit(flow).loss_history_.train_loss.values
    np.testing.assert_array_equal(base, same)
    assert np.abs(base - other).max() > 1e-3


def test_infonce_loss_option_trains_differently_and_round_trips(tmp_path, flow):
    base = MARBLE(k=10, **FAST).fit(flow)
    same = MARBLE(k=10, loss="sigmoid", **FAST).fit(flow)
    np.testing.assert_array_equal(base.loss_history_.train_loss.values, same.loss_history_.train_loss.values)
    params = dict(k=10, loss="infonce", temperature=0.2, seed=3, **FAST)
    a, b = MARBLE(**params).fit(flow), MARBLE(**params).fit(flow)
    np.testing.assert_array_equal(a.transform(flow).values, b.transform(flow).values)
    first = a.loss_history_.train_loss.values[0]  # cross-entropy over 64 positives: log 64 at chance
    assert 0 < first < np.log(64) + 0.5 and abs(first - base.loss_history_.train_loss.values[0]) > 0.1
    loaded = MARBLE.load(a.save(tmp_path / "infonce.pt"))
    assert loaded.get_params()["loss"] == "infonce" and loaded.get_params()["temperature"] == 0.2
    np.testing.assert_array_equal(loaded.transform(flow).values, a.transform(flow).values)


# ------------------------------------------------------------------ results and the kept geometry
def _with_behaviour(flow: xr.Dataset) -> xr.Dataset:
    n = flow.sizes["sample"]
    hand = np.arange(2 * n, dtype=float).reshape(n, 2)
    return flow.assign(hand_velocity=(("sample", "axis"), hand), position=("sample", np.linspace(0, 1, n)))


def test_results_is_the_flow_field_plus_per_sample_results(flow, fitted):
    ff = _with_behaviour(flow)
    res = fitted.results(ff)
    for name in ff.variables:  # every input variable and coord, unchanged (2-D behaviour too)
        xr.testing.assert_identical(res[name].variable, ff[name].variable)
    assert res["hand_velocity"].dims == ("sample", "axis")
    assert res["embedding"].dims == ("sample", "latent") and res["neighbors"].dtype == np.int64
    assert res["frame"].dims == ("sample", "dim", "tangent")
    assert res["transported"].dims == ("sample", "neighbor", "tangent")
    np.testing.assert_array_equal(res["embedding"].values, fitted.transform(flow).values)
    assert list(res["feature"].values) == fitted.feature_names_
    assert list(res["feature_order"].values) == [0, 0] + [1] * 4 + [2] * 8
    assert list(res["feature_component"].values[:6]) == [0, 1, 0, 0, 1, 1]
    assert list(res["feature_direction"].values[:8]) == ["", "", "d1", "d2", "d1", "d2", "d1 d1", "d2 d1"]
    assert res.attrs["manifold_dim"] == 2 and res.attrs["order"] == 2 and res.attrs["local_gauges"] == 0
    assert "embedding" not in ff and "manifold_dim" not in ff.attrs  # the caller's Dataset is not modified
    with pytest.warns(FutureWarning, match="results"):
        old = fitted.inspect(ff)
    xr.testing.assert_identical(old, res)
    with pytest.raises(ValueError, match="max_neighbors must be a positive integer"):
        fitted.results(ff, max_neighbors=0)


def test_results_with_positions_label_position_rows(flow):
    model = MARBLE(k=10, include_positions=True, order=1, **FAST).fit(flow)
    res = model.results(flow)
    assert list(res["feature"].values[:4]) == ["pos x1", "pos x2", "v1", "v2"]
    np.testing.assert_array_equal(res["feature_order"].values, [-1, -1, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(res["feature_component"].values, [0, 1, 0, 1, 0, 0, 1, 1])
    np.testing.assert_allclose(res["features"].values[:, :2], flow["x"].values, rtol=1e-6)


@pytest.mark.parametrize("name", ["embedding", "features", "feature_order"])
def test_results_never_overwrite_the_users_variables(flow, fitted, name):
    ff = flow.assign({name: ("sample", np.zeros(flow.sizes["sample"]))})
    with pytest.raises(ValueError, match=f"flow_field already holds \\['{name}'\\]"):
        fitted.results(ff)


def _count_builds(monkeypatch) -> list[int]:
    import marble_widgets.estimator as est

    calls: list[int] = []
    real = est.build_geometry
    monkeypatch.setattr(est, "build_geometry", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


@pytest.mark.parametrize("spacing", [0.0, 0.05])
def test_the_training_geometry_is_reused_on_the_data_fit_on(tmp_path, monkeypatch, flow, spacing):
    calls = _count_builds(monkeypatch)
    model = MARBLE(k=10, spacing=spacing, **FAST).fit(flow)
    assert len(calls) == 1
    emb, res = model.transform(flow), model.results(flow)
    model.transform(flow.copy(deep=True))  # same data in another object: same geometry
    assert len(calls) == (1 if spacing == 0 else 2)  # subsampled fit: the full graph is built once
    assert set(model.timings_) == {"geometry_s", "features_s", "training_s"}
    fresh = MARBLE.load(model.save(tmp_path / "m.pt"))  # no geometry: builds it
    np.testing.assert_array_equal(fresh.transform(flow).values, emb.values)
    xr.testing.assert_identical(fresh.results(flow), res)
    other = _rotation_fields(seed=1)
    calls.clear()
    model.transform(other)
    model.transform(other)
    assert len(calls) == 2  # other data: built once per call, never kept
    model.transform(flow)
    assert len(calls) == 2


def test_the_kept_local_gauge_geometry_equals_a_fresh_build(tmp_path, monkeypatch):
    import marble_widgets as mw

    ff = mw.datasets.paraboloid_field(n=200)
    calls = _count_builds(monkeypatch)
    model = MARBLE(k=10, local_gauges=True, **FAST).fit(ff)
    res = model.results(ff)
    assert len(calls) == 1 and model.n_directions_ == 2
    fresh = MARBLE.load(model.save(tmp_path / "local.pt"))
    xr.testing.assert_identical(fresh.results(ff), res)
    assert len(calls) == 2


def test_results_keep_behaviour_named_like_plain_words(flow, fitted):
    """The rat's ``direction`` (and any ``order``/``component``) stays a behaviour variable of the results."""
    labels = np.where(np.arange(flow.sizes["sample"]) % 2, "left", "right")
    ff = flow.assign(direction=("sample", labels), order=("sample", np.arange(flow.sizes["sample"])))
    res = fitted.results(ff)
    np.testing.assert_array_equal(res["direction"].values, labels)
    assert res["direction"].dims == ("sample",) and res["feature_direction"].dims == ("feature",)
    np.testing.assert_array_equal(res["order"].values, np.arange(flow.sizes["sample"]))


def test_geometry_runner_is_a_call_argument_and_changes_nothing(flow, fitted):
    """client/scheduler choose where the per-condition geometry runs; the embedding is the same."""
    other = _rotation_fields(n=90, n_cond=3, seed=5)
    np.testing.assert_array_equal(fitted.transform(other, scheduler="threads").values, fitted.transform(other).values)
    threads = MARBLE(k=10, **FAST).fit(flow, scheduler="threads")
    for a, b in zip(threads.network_.state_dict().values(), fitted.network_.state_dict().values()):
        assert torch.equal(a, b)
    assert "client" not in MARBLE().get_params() and "scheduler" not in MARBLE().get_params()
    with pytest.raises(ValueError, match="scheduler must be one of"):
        MARBLE(k=10, **FAST).fit(flow, scheduler="gpu")
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client"):
        fitted.results(other, client="tcp://127.0.0.1:8786")
