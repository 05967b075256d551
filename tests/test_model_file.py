"""MARBLE model files: what is recorded, and one clear error for every file that is not a model."""
from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import marble_widgets as mw
from marble_widgets.data.containers import flow_field_from_arrays
from marble_widgets.estimator import MARBLE
from marble_widgets.model_file import FORMAT, FORMAT_VERSION, ModelFileError


@pytest.fixture(scope="module")
def flow():
    rng = np.random.default_rng(3)
    xs = [rng.uniform(-1, 1, (80, 2)) for _ in range(2)]
    vs = [(c + 1) * np.c_[-x[:, 1], x[:, 0]] for c, x in enumerate(xs)]
    return flow_field_from_arrays(xs, vs, conditions=["slow", "fast"])


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, flow) -> Path:
    model = MARBLE(k=8, epochs=2, hidden_channels=(8,), verbose=False, seed=4).fit(flow)
    return model.save(tmp_path_factory.mktemp("model") / "model.pt")


def _digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def _load_error(path: Path) -> str:
    """The message of the ModelFileError raised by MARBLE.load, checking the file is untouched."""
    before = _digest(path) if path.is_file() else None
    with pytest.raises(ModelFileError) as info:
        MARBLE.load(path)
    assert isinstance(info.value, ValueError)
    if before is not None:
        assert _digest(path) == before, "load must never modify the caller's file"
    assert str(path) in str(info.value)
    return str(info.value)


def test_file_records_package_and_format_version_and_params(model_path, flow):
    payload = torch.load(model_path, weights_only=True)
    assert payload["format"] == FORMAT and payload["format_version"] == FORMAT_VERSION == 3
    assert payload["package_version"] == mw.__version__
    params = json.loads(payload["params"])
    assert params["k"] == 8 and params["seed"] == 4 and params["hidden_channels"] == [8]
    loaded = MARBLE.load(model_path)
    assert loaded.get_params()["hidden_channels"] == (8,)
    original = MARBLE.load(model_path)
    np.testing.assert_array_equal(loaded.transform(flow).values, original.transform(flow).values)


def test_save_is_atomic_and_leaves_no_temporary_file(model_path):
    assert [p.name for p in model_path.parent.iterdir()] == ["model.pt"]


def test_missing_path(tmp_path):
    assert "no such file" in _load_error(tmp_path / "nope.pt")


def test_directory(tmp_path):
    assert "is a directory, not a model file" in _load_error(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    assert "is empty (0 bytes)" in _load_error(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    message = _load_error(path)
    assert "not a model file written by MARBLE.save: it is not a PyTorch archive" in message
    assert "4096 bytes" in message


def test_truncated_file(tmp_path, model_path):
    data = model_path.read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    message = _load_error(path)
    assert "is truncated or damaged" in message and f"({len(data) // 2} bytes)" in message


def test_plain_torch_save_of_a_dict(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2), "epoch": 3}, path)
    message = _load_error(path)
    assert "written by another tool" in message and "['epoch', 'weights']" in message


def test_torch_file_with_python_objects_is_not_unpickled(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    assert "holds Python objects other than tensors" in _load_error(path)


def test_numpy_npz(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, a=np.arange(3))
    assert "is a NumPy .npz archive" in _load_error(path)


def test_other_zip_archive(tmp_path):
    path = tmp_path / "docs.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert "is a zip archive but not a PyTorch file" in _load_error(path)


def test_newer_format_version(tmp_path, model_path):
    payload = torch.load(model_path, weights_only=True)
    payload.update(format_version=FORMAT_VERSION + 1, package_version="9.0.0")
    path = tmp_path / "future.pt"
    torch.save(payload, path)
    message = _load_error(path)
    assert re.search(r"newer marble_widgets \(9\.0\.0, model format 4\); this version reads formats up to 3",
                     message)
    assert "Upgrade marble_widgets" in message


def test_damaged_entries(tmp_path, model_path):
    payload = torch.load(model_path, weights_only=True)
    payload["params"] = "{not json"
    path = tmp_path / "bad_json.pt"
    torch.save(payload, path)
    assert "its 'params' entry is not valid JSON" in _load_error(path)
    del payload["state_dict"]
    torch.save(payload, path)
    assert "entries ['state_dict'] are missing" in _load_error(path)


def test_weights_that_do_not_fit_the_network(tmp_path, model_path):
    payload = torch.load(model_path, weights_only=True)
    name = next(n for n in payload["state_dict"] if n.endswith("weight"))
    payload["state_dict"][name] = torch.zeros(1, 1)
    path = tmp_path / "shapes.pt"
    torch.save(payload, path)
    assert "is damaged or inconsistent" in _load_error(path)


def test_format_1_files_still_load(tmp_path, model_path, flow):
    payload = torch.load(model_path, weights_only=True)
    payload["format"] = "marble_widgets.MARBLE/1"
    del payload["format_version"], payload["package_version"]
    path = tmp_path / "v1.pt"
    torch.save(payload, path)
    np.testing.assert_array_equal(MARBLE.load(path).transform(flow).values,
                                  MARBLE.load(model_path).transform(flow).values)


def test_saving_onto_a_directory_names_it(tmp_path, model_path):
    model = MARBLE.load(model_path)
    with pytest.raises(ModelFileError, match="is a directory; pass a file name"):
        model.save(tmp_path)
    assert os.listdir(tmp_path) == []


def test_error_type_is_public():
    assert mw.ModelFileError is ModelFileError and issubclass(ModelFileError, ValueError)
