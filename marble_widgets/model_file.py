"""The MARBLE model file: one PyTorch archive of JSON text and plain tensors, read without pickles.

``MARBLE.save`` writes it and ``MARBLE.load`` reads it through this module. Every way a file can
fail to be a model (missing, a folder, empty, truncated, random bytes, another tool's file, a newer
format) raises :class:`ModelFileError` naming the file and the cause. Reading never writes.
"""
from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "marble_widgets.MARBLE"
FORMAT_VERSION = 3
# format 1 (marble_widgets 0.1.0): the same entries under format "marble_widgets.MARBLE/1"
# formats 1-2: the MLP's weights under nn.Sequential keys (``mlp.<i>.*``); from 3 under
# torch_geometric.nn.MLP's keys (engine.network.upgrade_state_dict renames the old ones)
_FORMAT_V1 = "marble_widgets.MARBLE/1"
_JSON_ENTRIES = ("params", "spec", "meta")
_ZIP_MAGIC = b"PK\x03\x04"


class ModelFileError(ValueError):
    """A path that cannot be read as a MARBLE model; the message names the file, cause and fix."""


def write_model_file(path: str | Path, *, params: dict, spec: dict, meta: dict,
                     state_dict: dict[str, torch.Tensor], package_version: str) -> Path:
    """Write the model archive atomically (a crash never leaves a half-written file at ``path``)."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory; pass a file name such as {path / 'model.pt'}.")
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "package_version": package_version,
        "params": json.dumps(params), "spec": json.dumps(spec), "meta": json.dumps(meta),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_model_file(path: str | Path) -> dict[str, Any]:
    """The decoded archive: ``params``, ``spec``, ``meta`` (dicts), ``state_dict``, versions."""
    path = Path(path)
    _check_readable(path)
    payload = _torch_load(path)
    _check_format(path, payload)
    out = {"state_dict": payload["state_dict"],
           "format_version": int(payload.get("format_version", 1)),
           "package_version": str(payload.get("package_version", "0.1.0"))}
    for entry in _JSON_ENTRIES:
        try:
            out[entry] = json.loads(payload[entry])
        except (TypeError, ValueError) as err:
            raise ModelFileError(f"{path} is damaged: its '{entry}' entry is not valid JSON ({err}).") from None
    if not isinstance(out["state_dict"], dict):
        raise ModelFileError(f"{path} is damaged: its weights are not a dict of tensors.")
    return out


def _check_readable(path: Path) -> None:
    """Fail early, with the cause, on paths that cannot hold a model archive."""
    if not path.exists():
        raise ModelFileError(f"{path}: no such file. Check the path (MARBLE.save(path) writes the model file).")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a model file; pass the file MARBLE.save wrote.")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"{path} is empty (0 bytes): the save did not complete; save the model again.")
    with path.open("rb") as fh:
        head = fh.read(4)
    if head != _ZIP_MAGIC:
        raise ModelFileError(
            f"{path} is not a model file written by MARBLE.save: it is not a PyTorch archive "
            f"(first bytes {head!r}, {size} bytes)."
        )
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path} is truncated or damaged: it starts like a model archive but its end is missing "
            f"({size} bytes). Copy the file again or save the model again."
        )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if names and all(n.endswith(".npy") for n in names):
        raise ModelFileError(f"{path} is a NumPy .npz archive, not a model file written by MARBLE.save.")
    if not any(n.endswith("data.pkl") for n in names):
        raise ModelFileError(f"{path} is a zip archive but not a PyTorch file, so not written by MARBLE.save.")


def _torch_load(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``; its low-level failures become ModelFileError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelFileError(
            f"{path} is a PyTorch file written by another tool: it holds Python objects other than "
            "tensors and plain values, which are never unpickled. It is not a MARBLE.save file."
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, KeyError) as err:
        raise ModelFileError(f"{path} is damaged and cannot be read as a PyTorch archive ({err}).") from None


def _check_format(path: Path, payload: Any) -> None:
    """Accept this package's formats 1..FORMAT_VERSION; name what else the file is."""
    if not isinstance(payload, dict) or payload.get("format") not in (FORMAT, _FORMAT_V1):
        keys = sorted(map(str, payload))[:8] if isinstance(payload, dict) else type(payload).__name__
        raise ModelFileError(
            f"{path} is not a model file written by MARBLE.save: it is a PyTorch file written by "
            f"another tool (contents: {keys})."
        )
    version = payload.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by a newer marble_widgets ({payload.get('package_version', '?')}, "
            f"model format {version}); this version reads formats up to {FORMAT_VERSION}. "
            "Upgrade marble_widgets (pip install -U marble_widgets) to load it."
        )
    missing = [k for k in (*_JSON_ENTRIES, "state_dict") if k not in payload]
    if missing:
        raise ModelFileError(f"{path} is damaged: entries {missing} are missing.")
