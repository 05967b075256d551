"""FlowView: a flow-field explorer that draws itself in the browser (anywidget + plotly.js).

Why: every step of :class:`~marble_widgets.widgets.FlowFieldExplorer` is a kernel round trip plus
full plotly redraws (~0.5 s). Here the data cross to the browser once, as binary typed-array
buffers, and the ES module ``static/flow_view.js`` steps, plays, scrubs, jumps on click, recolours
and highlights neighbourhoods from those arrays with plotly.js directly; nothing waits for the
kernel. Python and the page share a few small traits (``sample``, ``playing``, ``color_by``,
``selection``, ``behaviour``, ``show_transported``), two-way. Given MARBLE's results Dataset
(``MARBLE.results(flow_field)``) it also shows MARBLE's own neighbours, the transported neighbour
vectors in each sample's frame and the derivative features. Both 2-D clouds are drawn by a small
point layer of our own (``static/flow_view_gl.js``: WebGL on a GPU, typed-array splats where WebGL
is software-rendered) so 10^5-10^6 points recolour, select and pan in the page.
:meth:`FlowView.to_html` writes the same module, plotly.js and the (compressed) buffers into one
file that stays interactive without a kernel.
"""
from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as widgets
import numpy as np
import traitlets
import xarray as xr
from ipywidgets.widgets.trait_types import bytes_serialization
from plotly.colors import get_colorscale

from marble_widgets.data.containers import FEATURE_COORDS
from marble_widgets.plotting.common import (
    check_sample, default_color_key, display_scale, marker_color, pick_dims, require_dims, require_vars, sample_keys,
    sample_values, trajectory_order,
)
from marble_widgets.plotting.state_space import FLOW_HINT
from marble_widgets.plotting.theme import FONT, HIGHLIGHT, INK, MUTED, PALETTE, SELECTION, SUBTLE
from marble_widgets.widgets.page import (  # noqa: F401  (re-exported: the wire format and plotly.js holder)
    DTYPES, PLOTLY_JS, STATIC, PlotlyLibrary, pack, page_view, plotly_js, plotly_library, unpack, write_page,
)

#: Neighbours per sample looked up when no ``neighbors`` are given.
DEFAULT_K = 10
#: Variables MARBLE.results adds on ``sample``: read by the views, never offered as colours.
RESULT_VARS = ("embedding", "neighbors", "frame", "transported", "features")
#: ES module parts, concatenated into one no-build module (WebGL point layer, panels, the view).
ESM_PARTS = ("mw_common.js", "flow_view_gl.js", "flow_view_panels.js", "flow_view.js")


def esm_text() -> str:
    """The view's ES module: ``ESM_PARTS`` joined (each part's top-level names stay module-private)."""
    return "\n".join(f"// ---- {name} ----\n" + (STATIC / name).read_text(encoding="utf-8") for name in ESM_PARTS)


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


def pack_arrays(arrays: Mapping[str, np.ndarray], *, compress: bool = False) -> dict[str, dict[str, Any]]:
    """:func:`pack` every array of :func:`view_payload` with its wire dtype (colours: float32)."""
    return {name: pack(a, DTYPE_OF.get(name, "float32"), compress=compress) for name, a in arrays.items()}


def _indices_bytes(indices: Any) -> bytes:
    return np.asarray(indices, dtype="<i4").tobytes()


# --- the widget ---------------------------------------------------------------------------------
class FlowView(anywidget.AnyWidget):
    """Step, play and click through a flow field in the browser: state space, embedding, local flow.

    The page holds positions, vectors, neighbour indices, embedding, colour variables and the
    trajectory order as typed arrays and answers every interaction itself: Step (buttons, arrow
    keys), Play (requestAnimationFrame, ``fps`` samples per second), the scrubbing slider over the
    current trajectory, click-to-jump in either cloud (or on a highlighted neighbour), box/lasso
    selection in the embedding, recolour, and the current point's graph neighbours highlighted in
    every view (the local-flow view shows their offsets from the point and their vectors). A
    behaviour panel plots the current trajectory's ``behaviour`` variable over time with a cursor.
    After each step the page fires ``mw-drawn`` (detail: sample, time) in the frame that shows it.

    Given a results Dataset (``MARBLE.results(flow_field)``: the flow field plus ``embedding``,
    ``neighbors``, ``frame``, ``transported``, ``features``) the views use MARBLE's own
    neighbours and embedding, the local view is drawn in the sample's frame with the neighbours' raw
    vectors and (``show_transported``) their parallel-transported ones, and a panel shows the
    sample's derivative features grouped by order.

    Synced state, two-way (the browser reports at most every ``sync_ms``; setting a trait here
    redraws the page): ``sample`` (int), ``playing`` (bool), ``color_by`` (one of
    :attr:`color_keys`), ``selection`` (sorted sample indices; it travels as int32 bytes, read it as
    an array with :attr:`selected`), ``behaviour`` (one of :attr:`behaviour_keys`, "" = follow
    ``color_by``), ``show_transported`` (bool).

    Parameters
    ----------
    flow_field : the flow-field Dataset (``x``, ``v`` on (sample, dim); ``condition``/``trial``/``time``)
        or MARBLE's results Dataset (the same with the results added).
    embedding : optional ``MARBLE.transform(flow_field)`` (sample, latent); its first 2 dims are drawn.
        Default with a results Dataset: its ``embedding``.
    neighbors : (sample, k) int indices (-1 padded) or ``MARBLE.inspect`` output; default: the results'
        ``neighbors``, else the ``k`` nearest samples in the full state space.
    dims : plotted state dims. 2 (default): a point layer (WebGL or CPU splats) under SVG marks for the
        point, its neighbours and trail (a step costs about one frame). 3: a rotatable plotly 3-D scene, redrawn
        after the other views (coalesced, at most once a second while playing; fires ``mw-scene-drawn``).
    behaviour : numeric per-sample variable plotted over time in the behaviour panel ("" or None:
        the colour variable when it is numeric).
    features : draw the derivative-features panel of a results Dataset. Its (sample, feature) float32
        buffer is the largest one sent (the rat at order 2: 1110 features, 29 MB); False leaves it out.
    """

    _esm = esm_text()
    _css = STATIC / "flow_view.css"

    sample = traitlets.Int(0).tag(sync=True)
    playing = traitlets.Bool(False).tag(sync=True)
    color_by = traitlets.Unicode("").tag(sync=True)
    behaviour = traitlets.Unicode("").tag(sync=True)
    show_transported = traitlets.Bool(True).tag(sync=True)
    selection = traitlets.List(traitlets.Int())
    fps = traitlets.Float(30.0).tag(sync=True)
    sync_ms = traitlets.Int(150).tag(sync=True)
    _selection = traitlets.Bytes(b"").tag(sync=True, **bytes_serialization)
    _arrays = traitlets.Dict().tag(sync=True)
    _meta = traitlets.Dict().tag(sync=True)
    _plotly = traitlets.Instance(PlotlyLibrary).tag(sync=True, **widgets.widget_serialization)

    def __init__(self, flow_field: xr.Dataset, embedding: xr.DataArray | None = None, *, neighbors: Any = None,
                 k: int = DEFAULT_K, dims: int = 2, color_by: str | None = None, fps: float = 30.0,
                 sample: int | None = None, title: str = "Flow field", behaviour: str | None = None,
                 features: bool = True) -> None:
        require_vars(flow_field, ("x", "v"), "flow_field", FLOW_HINT)
        for coord in ("condition", "trial", "time"):
            if coord not in flow_field.coords:
                raise ValueError(f"flow_field lacks the sample coord {coord!r}; build it with mw.flow_field "
                                 "or flow_field_from_arrays (see docs/design.md).")
        n_dims = pick_dims(flow_field.sizes["dim"], dims)
        results = is_results(flow_field)
        if results and neighbors is not None:
            raise ValueError("neighbors= cannot be combined with a results Dataset: its transported vectors and "
                             "features follow its own 'neighbors'; drop the argument.")
        if results and embedding is None:
            embedding = flow_field["embedding"]
        nb = neighbour_indices(flow_field, flow_field["neighbors"].values if results else neighbors, k)
        arrays, meta = view_payload(flow_field, embedding, nb, n_dims)
        if results:
            self._add_results(flow_field, arrays, meta, features)
        meta["title"] = str(title)
        self._n = meta["n"]
        self._color_keys = list(meta["colors"])
        self._behaviour_keys = list(meta["behaviour_keys"])
        self._values = arrays  # kept for tests/export: exactly what was packed
        start = int(arrays["order"][0]) if sample is None else sample
        if color_by is None:
            color_by = default_color_key(flow_field.drop_vars([v for v in RESULT_VARS if v in flow_field]))
            color_by = color_by if color_by in meta["colors"] else ""
        super().__init__(_arrays=pack_arrays(arrays), _meta=meta, _plotly=plotly_library(), fps=fps,
                         sample=start, color_by=color_by, behaviour=behaviour or "")
        self.add_class("mw-flow-view")

    @classmethod
    def from_results(cls, results: xr.Dataset, **kwargs: Any) -> FlowView:
        """The view of MARBLE's results Dataset (``MARBLE.results(flow_field)``); same keywords as the class."""
        if not isinstance(results, xr.Dataset):
            raise TypeError(f"results must be an xarray.Dataset ({RESULTS_HINT}); got {type(results).__name__}.")
        require_vars(results, ("x", "v", "embedding", "neighbors"), "results", RESULTS_HINT)
        return cls(results, **kwargs)

    @staticmethod
    def _add_results(results: xr.Dataset, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                     features: bool) -> None:
        """Local-frame arrays (when frames and transported vectors are there) and the features panel's."""
        if "frame" in results and "transported" in results:
            extra, info = local_frame_payload(results)
            arrays.update(extra)
            meta.update(info)
        if features and "features" in results:
            arrays["features"], meta["features"] = features_payload(results)

    @property
    def trajectory_order(self) -> tuple[np.ndarray, np.ndarray]:
        """Samples in (condition, trial, time) order and each trajectory's offsets in it (not decoded again)."""
        return self._values["order"], self._values["offsets"]

    @property
    def color_keys(self) -> list[str]:
        """Names ``color_by`` accepts ("" = one flat colour)."""
        return list(self._color_keys)

    @property
    def behaviour_keys(self) -> list[str]:
        """Numeric per-sample variables the behaviour panel can plot ("" = follow ``color_by``)."""
        return list(self._behaviour_keys)

    @property
    def selected(self) -> np.ndarray:
        """The selection as a sorted int64 array (decoded from the int32 bytes the page sends)."""
        return np.frombuffer(self._selection, dtype="<i4").astype(np.int64)

    @selected.setter
    def selected(self, indices: Any) -> None:
        self.selection = np.asarray(indices, dtype=np.int64).reshape(-1).tolist()

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays the page draws from, decoded from the synced buffers (as the page sees them)."""
        return {name: unpack(entry) for name, entry in self._arrays.items()}

    @traitlets.validate("sample")
    def _valid_sample(self, proposal: dict) -> int:
        return check_sample(proposal["value"], self._n)

    @traitlets.validate("color_by", "behaviour")
    def _valid_key(self, proposal: dict) -> str:
        """``color_by``/``behaviour`` name a per-sample variable the page holds ('' = none / follow)."""
        name, key = proposal["trait"].name, proposal["value"]
        keys, kind, empty = ((self._color_keys, "per-sample", "'' for one colour") if name == "color_by" else
                             (self._behaviour_keys, "numeric per-sample", "'' to follow color_by"))
        if key and key not in keys:
            raise ValueError(f"{name}={key!r} is not a {kind} variable of the flow field; choose one of "
                             f"{keys} (or {empty}).")
        return key

    @traitlets.validate("selection")
    def _valid_selection(self, proposal: dict) -> list[int]:
        sel = np.asarray(proposal["value"], dtype=np.int64)
        if sel.size and (sel.min() < 0 or sel.max() >= self._n):
            raise ValueError(f"selection holds indices outside [0, {self._n}); select samples of this flow field.")
        return np.unique(sel).tolist()

    @traitlets.validate("_selection")
    def _valid_selection_bytes(self, proposal: dict) -> bytes:
        raw = bytes(proposal["value"])
        if len(raw) % 4:
            raise ValueError(f"_selection must hold int32 indices (a multiple of 4 bytes); got {len(raw)} bytes.")
        sel = np.unique(np.frombuffer(raw, dtype="<i4"))
        if sel.size and (sel[0] < 0 or sel[-1] >= self._n):
            raise ValueError(f"selection holds indices outside [0, {self._n}); select samples of this flow field.")
        return _indices_bytes(sel)

    @traitlets.observe("selection")
    def _selection_to_bytes(self, change: dict) -> None:
        raw = _indices_bytes(change["new"])
        if raw != self._selection:
            self._selection = raw

    @traitlets.observe("_selection")
    def _selection_from_bytes(self, change: dict) -> None:
        sel = self.selected.tolist()
        if sel != self.selection:
            self.selection = sel

    @traitlets.validate("fps")
    def _valid_fps(self, proposal: dict) -> float:
        fps = float(proposal["value"])
        if not 0 < fps <= 240:
            raise ValueError(f"fps={fps} must be in (0, 240] samples per second.")
        return fps

    # --- export -------------------------------------------------------------------------------
    def export_state(self) -> dict[str, Any]:
        """The page's whole state as JSON-safe values: traits, metadata, compressed base64 buffers."""
        packed = pack_arrays(self._values, compress=True)
        for entry in packed.values():
            entry["buffer"] = base64.b64encode(entry["buffer"]).decode("ascii")
        source, version = plotly_js()
        return {"sample": self.sample, "playing": False, "color_by": self.color_by, "behaviour": self.behaviour,
                "show_transported": self.show_transported, "_selection": list(self.selection),
                "fps": self.fps, "sync_ms": self.sync_ms, "_meta": self._meta, "_arrays": packed,
                "_plotly": {"version": version, "source": base64.b64encode(source).decode("ascii")}}

    def to_html(self, path: str | Path, title: str | None = None) -> Path:
        """Write one self-contained HTML file in which step, Play, click-to-jump and recolour work offline.

        The page (``page.write_page``, as the dashboard's export) embeds the view's ES module, its CSS,
        plotly.js and the arrays (zlib + base64, inflated by the browser's ``DecompressionStream``);
        it loads nothing from the network. The view's root is ``#mw-root-flow``.
        """
        view = page_view("flow", self)
        view.state["_meta"] = {**view.state["_meta"], "title": title or self._meta["title"]}
        return write_page(path, view.state["_meta"]["title"], [view])


