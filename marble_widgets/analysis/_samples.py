"""The analysis room's one reader of its inputs: an embedding plus per-sample variables named by string.

Every analysis function accepts either the embedding DataArray (sample, latent) of
``MARBLE.transform`` (labels as sample coords) or a Dataset holding ``embedding`` (sample,
latent) next to behaviour variables of any shape (the results Dataset, e.g. ``hand_velocity``
(sample, axis)); a string names a coordinate or a variable of that input.
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

Samples = xr.DataArray | xr.Dataset


def embedding_of(data: Any, argname: str = "embedding") -> xr.DataArray:
    """The embedding DataArray of ``data`` (a Dataset's ``embedding`` variable, or ``data`` itself)."""
    if isinstance(data, xr.Dataset):
        if "embedding" not in data:
            raise TypeError(
                f"{argname} is an xarray.Dataset without an 'embedding' variable; pass MARBLE.results(flow_field) "
                "or the embedding DataArray (sample, latent) returned by MARBLE.transform."
            )
        return data["embedding"]
    if not isinstance(data, xr.DataArray):
        raise TypeError(
            f"{argname} must be an xarray.DataArray with dims (sample, latent) or a Dataset holding 'embedding'; "
            f"got {type(data).__name__}. Wrap arrays with xr.DataArray(values, dims=('sample', 'latent'))."
        )
    return data


def embedding_values(data: Any, argname: str = "embedding") -> np.ndarray:
    """The (sample, latent) values of the embedding as a validated float64 copy."""
    emb = embedding_of(data, argname)
    if emb.ndim == 1 and emb.dims == ("sample",):
        emb = emb.expand_dims(latent=1, axis=1)
    if emb.ndim != 2 or emb.dims[0] != "sample":
        raise ValueError(
            f"{argname} must have dims (sample, latent); got dims {emb.dims}. "
            "Transpose or stack it so that samples come first."
        )
    values = np.array(emb.values, dtype=np.float64, copy=True)
    if values.shape[0] == 0:
        raise ValueError(f"{argname} has no samples; pass an embedding with at least one sample.")
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"{argname} contains {int((~np.isfinite(values)).sum())} non-finite value(s); drop those "
            "samples (e.g. embedding.dropna('sample')) before the analysis."
        )
    return values


def _named(data: Samples, key: str, argname: str) -> xr.DataArray:
    """The coordinate or variable ``key`` of ``data``, or a ValueError listing the per-sample names."""
    pool = data.coords if isinstance(data, xr.DataArray) else data.variables
    if key not in pool:
        names = sorted(str(k) for k, v in pool.items() if "sample" in v.dims and k != "sample")
        where = "coordinate of the embedding" if isinstance(data, xr.DataArray) else "variable or coordinate"
        raise ValueError(
            f"{argname}={key!r} is not a {where} (per-sample names: {names}). Pass the name of a "
            "per-sample variable or an array with one value per sample."
        )
    return data[key]


def sample_array(data: Samples, key: Any, argname: str) -> xr.DataArray | np.ndarray:
    """``key`` as per-sample values, sample first: a named coord/variable or a DataArray (kept
    labelled, so extra dims such as ``axis`` keep their coordinates), else a numpy array."""
    values = _named(data, key, argname) if isinstance(key, str) else key
    n = data.sizes["sample"]
    if isinstance(values, xr.DataArray):
        if "sample" not in values.dims:
            raise ValueError(f"{argname} must be defined on the 'sample' dim; got dims {values.dims}.")
        values = values.transpose("sample", ...)
    else:
        values = np.asarray(values)
    if values.shape[:1] != (n,):
        raise ValueError(
            f"{argname} has {values.shape[0] if values.ndim else 0} value(s) for {n} samples; "
            "give exactly one value per sample."
        )
    return values


def sample_values(data: Samples, key: Any, argname: str) -> np.ndarray:
    """Per-sample values (sample, ...) named by ``key`` (coord/variable name, DataArray or array)."""
    return np.asarray(sample_array(data, key, argname))


def group_indices(labels: np.ndarray) -> tuple[list[Hashable], list[np.ndarray]]:
    """Split sample indices by label, groups in order of first appearance."""
    groups = list(pd.unique(pd.Series(labels)))
    codes = pd.Categorical(labels, categories=groups).codes
    return groups, [np.flatnonzero(codes == g) for g in range(len(groups))]


def subsample(index: np.ndarray, max_points: int | None, rng: np.random.Generator) -> np.ndarray:
    """Keep at most ``max_points`` indices, drawn without replacement and returned sorted."""
    if max_points is None or index.size <= max_points:
        return index
    return np.sort(rng.choice(index, size=max_points, replace=False))


def has_sample_name(data: Samples, key: str) -> bool:
    """Whether ``key`` names a per-sample coordinate (embedding) or variable/coordinate (Dataset) of ``data``."""
    pool = data.coords if isinstance(data, xr.DataArray) else data.variables
    return key in pool and "sample" in pool[key].dims
