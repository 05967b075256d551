"""The on-disk (zarr) feature store: same features and same training as from RAM, chunked rows,
written condition by condition, fingerprinted (issue 15)."""
from __future__ import annotations

import gc
import os
import pickle
import warnings

import numpy as np
import pytest
import torch
import zarr

from marble_widgets.data.synthetic import paraboloid_field
from marble_widgets.engine import feature_store as fs
from marble_widgets.engine.config import FeatureConfig
from marble_widgets.engine.feature_store import StoredFeatures, feature_source, open_or_write, write_feature_store
from marble_widgets.engine.geometry import build_geometry
from marble_widgets.engine.network import MarbleNetwork, NetworkSpec, build_feature_source
from marble_widgets.engine.training import train_network
from marble_widgets.estimator import MARBLE
from marble_widgets.sessions import joint_flow_field

STATIC = FeatureConfig(diffusion=False)
FAST = dict(epochs=3, hidden_channels=(16,), verbose=False, k=10, diffusion=False, batch_size=32)


@pytest.fixture(scope="module")
def joint():
    fields = {f"s{i}": paraboloid_field(("saddle", "vortex_left", "rotation")[i], 0.2 + 0.1 * i, n=n, seed=i)
              for i, n in enumerate((300, 450, 350))}
    return joint_flow_field(fields)


@pytest.fixture(scope="module", params=[False, True], ids=["global", "local"])
def geometry(request, joint):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_geometry(joint["x"].values, joint["v"].values, joint["condition"].values, k=10,
                              local_gauges=request.param)


@pytest.mark.parametrize("config", [STATIC, FeatureConfig(diffusion=False, order=3, vec_norm=True,
                                                          include_self=False, include_positions=True)])
def test_stored_features_equal_the_in_memory_ones(tmp_path, geometry, config):
    ram = build_feature_source(geometry, config)
    stored = feature_source(geometry, config, store=tmp_path / "f.zarr")
    assert isinstance(stored, StoredFeatures)
    assert torch.equal(stored.full(), ram.features)
    index = torch.as_tensor(np.random.default_rng(0).integers(0, geometry.n_nodes, 300))
    assert torch.equal(stored.rows(index), ram.rows(index, None))
    if config.include_positions:
        assert torch.equal(stored.pos(index), ram.pos(index))
    else:
        assert stored.pos(index) is None


def test_rows_are_chunked_and_each_chunk_is_read_once_while_it_fits(tmp_path, geometry, monkeypatch):
    monkeypatch.setattr(fs, "CHUNK_BYTES", 4 * 1024)
    path = write_feature_store(tmp_path / "f.zarr", geometry, STATIC)
    width = fs.feature_width(geometry, STATIC)
    array = zarr.open_group(str(path), mode="r")["features"]
    rows = 4 * 1024 // (4 * width)
    assert array.dtype == np.float32 and array.shape == (geometry.n_nodes, width)
    assert array.chunks == (max(64, rows), width)
    source = StoredFeatures(path)
    n_chunks = -(-geometry.n_nodes // source.chunk_rows)
    rng = np.random.default_rng(1)
    for _ in range(20):
        source.rows(rng.integers(0, geometry.n_nodes, 64))
    assert source.chunk_reads <= n_chunks  # random minibatches, but no chunk read twice
    small = StoredFeatures(path, cache_bytes=1)  # a cache of one chunk: rows still right
    index = rng.integers(0, geometry.n_nodes, 200)
    assert torch.equal(small.rows(index), source.rows(index))
    assert small.chunk_reads == len(np.unique(index // small.chunk_rows))  # each needed chunk once per call


def test_store_is_written_condition_by_condition(tmp_path, geometry, monkeypatch):
    """The features are never computed for all nodes at once: one call per condition, of its nodes."""
    calls = []
    original = fs._block_features

    def spy(geom, signal, start, stop, config):
        calls.append((start, stop))
        return original(geom, signal, start, stop, config)

    monkeypatch.setattr(fs, "_block_features", spy)
    write_feature_store(tmp_path / "f.zarr", geometry, STATIC)
    sizes = np.bincount(geometry.condition)
    assert calls == [(int(a), int(b)) for a, b in zip(np.r_[0, np.cumsum(sizes)[:-1]], np.cumsum(sizes))]
    assert max(b - a for a, b in calls) < geometry.n_nodes


def test_reopening_checks_the_fingerprint(tmp_path, geometry, joint):
    path = open_or_write(tmp_path / "f.zarr", geometry, STATIC)
    assert open_or_write(path, geometry, STATIC) == path  # same geometry: reused
    with pytest.raises(ValueError, match="holds the features of another geometry or other feature settings"):
        open_or_write(path, geometry, FeatureConfig(diffusion=False, order=1))
    other = build_geometry(joint["x"].values, joint["v"].values, joint["condition"].values, k=12)
    with pytest.raises(ValueError, match="another geometry"):
        open_or_write(path, other, STATIC)
    (tmp_path / "junk").mkdir()
    with pytest.raises(ValueError, match="is not a MARBLE feature store"):
        open_or_write(tmp_path / "junk", geometry, STATIC)
    with pytest.raises(ValueError, match="cannot be stored"):
        feature_source(geometry, FeatureConfig(diffusion=True), store=tmp_path / "d.zarr")


def test_training_from_the_store_equals_training_from_ram(tmp_path, geometry):
    def train(source):
        torch.manual_seed(0)
        spec = NetworkSpec.for_geometry(geometry, STATIC, hidden_channels=(16,), out_dim=3)
        net = MarbleNetwork(spec)
        result = train_network(net, source, geometry.edge_index, geometry.n_nodes, epochs=3, batch_size=32,
                               selection="average", patience=None, verbose=False)
        with torch.no_grad():
            return net.eval()(build_feature_source(geometry, STATIC).features), result

    z_ram, r_ram = train(build_feature_source(geometry, STATIC))
    z_store, r_store = train(feature_source(geometry, STATIC, store=tmp_path / "f.zarr"))
    assert torch.equal(z_ram, z_store)
    for key, values in r_ram.history.items():
        np.testing.assert_array_equal(r_store.history[key], values)


def test_estimator_feature_store_same_embedding_transform_and_errors(tmp_path, joint):
    ram = MARBLE(**FAST).fit(joint)
    path = tmp_path / "joint.zarr"
    stored = MARBLE(**FAST, feature_store=path).fit(joint)  # a Path or a str
    assert stored.feature_store_ == str(path) and ram.feature_store_ is None
    assert (path / "zarr.json").exists()
    for a, b in zip(ram.network_.state_dict().values(), stored.network_.state_dict().values()):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(stored.loss_history_["train_loss"], ram.loss_history_["train_loss"])
    z_ram, z_store = ram.transform(joint).values, stored.transform(joint).values
    np.testing.assert_allclose(z_store, z_ram, rtol=0, atol=1e-6)  # block-wise vs whole-batch matmuls
    loaded = MARBLE.load(stored.save(tmp_path / "model.marble"))  # the path is a parameter; features: RAM
    assert loaded.feature_store == str(path) and getattr(loaded, "feature_store_", None) is None
    np.testing.assert_allclose(loaded.transform(joint).values, z_store, rtol=0, atol=1e-6)
    res = stored.results(joint)
    np.testing.assert_array_equal(res["features"].values, ram.results(joint)["features"].values)
    auto = MARBLE(**FAST, feature_store="auto").fit(joint)  # small: stays in RAM
    assert auto.feature_store_ is None
    with pytest.raises(ValueError, match="feature_store='x.zarr' needs diffusion=False"):
        MARBLE(**{**FAST, "diffusion": True}, feature_store="x.zarr").fit(joint)
    with pytest.raises(ValueError, match="feature_store must be None"):
        MARBLE(**FAST, feature_store=3).fit(joint)
    other = joint.isel(sample=slice(0, 700))
    with pytest.raises(ValueError, match="another geometry"):
        MARBLE(**FAST, feature_store=str(path)).fit(other)


def test_auto_uses_a_temporary_store_above_the_budget(joint, monkeypatch):
    monkeypatch.setattr(fs, "AUTO_STORE_BYTES", 1000)
    model = MARBLE(**FAST, feature_store="auto").fit(joint)
    assert model.feature_store_ is not None and model.feature_store_.endswith("features.zarr")
    folder = model.feature_store_
    assert os.path.isdir(folder)
    z = model.transform(joint).values
    assert np.isfinite(z).all()
    assert pickle.loads(pickle.dumps(model)).feature_store_ == folder  # nothing unpicklable on the model
    first = folder
    model.fit(joint)  # a refit replaces its temporary store
    folder = model.feature_store_
    assert folder != first and not os.path.exists(first) and os.path.isdir(folder)
    del model
    gc.collect()
    assert not os.path.exists(folder)  # the temporary store lives as long as the model
