"""What a FlowView sends to the page: typed arrays and JSON metadata built from a flow field or MARBLE's
results Dataset (``flow_view.FlowView`` is the widget; this module only reads Datasets and packs arrays).

Why apart: building buffers (neighbours, trajectory order, colours, local frames, quantised features)
is one job; the widget's traits, validation and export another.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from plotly.colors import get_colorscale

from marble_widgets.data.containers import FEATURE_COORDS
from marble_widgets.plotting.common import (
    display_scale, marker_color, require_dims, require_vars, sample_keys, sample_values, trajectory_order,
)
from marble_widgets.plotting.theme import FONT, HIGHLIGHT, INK, MUTED, PALETTE, SELECTION, SUBTLE
from marble_widgets.widgets.page import pack, pack_quantized

#: Neighbours per sample looked up when no ``neighbors`` are given.
DEFAULT_K = 10
#: Variables MARBLE.results adds on ``sample``: read by the views, never offered as colours.
RESULT_VARS = ("embedding", "neighbors", "frame", "transported", "features")


# --- what the page receives ---------------------------------------------------------------------
def neighbour_indices(flow_field: xr.Dataset, neighbors: Any, k: int) -> np.ndarray:
    """(sample, neighbor) int indices, -1 padded: from ``neighbors`` (array or MARBLE.inspect output)
    or, when None, the ``k`` nearest other samples in the full state space (sklearn)."""
    n = flow_field.sizes["sample"]
    if neighbors is None:
        from sklearn.neighbors import NearestNeighbors

        if not 1 <= k < n:
            raise ValueError(f"k={k} neighbours is impossible with {n} samples; choose 1 <= k < {n}.")
        x = flow_field["x"].transpose("sample", "dim").values
        _, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
        return np.array([row[row != i][:k] for i, row in enumerate(idx)], dtype=np.int64)
    if isinstance(neighbors, xr.Dataset):
        require_vars(neighbors, ("neighbors",), "neighbors", "MARBLE.inspect(flow_field) output")
        neighbors = neighbors["neighbors"].values
    nb = np.asarray(neighbors)
    if nb.ndim != 2 or nb.shape[0] != n or nb.dtype.kind not in "iu":
        raise ValueError(f"neighbors must be an int array of shape ({n}, k) (or MARBLE.inspect output); "
                         f"got dtype {nb.dtype} shape {nb.shape}.")
    if nb.size and (nb.max() >= n or nb.min() < -1):
        raise ValueError(f"neighbors holds indices outside [-1, {n}); pass neighbours of this flow field.")
    return nb.astype(np.int64)


def _color_spec(values: np.ndarray, key: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-sample numbers to colour by (category codes or values) and their plotly marker style."""
    style = marker_color(values, key)
    color = np.asarray(style.pop("color"), dtype=np.float64)
    style.pop("showscale", None)
    if isinstance(style.get("colorscale"), str):  # the page maps values to colours itself: explicit stops
        style["colorscale"] = [[float(t), str(c)] for t, c in get_colorscale(style["colorscale"])]
    return color, style


def _embedding_2d(embedding: xr.DataArray | None, n: int) -> np.ndarray | None:
    if embedding is None:
        return None
    require_dims(embedding, ("sample", "latent"), "embedding", "MARBLE.transform output")
    if embedding.sizes["sample"] != n:
        raise ValueError(f"embedding has {embedding.sizes['sample']} samples but flow_field has {n}; "
                         "pass the embedding of this flow field.")
    if embedding.sizes["latent"] < 2:
        raise ValueError("embedding needs at least 2 latent dims to be drawn; got 1.")
    return embedding.values[:, :2]


def _trajectories(ff: xr.Dataset) -> tuple[np.ndarray, np.ndarray, list[list[Any]]]:
    """Samples in (condition, trial, time) order, offsets of each trajectory in it, their labels."""
    cond, trial = ff["condition"].values.astype(str), ff["trial"].values
    order, starts = trajectory_order(cond, trial, ff["time"].values)
    offsets = np.r_[np.flatnonzero(starts), order.size]
    labels = [[str(cond[order[s]]), int(trial[order[s]])] for s in offsets[:-1]]
    return order, offsets, labels


def color_keys_of(ds: xr.Dataset) -> list[str]:
    """Per-sample variables a view may colour by: :func:`sample_keys` without MARBLE's result variables."""
    return [k for k in sample_keys(ds) if k.split("[", 1)[0] not in RESULT_VARS]


def view_payload(flow_field: xr.Dataset, embedding: xr.DataArray | None, neighbors: np.ndarray,
                 n_dims: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays (by name) and JSON metadata that ``flow_view.js`` draws from; nothing is computed there
    beyond index lookups, offsets from the point, 2-vectors projected on a frame and one arrow scale.

    Arrays: ``x``/``v`` (sample, n_dims) display positions/vectors, ``neighbors`` (sample, k),
    ``order`` (sample,) trajectory order, ``offsets`` (n_traj + 1,), ``time`` (sample,),
    ``embedding`` (sample, 2) if given, and ``color:<key>`` (sample,) per colour key (the values
    themselves for numbers, category codes otherwise; numeric keys are also the behaviour panel's).
    """
    x, v = (flow_field[k].transpose("sample", "dim").values for k in ("x", "v"))
    order, offsets, labels = _trajectories(flow_field)
    arrays = {"x": x[:, :n_dims], "v": v[:, :n_dims], "neighbors": neighbors, "order": order,
              "offsets": offsets, "time": flow_field["time"].values}
    emb = _embedding_2d(embedding, x.shape[0])
    if emb is not None:
        arrays["embedding"] = emb
    colors: dict[str, Any] = {}
    behaviour: list[str] = []
    for key in color_keys_of(flow_field):
        values = np.asarray(sample_values(flow_field, key))
        if values.dtype.kind not in "iufbUSO" or (values.dtype.kind == "f" and not np.isfinite(values).any()):
            continue
        arrays[f"color:{key}"], colors[key] = _color_spec(values, key)
        categorical = bool(colors[key].get("colorbar", {}).get("ticktext"))
        if key not in ("condition", "trial", "time") and values.dtype.kind in "iuf" and not categorical:
            behaviour.append(key)  # a number that changes along a trajectory: the behaviour panel's
    valid = neighbors >= 0
    dist = np.linalg.norm(x[np.where(valid, neighbors, 0), :n_dims] - x[:, None, :n_dims], axis=-1)[valid]
    meta = {
        "n": int(x.shape[0]), "n_dims": n_dims, "dims": [str(d) for d in flow_field["dim"].values[:n_dims]],
        "colors": colors, "behaviour_keys": behaviour, "trajectories": labels,
        "arrow_scale": display_scale(np.linalg.norm(v[:, :n_dims], axis=1), 0.6 * float(np.median(dist))
                                     if dist.size else 1.0),
        "theme": {"font": FONT, "ink": INK, "subtle": SUBTLE, "highlight": HIGHLIGHT, "selection": SELECTION,
                  "muted": MUTED, "palette": list(PALETTE)},
    }
    return arrays, meta


# --- MARBLE's results Dataset -------------------------------------------------------------------
RESULTS_HINT = "MARBLE.results(flow_field) output (see docs/design.md)"


def is_results(ds: xr.Dataset) -> bool:
    """True for a results Dataset: the flow field with MARBLE's ``embedding`` and ``neighbors`` added."""
    return isinstance(ds, xr.Dataset) and all(name in ds.data_vars for name in ("embedding", "neighbors"))


def _two_columns(a: np.ndarray) -> np.ndarray:
    """The first two entries of the last axis (a 1-D tangent space gets a zero second column)."""
    if a.shape[-1] >= 2:
        return a[..., :2]
    return np.concatenate([a, np.zeros_like(a)], axis=-1)


def local_frame_payload(results: xr.Dataset) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays for the local view drawn in each sample's frame (first two tangent directions).

    ``xf``/``vf`` (sample, dim) all state dims, ``frame`` (sample, dim, 2) and ``transported``
    (sample, neighbor, 2): neighbours' vectors parallel-transported into the sample's frame, on the
    columns of ``neighbors`` (NaN where -1). The page projects offsets and raw vectors on the frame.
    """
    require_vars(results, ("frame", "transported"), "results", RESULTS_HINT)
    frame = results["frame"].transpose("sample", "dim", "tangent").values
    transported = results["transported"].transpose("sample", "neighbor", "tangent").values
    if transported.shape[:2] != results["neighbors"].shape:
        raise ValueError(f"results['transported'] has shape {transported.shape[:2]} on (sample, neighbor) but "
                         f"results['neighbors'] {results['neighbors'].shape}; pass one {RESULTS_HINT}.")
    arrays = {"xf": results["x"].transpose("sample", "dim").values,
              "vf": results["v"].transpose("sample", "dim").values,
              "frame": _two_columns(frame), "transported": _two_columns(transported)}
    return arrays, {"tangent_dims": int(min(frame.shape[-1], 2))}


#: Earlier spelling of the feature coords (``order``, ``component``, ``direction``), still read.
LEGACY_FEATURE_COORDS = ("order", "component", "direction")


def features_payload(results: xr.Dataset) -> tuple[np.ndarray, dict[str, Any]]:
    """(sample, feature) derivative features and their grouping read from the ``feature`` coords.

    The panel groups bars by ``feature_order`` (-1 positions, 0 the signal, 1..p derivative order)
    and labels them with ``feature_component``/``feature_direction``; ``scale`` (99.5th percentile of
    |feature|) fixes the bars' axis so heights compare across samples.
    """
    feats = results["features"]
    found = [next((name for name in pair if name in feats.coords), None)
             for pair in zip(FEATURE_COORDS, LEGACY_FEATURE_COORDS)]
    missing = [name for name, got in zip(FEATURE_COORDS, found) if got is None]
    if missing:
        raise ValueError(f"results['features'] lacks the feature coords {missing}; pass {RESULTS_HINT}, which "
                         "labels every feature with its order, component and direction.")
    order, component, direction = (feats[name].values for name in found)
    values = feats.transpose("sample", "feature").values
    finite = np.abs(values[np.isfinite(values)])
    scale = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    meta = {"names": [str(n) for n in feats["feature"].values], "order": [int(o) for o in order],
            "component": [int(c) for c in component], "direction": [str(d) for d in direction],
            "scale": scale if scale > 0 else 1.0}
    return values, meta


DTYPE_OF = {"x": "float32", "v": "float32", "embedding": "float32", "neighbors": "int32", "order": "int32",
            "offsets": "int32", "time": "float64"}


#: Bits per derivative feature on the wire (:func:`pack_quantized`, per-feature offset and step): 8 bits
#: keep every value within (max - min) / 508 of its feature's range (rat, order 2: at most 1.4 % of the
#: bars' axis, median 0.4 %) at a quarter of float32's bytes.
FEATURE_BITS = 8


def pack_arrays(arrays: Mapping[str, np.ndarray], *, compress: bool = False) -> dict[str, dict[str, Any]]:
    """:func:`pack` every array of :func:`view_payload` with its wire dtype (colours: float32); the
    (sample, feature) ``features`` as per-feature 8-bit codes (:data:`FEATURE_BITS`, ``pack_quantized``)."""
    return {name: pack_quantized(a, FEATURE_BITS, compress=compress) if name == "features"
            else pack(a, DTYPE_OF.get(name, "float32"), compress=compress) for name, a in arrays.items()}


def _indices_bytes(indices: Any) -> bytes:
    return np.asarray(indices, dtype="<i4").tobytes()


