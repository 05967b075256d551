"""The flow-field container: MARBLE's input as a labelled ``xarray.Dataset`` (see docs/design.md)."""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from marble_widgets.data.errors import MarbleDataError, require_finite

#: names the flow-field schema itself uses (variables, sample coordinates and dims)
SCHEMA_NAMES = frozenset({"x", "v", "condition", "trial", "time", "sample", "dim"})


def make_flow_field(
    x: np.ndarray,
    v: np.ndarray,
    *,
    condition: Sequence[Any] | np.ndarray,
    trial: Sequence[int] | np.ndarray,
    time: Sequence[float] | np.ndarray,
    dim_names: Sequence[str] | None = None,
    sample_vars: Mapping[str, xr.DataArray | np.ndarray] | None = None,
    sample_coords: Mapping[str, np.ndarray] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Assemble and validate a flow-field Dataset: ``x``/``v`` (sample, dim) + sample coords.

    Every constructor of flow fields (recordings, arrays, toy systems) goes through here so that
    the schema and its checks live in one place. Arrays are copied; inputs are never modified.
    """
    x = np.array(x, dtype=np.float64, copy=True)
    v = np.array(v, dtype=np.float64, copy=True)
    if x.ndim != 2 or v.ndim != 2:
        raise MarbleDataError(
            f"positions and vectors must be 2-D (sample, dim) arrays; got shapes {x.shape} and {v.shape}."
        )
    if x.shape != v.shape:
        raise MarbleDataError(
            f"positions {x.shape} and vectors {v.shape} must have the same shape (one vector per position)."
        )
    if x.shape[0] == 0:
        raise MarbleDataError("the flow field is empty: no samples. Check trial windows and segment lengths.")
    require_finite("positions", x)
    require_finite("vectors", v)
    n = x.shape[0]
    coords: dict[str, Any] = {}
    for name, values in (("condition", condition), ("trial", trial), ("time", time)):
        arr = np.asarray(values)
        if arr.shape != (n,):
            raise MarbleDataError(f"coordinate {name!r} has shape {arr.shape}; expected ({n},), one per sample.")
        coords[name] = ("sample", arr)
    coords["condition"] = ("sample", np.asarray(condition).astype(str))
    coords["trial"] = ("sample", np.asarray(trial).astype(np.int64))
    coords["time"] = ("sample", np.asarray(time).astype(np.float64))
    for name, values in (sample_coords or {}).items():
        coords[name] = ("sample", np.asarray(values))
    if dim_names is None:
        dim_names = [f"x{i + 1}" for i in range(x.shape[1])]
    if len(dim_names) != x.shape[1]:
        raise MarbleDataError(f"dim_names has {len(dim_names)} names for {x.shape[1]} dimensions.")
    coords["dim"] = list(dim_names)
    coords["sample"] = np.arange(n)
    ds = xr.Dataset({"x": (("sample", "dim"), x), "v": (("sample", "dim"), v)}, coords=coords)
    for name, values in (sample_vars or {}).items():
        da = values if isinstance(values, xr.DataArray) else xr.DataArray(
            np.asarray(values), dims=("sample",) + tuple(f"{name}_axis{i}" for i in range(np.ndim(values) - 1))
        )
        if da.sizes.get("sample") != n:
            raise MarbleDataError(f"sample variable {name!r} has {da.sizes.get('sample')} rows; expected {n}.")
        ds[name] = da.drop_vars([c for c in da.coords if "sample" in da[c].dims], errors="ignore")
    ds.attrs.update(dict(attrs or {}))
    return ds


def flow_field_from_arrays(
    positions: np.ndarray | Sequence[np.ndarray],
    vectors: np.ndarray | Sequence[np.ndarray],
    conditions: Sequence[Any] | None = None,
) -> xr.Dataset:
    """Flow field from lists of (n_i, d) position/vector arrays, one pair per condition.

    This is what the reference's ``construct_dataset`` takes; a single array is one condition.
    ``time`` is the index within its condition and ``trial`` the condition's index.
    """
    if isinstance(positions, np.ndarray) and positions.ndim == 2:
        positions = [positions]
    if isinstance(vectors, np.ndarray) and vectors.ndim == 2:
        vectors = [vectors]
    positions, vectors = list(positions), list(vectors)
    if len(positions) != len(vectors):
        raise MarbleDataError(
            f"got {len(positions)} position arrays but {len(vectors)} vector arrays; pass one of each per condition."
        )
    if len(positions) == 0:
        raise MarbleDataError("no conditions given: pass at least one (n, d) positions array.")
    if conditions is None:
        conditions = [str(i) for i in range(len(positions))]
    conditions = list(conditions)
    if len(conditions) != len(positions):
        raise MarbleDataError(f"got {len(conditions)} condition labels for {len(positions)} position arrays.")
    dims = {np.asarray(p).shape[-1] if np.ndim(p) == 2 else None for p in positions}
    if len(dims) != 1 or None in dims:
        raise MarbleDataError(
            "every positions array must be 2-D (n_i, d) with the same d across conditions; "
            f"got shapes {[np.shape(p) for p in positions]}."
        )
    for i, (p, v) in enumerate(zip(positions, vectors)):
        if np.shape(p) != np.shape(v):
            raise MarbleDataError(
                f"condition {conditions[i]!r}: positions {np.shape(p)} and vectors {np.shape(v)} differ in shape."
            )
    lengths = [len(p) for p in positions]
    return make_flow_field(
        np.concatenate(positions),
        np.concatenate(vectors),
        condition=np.repeat(np.asarray(conditions).astype(str), lengths),
        trial=np.repeat(np.arange(len(positions)), lengths),
        time=np.concatenate([np.arange(n, dtype=float) for n in lengths]),
        attrs={"source": "arrays", "difference": "given"},
    )


#: coordinates on the ``feature`` dim of ``MARBLE.results``: derivative order (-1 positions, 0 the
#: signal), 0-based signal component, derivative directions ("d2 d1", outermost first; "" for
#: order <= 0). Prefixed so they never clash with a flow field's behaviour variables (the rat's
#: ``direction``).
FEATURE_COORDS = ("feature_order", "feature_component", "feature_direction")


def check_flow_field(flow_field: xr.Dataset, k: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions, vectors and condition labels of a flow-field Dataset, checked with clear errors.

    The one validation of MARBLE's input (the estimator and the engine use it): ``x``/``v`` on
    (sample, dim), a ``condition`` coordinate, finite values and, given ``k``, at least k+1
    samples per condition (each condition gets its own k-NN graph).
    """
    if not isinstance(flow_field, xr.Dataset):
        raise TypeError(
            f"flow_field must be an xarray.Dataset with 'x' and 'v' on (sample, dim); got "
            f"{type(flow_field).__name__}. Build one with marble_widgets.flow_field_from_arrays."
        )
    for name in ("x", "v"):
        if name not in flow_field or flow_field[name].dims != ("sample", "dim"):
            raise ValueError(
                f"flow_field needs a variable {name!r} with dims ('sample', 'dim'); got "
                f"{flow_field[name].dims if name in flow_field else 'none'}."
            )
    if "condition" not in flow_field.coords:
        raise ValueError(
            "flow_field has no 'condition' coordinate on 'sample': add one, e.g. "
            "ds.assign_coords(condition=('sample', labels)), or use flow_field_from_arrays."
        )
    x = np.asarray(flow_field["x"].values, dtype=float)
    v = np.asarray(flow_field["v"].values, dtype=float)
    for name, arr in (("x", x), ("v", v)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(
                f"flow_field[{name!r}] contains {int(bad.sum())} NaN/inf value(s) (first at sample "
                f"{int(np.argwhere(bad)[0][0])}): drop those samples before fitting."
            )
    condition = np.asarray(flow_field["condition"].values)
    if k is not None:
        check_condition_sizes(condition, k)
    return x, v, condition


def check_condition_sizes(condition: np.ndarray, k: int) -> None:
    """Raise unless every condition has the k+1 samples its own k-NN graph needs."""
    labels, counts = np.unique(np.asarray(condition), return_counts=True)
    small = counts < k + 1
    if small.any():
        raise ValueError(
            f"condition {str(labels[small][0])!r} has {counts[small][0]} samples but k={k} needs at least "
            f"k+1={k + 1} per condition: lower k or merge/drop small conditions."
        )


def sample_labels(flow_field: xr.Dataset) -> dict[str, xr.Variable]:
    """The flow field's per-sample labels to carry onto results: sample coords and 1-D behaviour.

    Behaviour variables (e.g. ``position``, ``direction``) become coords of embeddings so that
    decoding, colouring and alignment can name them directly.
    """
    labels = {name: c.variable for name, c in flow_field.coords.items() if c.dims == ("sample",)}
    for name, var in flow_field.data_vars.items():
        if var.dims == ("sample",) and name not in labels:
            labels[name] = var.variable
    return labels


def as_embedding(flow_field: xr.Dataset, values: np.ndarray | None = None) -> xr.DataArray:
    """``values`` (sample, latent) as an embedding with the flow field's sample labels.

    Any per-sample representation (another method's output, a baseline) can then go through the
    same analysis functions as a MARBLE embedding. Default: the flow field's positions.
    """
    x = np.array(flow_field["x"].values if values is None else values, copy=True)
    if x.ndim != 2 or x.shape[0] != flow_field.sizes["sample"]:
        raise ValueError(f"values must be (sample, latent) with {flow_field.sizes['sample']} rows; got shape {x.shape}.")
    return xr.DataArray(x, dims=("sample", "latent"), coords={**sample_labels(flow_field), "latent": np.arange(x.shape[1])},
                        name="embedding")


def positions_as_embedding(flow_field: xr.Dataset) -> xr.DataArray:
    """The flow field's positions shaped like an embedding: MARBLE's own input, the baseline to beat."""
    return as_embedding(flow_field)

def _per_sample_names(ds: xr.Dataset) -> tuple[set[str], set[str]]:
    """(data variables, non-schema coordinates) of a flow field that lie on ``sample``."""
    variables = {str(k) for k, v in ds.data_vars.items() if "sample" in v.dims} - {"x", "v"}
    coords = {str(k) for k, c in ds.coords.items() if "sample" in c.dims} - SCHEMA_NAMES
    return variables, coords


def _relabel(part: xr.Dataset, key: str) -> np.ndarray:
    """The one labelling rule: a part with one condition is named by its key, else "<key>/<condition>"."""
    cond = part["condition"].values.astype(str)
    if np.unique(cond).size == 1:
        return np.full(cond.size, key)
    return np.char.add(f"{key}/", cond)


def _common_attrs(parts: list[xr.Dataset], names: list[str]) -> dict[str, Any]:
    """Attrs equal in every part, plus ``combined`` (the keys) and a joined ``source`` where they differ."""
    def same(a: Any, b: Any) -> bool:
        return bool(np.array_equal(a, b)) if isinstance(a, np.ndarray) or isinstance(b, np.ndarray) else a == b

    attrs = {k: v for k, v in parts[0].attrs.items() if all(k in p.attrs and same(p.attrs[k], v) for p in parts[1:])}
    attrs.setdefault("source", "+".join(names))
    attrs["combined"] = ",".join(names)
    return attrs


def combine_flow_fields(
    fields: Mapping[str, xr.Dataset],
    dim: str = "animal",
    *,
    relabel_conditions: bool = True,
) -> xr.Dataset:
    """Stack flow fields on ``sample`` (``xr.concat``) with a coordinate ``dim`` holding each one's key.

    For training one model on several animals, sessions or toy fields (docs/spec.md §13.5). MARBLE
    builds one graph per condition, so conditions are relabelled by one rule: a field with a single
    condition takes its key as the condition; a field with several keeps them apart as
    ``"<key>/<condition>"``. Where a label changed, the original is kept in the sample coordinate
    ``base_condition``; ``relabel_conditions=False`` keeps every label as it is. Sample variables
    of any shape and sample coordinates present in every field are concatenated; the others are
    dropped with a warning. ``sample`` is renumbered 0..n-1; attrs equal in all fields are kept,
    ``combined`` lists the keys (and ``source`` joins them with "+" unless the fields share one).
    """
    if not isinstance(fields, Mapping) or isinstance(fields, xr.Dataset) or not fields:
        raise MarbleDataError("fields must be a non-empty mapping {name: flow_field}.")
    if dim in SCHEMA_NAMES or dim == "base_condition":
        raise MarbleDataError(f"dim={dim!r} clashes with a flow-field name; use e.g. 'animal' or 'session'.")
    names, parts = [str(k) for k in fields], list(fields.values())
    for part in parts:
        check_flow_field(part)
    labels = [list(map(str, p["dim"].values)) for p in parts]
    if any(lab != labels[0] for lab in labels):
        raise MarbleDataError(
            f"flow fields must share their 'dim' coordinate to be combined; got {dict(zip(names, labels))}. "
            "Project them to the same space (e.g. the same number of PCs) first."
        )
    found = [_per_sample_names(p) for p in parts]
    keep_vars = set.intersection(*(f[0] for f in found))
    keep_coords = set.intersection(*(f[1] for f in found)) - {dim, "base_condition"}
    dropped = set().union(*(f[0] | f[1] for f in found)) - keep_vars - keep_coords - {dim, "base_condition"}
    if dropped:
        warnings.warn(f"dropped variables not present in every flow field: {sorted(dropped)}.", stacklevel=2)
    new = [_relabel(p, n) if relabel_conditions else p["condition"].values.astype(str) for n, p in zip(names, parts)]
    changed = any(not np.array_equal(c, p["condition"].values.astype(str)) for c, p in zip(new, parts))
    ready = []
    for name, part, cond in zip(names, parts, new):
        extra = set().union(*_per_sample_names(part)) - keep_vars - keep_coords
        coords = {dim: ("sample", np.full(part.sizes["sample"], name)), "condition": ("sample", cond)}
        if changed:
            coords["base_condition"] = ("sample", part["condition"].values.astype(str))
        ready.append(part.drop_vars(sorted(extra)).assign_coords(coords))
    out = xr.concat(ready, dim="sample", data_vars="minimal", coords="minimal", compat="override",
                    join="exact", combine_attrs="drop")
    out = out.assign_coords(sample=np.arange(out.sizes["sample"]))
    out.attrs = _common_attrs(parts, names)
    return out
