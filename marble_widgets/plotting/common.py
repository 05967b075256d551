"""Small shared helpers of the plotting room: argument checks, colour encoding, gapped polylines.

Nothing here computes geometry; these only reshape arrays that the engine/analysis produced.
"""
from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr

from marble_widgets.plotting.theme import SEQUENTIAL, discrete_colorscale

#: Integer variables with at most this many distinct values are coloured as categories.
MAX_INT_CATEGORIES = 20


def require_vars(obj: xr.Dataset, names: tuple[str, ...], argname: str, hint: str) -> None:
    """Raise ValueError naming ``argname`` when ``obj`` is not a Dataset holding ``names``."""
    if not isinstance(obj, xr.Dataset):
        raise TypeError(f"{argname} must be an xarray.Dataset ({hint}); got {type(obj).__name__}.")
    missing = [n for n in names if n not in obj]
    if missing:
        raise ValueError(
            f"{argname} lacks variable(s) {missing}; it has {sorted(map(str, obj.data_vars))}. "
            f"Pass {hint} (see docs/design.md)."
        )


def require_dims(da: xr.DataArray, dims: tuple[str, ...], argname: str, hint: str) -> None:
    """Raise ValueError naming ``argname`` when ``da`` is not a DataArray with exactly ``dims``."""
    if not isinstance(da, xr.DataArray):
        raise TypeError(f"{argname} must be an xarray.DataArray ({hint}); got {type(da).__name__}.")
    if tuple(da.dims) != dims:
        raise ValueError(f"{argname} must have dims {dims} ({hint}); got {tuple(da.dims)}.")


def check_sample(sample: Any, n: int, argname: str = "sample") -> int:
    """Return ``sample`` as an int in [0, n), or raise ValueError naming the valid range."""
    if isinstance(sample, (bool, np.bool_)) or not isinstance(sample, (int, np.integer)):
        raise TypeError(f"{argname} must be an int index into the sample dim; got {type(sample).__name__}.")
    if not 0 <= int(sample) < n:
        raise ValueError(f"{argname}={int(sample)} is out of range; choose 0 <= {argname} < {n}.")
    return int(sample)


def is_categorical(values: np.ndarray) -> bool:
    """True for labels (str/bool/object) and for integers with few distinct values."""
    values = np.asarray(values)
    if values.dtype.kind in "OUSb":
        return True
    if values.dtype.kind in "iu":
        return np.unique(values).size <= MAX_INT_CATEGORIES
    return False


def encode_categories(values: np.ndarray) -> tuple[list[Hashable], np.ndarray]:
    """Sorted unique labels and the integer code of every element (labels[codes] == values)."""
    labels, codes = np.unique(np.asarray(values), return_inverse=True)
    return [lab.item() if hasattr(lab, "item") else lab for lab in labels], codes.reshape(-1)


def marker_color(values: np.ndarray | None, title: str = "", default: str = "#0072B2") -> dict[str, Any]:
    """Marker properties encoding ``values``: categories -> stepped palette, numbers -> SEQUENTIAL.

    Both cases keep one trace (so selections map 1:1 to samples) and show a colour bar; categories
    get their labels as colour-bar ticks.
    """
    if values is None:
        return dict(color=default, showscale=False, colorscale=None, cmin=None, cmax=None)
    values = np.asarray(values)
    if is_categorical(values):
        labels, codes = encode_categories(values)
        k = len(labels)
        return dict(
            color=codes.astype(np.float64), colorscale=discrete_colorscale(k), cmin=-0.5, cmax=k - 0.5,
            showscale=True,
            colorbar=dict(title=dict(text=title), tickvals=list(range(k)), ticktext=[str(s) for s in labels],
                          len=0.9, thickness=12),
        )
    vals = values.astype(np.float64)
    finite = vals[np.isfinite(vals)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return dict(
        color=vals, colorscale=SEQUENTIAL, cmin=lo, cmax=hi if hi > lo else lo + 1.0, showscale=True,
        colorbar=dict(title=dict(text=title), tickvals=None, ticktext=None, len=0.9, thickness=12),
    )


def trajectory_order(condition: np.ndarray, trial: np.ndarray, time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample order sorted by (condition, trial, time) and a mask of where a new trajectory starts."""
    _, ccodes = np.unique(np.asarray(condition), return_inverse=True)
    order = np.lexsort((np.asarray(time), np.asarray(trial), ccodes.reshape(-1)))
    key_c, key_t = ccodes.reshape(-1)[order], np.asarray(trial)[order]
    starts = np.ones(order.size, dtype=bool)
    starts[1:] = (key_c[1:] != key_c[:-1]) | (key_t[1:] != key_t[:-1])
    return order, starts


def gapped(points: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Insert a NaN row before every trajectory start (except the first) so lines break there."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim == 1:
        points = points[:, None]
    cut = np.flatnonzero(starts)[1:]
    return np.insert(points, cut, np.nan, axis=0)


def segments(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Polyline (3m, d) drawing m separate segments start[i] -> end[i], NaN-separated."""
    start = np.asarray(start, dtype=np.float64).reshape(-1, np.shape(start)[-1] if np.ndim(start) else 1)
    end = np.asarray(end, dtype=np.float64).reshape(start.shape)
    out = np.full((3 * start.shape[0], start.shape[1]), np.nan)
    out[0::3], out[1::3] = start, end
    return out


def xyz(points: np.ndarray, n_dims: int) -> dict[str, np.ndarray]:
    """Trace coordinates ``{"x":…, "y":…[, "z":…]}`` from the first ``n_dims`` columns of ``points``."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, np.shape(points)[-1])
    keys = ("x", "y", "z")[:n_dims]
    return {k: points[:, i] for i, k in enumerate(keys)}


def display_scale(lengths: np.ndarray, target: float) -> float:
    """Factor that makes the median positive finite length in ``lengths`` equal ``target`` (1 if none)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    good = lengths[np.isfinite(lengths) & (lengths > 0)]
    if good.size == 0 or not np.isfinite(target) or target <= 0:
        return 1.0
    return float(target / np.median(good))


def pick_dims(n_available: int, dims: int | None, argname: str = "dims") -> int:
    """Number of plotted axes: ``dims`` (2 or 3) or min(3, available); error if too few."""
    if n_available < 2:
        raise ValueError(f"need at least 2 dimensions to draw a state space; the data has {n_available}.")
    if dims is None:
        return min(3, n_available)
    if dims not in (2, 3) or dims > n_available:
        raise ValueError(f"{argname} must be 2 or 3 and at most {n_available} (the data's dims); got {dims!r}.")
    return int(dims)


_KEY = re.compile(r"(?P<name>.+?)(?:\[(?P<col>\d+)\])?")


def sample_key(name: str, column: int | None = None) -> str:
    """The colour key of a 1-D variable (``name``) or of column ``column`` of a (sample, k) one (``name[i]``).

    Colour keys are the strings of the widgets' ``color_by`` traits; :func:`parse_sample_key` reads them back.
    """
    return str(name) if column is None else f"{name}[{int(column)}]"


def parse_sample_key(key: str) -> tuple[str, int | None]:
    """(variable name, column or None) of a colour key: ``"position"`` -> ("position", None),
    ``"hand_velocity[1]"`` -> ("hand_velocity", 1). The one reader of the ``name[i]`` keys."""
    if not isinstance(key, str):
        raise TypeError(
            f"a colour key must be a str such as 'position' or 'hand_velocity[0]'; got {type(key).__name__}."
        )
    match = _KEY.fullmatch(key)
    if match is None or (match["col"] is None and ("[" in key or "]" in key)):
        raise ValueError(f"colour key {key!r} is malformed: write 'name' or 'name[i]' with a column number i >= 0.")
    return match["name"], None if match["col"] is None else int(match["col"])


def sample_keys(ds: xr.Dataset | xr.DataArray) -> list[str]:
    """Names usable as per-sample colours: 1-D sample coords/vars, and ``name[i]`` for (sample, k) vars."""
    keys: list[str] = []
    variables = dict(ds.coords) if isinstance(ds, xr.DataArray) else {**ds.coords, **ds.data_vars}
    for name, var in variables.items():
        if name == "sample" or "sample" not in var.dims or name in ("x", "v"):
            continue
        if var.ndim == 1:
            keys.append(sample_key(name))
        elif var.ndim == 2 and var.dims[0] == "sample":
            keys += [sample_key(name, i) for i in range(var.shape[1])]
    return keys


def sample_values(ds: xr.Dataset | xr.DataArray, key: str) -> np.ndarray:
    """Values of ``key`` (a sample coord/var, or ``name[i]`` for column i of a (sample, k) var)."""
    name, col = parse_sample_key(key)
    container = ds.coords if isinstance(ds, xr.DataArray) else ds.variables
    var = container[name] if name in container else None
    ok = var is not None and var.dims[:1] == ("sample",) and var.ndim == (1 if col is None else 2)
    if not ok or (col is not None and col >= var.shape[1]):
        raise ValueError(f"colour/variable key {key!r} is not a per-sample variable; choose one of {sample_keys(ds)}.")
    values = np.asarray(var.values)
    return values if col is None else values[:, col]


def json_safe_grid(z: np.ndarray) -> np.ndarray:
    """2-D grid with NaN replaced by None (plotly gaps): widgets send 2-D arrays as JSON lists."""
    z = np.asarray(z, dtype=np.float64)
    if not np.isnan(z).any():
        return z
    out = z.astype(object)
    out[np.isnan(z)] = None
    return out


#: Behaviour variables preferred as the default colour, most informative first.
PREFERRED_BEHAVIOUR = ("position", "reach_angle", "angle", "speed", "direction")


def _n_unique(values: np.ndarray) -> int:
    return int(np.unique(np.asarray(values)).size)


def default_color_key(ds: xr.Dataset | xr.DataArray) -> str | None:
    """Most informative per-sample colour: condition (if > 1), else a behaviour variable, else time.

    Multi-condition data are coloured by condition (the comparison MARBLE is about); a single
    condition gives one flat colour, so a numeric behaviour variable (``position`` first) or time
    is used instead. Returns None when nothing varies across samples.
    """
    keys = sample_keys(ds)
    if "condition" in keys and _n_unique(sample_values(ds, "condition")) > 1:
        return "condition"
    numeric = [k for k in keys if k not in ("condition", "trial", "time")
               and np.asarray(sample_values(ds, k)).dtype.kind in "iuf" and _n_unique(sample_values(ds, k)) > 1]
    def rank(key: str) -> int:
        name = parse_sample_key(key)[0]
        return PREFERRED_BEHAVIOUR.index(name) if name in PREFERRED_BEHAVIOUR else len(PREFERRED_BEHAVIOUR)

    ranked = sorted(numeric, key=rank)
    if ranked:
        return ranked[0]
    for key in ("time", "trial"):
        if key in keys and _n_unique(sample_values(ds, key)) > 1:
            return key
    return None


def sample_context(sources: tuple[xr.Dataset | xr.DataArray | None, ...], i: int) -> str:
    """Readable "t = 12.3 s · trial 0 · 45deg" for sample ``i`` from the first source carrying coords."""
    for ds in sources:
        if ds is None or "time" not in ds.coords or "sample" not in ds["time"].dims:
            continue
        parts = [f"t = {float(ds['time'].values[i]):.3g} s"]
        if "trial" in ds.coords:
            parts.append(f"trial {ds['trial'].values[i]}")
        if "condition" in ds.coords and _n_unique(ds["condition"].values) > 1:
            parts.append(str(ds["condition"].values[i]))
        return " · ".join(parts)
    return f"sample {i}"
