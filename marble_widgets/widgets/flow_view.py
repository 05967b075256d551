"""FlowView: a flow-field explorer that draws itself in the browser (anywidget + plotly.js).

Why: every step of :class:`~marble_widgets.widgets.FlowFieldExplorer` is a kernel round trip plus
full plotly redraws (~0.5 s). Here the data cross to the browser once, as binary typed-array
buffers, and the ES module ``static/flow_view.js`` steps, plays, scrubs, jumps on click, recolours
and highlights neighbourhoods from those arrays with plotly.js directly; nothing waits for the
kernel. Python and the page share a few small traits (``sample``, ``playing``, ``color_by``,
``selection``), two-way. :meth:`FlowView.to_html` writes the same module, plotly.js and the
(compressed) buffers into one file that stays interactive without a kernel.
"""
from __future__ import annotations

import base64
import html
import json
import re
import zlib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as widgets
import numpy as np
import plotly
import traitlets
import xarray as xr

from marble_widgets.plotting.common import (
    check_sample, default_color_key, display_scale, marker_color, pick_dims, require_dims, require_vars, sample_keys,
    sample_values, trajectory_order,
)
from marble_widgets.plotting.state_space import FLOW_HINT
from marble_widgets.plotting.theme import FONT, HIGHLIGHT, INK, MUTED, PALETTE, SELECTION, SUBTLE

STATIC = Path(__file__).parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
#: dtypes a buffer may carry (JS typed-array constructors of the same names exist for each).
DTYPES = ("float32", "float64", "int32", "uint8")
#: Neighbours per sample looked up when no ``neighbors`` are given.
DEFAULT_K = 10


# --- binary buffers ---------------------------------------------------------------------------
def pack(array: np.ndarray, dtype: str, *, compress: bool = False) -> dict[str, Any]:
    """One array as ``{"dtype", "shape", "buffer"}`` (C-order little-endian bytes; zlib if ``compress``).

    Why: ipywidgets sends ``bytes`` inside a synced dict as a binary websocket buffer, and the page
    wraps it in the typed array named by ``dtype`` without parsing any JSON numbers.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}; got {dtype!r}.")
    data = np.ascontiguousarray(np.asarray(array), dtype=np.dtype(dtype).newbyteorder("<"))
    raw = data.tobytes()
    entry: dict[str, Any] = {"dtype": dtype, "shape": list(data.shape),
                             "buffer": zlib.compress(raw, 6) if compress else raw}
    if compress:
        entry["compression"] = "deflate"
    return entry


def unpack(entry: Mapping[str, Any]) -> np.ndarray:
    """Inverse of :func:`pack` (also reads a buffer given as base64 text, as in the HTML export)."""
    raw = entry["buffer"]
    raw = base64.b64decode(raw) if isinstance(raw, str) else bytes(raw)
    if entry.get("compression") == "deflate":
        raw = zlib.decompress(raw)
    return np.frombuffer(raw, dtype=np.dtype(entry["dtype"]).newbyteorder("<")).reshape(entry["shape"])


# --- plotly.js, once per kernel ----------------------------------------------------------------
@lru_cache(maxsize=1)
def plotly_js() -> tuple[bytes, str]:
    """zlib-compressed ``plotly.min.js`` of the installed plotly package and its plotly.js version."""
    source = PLOTLY_JS.read_bytes()
    match = re.search(rb"plotly\.js v([0-9][^\s*]*)", source[:400])
    return zlib.compress(source, 9), match.group(1).decode() if match else plotly.__version__


class PlotlyLibrary(widgets.Widget):
    """View-less widget carrying the compressed plotly.js, shared by every FlowView of a kernel.

    The page evaluates it at most once (cached on ``globalThis`` by version), so the 1.5 MB travel
    once per kernel and plotly.js is parsed once per page.
    """

    source = traitlets.Bytes().tag(sync=True)
    version = traitlets.Unicode().tag(sync=True)


_LIBRARY: PlotlyLibrary | None = None


def plotly_library() -> PlotlyLibrary:
    """The kernel's shared :class:`PlotlyLibrary` (created on first use, again if it was closed)."""
    global _LIBRARY
    if _LIBRARY is None or _LIBRARY.comm is None:
        source, version = plotly_js()
        _LIBRARY = PlotlyLibrary(source=source, version=version)
    return _LIBRARY


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


def view_payload(flow_field: xr.Dataset, embedding: xr.DataArray | None, neighbors: np.ndarray,
                 n_dims: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays (by name) and JSON metadata that ``flow_view.js`` draws from; nothing is computed there
    beyond index lookups, offsets from the point and one fixed arrow scale.

    Arrays: ``x``/``v`` (sample, n_dims) display positions/vectors, ``neighbors`` (sample, k),
    ``order`` (sample,) trajectory order, ``offsets`` (n_traj + 1,), ``time`` (sample,),
    ``embedding`` (sample, 2) if given, and ``color:<key>`` (sample,) per colour key.
    """
    x, v = (flow_field[k].transpose("sample", "dim").values for k in ("x", "v"))
    order, offsets, labels = _trajectories(flow_field)
    arrays = {"x": x[:, :n_dims], "v": v[:, :n_dims], "neighbors": neighbors, "order": order,
              "offsets": offsets, "time": flow_field["time"].values}
    emb = _embedding_2d(embedding, x.shape[0])
    if emb is not None:
        arrays["embedding"] = emb
    colors: dict[str, Any] = {}
    for key in sample_keys(flow_field):
        values = np.asarray(sample_values(flow_field, key))
        if values.dtype.kind not in "iufbUSO" or (values.dtype.kind == "f" and not np.isfinite(values).any()):
            continue
        arrays[f"color:{key}"], colors[key] = _color_spec(values, key)
    valid = neighbors >= 0
    dist = np.linalg.norm(x[np.where(valid, neighbors, 0), :n_dims] - x[:, None, :n_dims], axis=-1)[valid]
    meta = {
        "n": int(x.shape[0]), "n_dims": n_dims, "dims": [str(d) for d in flow_field["dim"].values[:n_dims]],
        "colors": colors, "trajectories": labels,
        "arrow_scale": display_scale(np.linalg.norm(v[:, :n_dims], axis=1), 0.6 * float(np.median(dist))
                                     if dist.size else 1.0),
        "theme": {"font": FONT, "ink": INK, "subtle": SUBTLE, "highlight": HIGHLIGHT, "selection": SELECTION,
                  "muted": MUTED, "palette": list(PALETTE)},
    }
    return arrays, meta


DTYPE_OF = {"x": "float32", "v": "float32", "embedding": "float32", "neighbors": "int32", "order": "int32",
            "offsets": "int32", "time": "float64"}


def pack_arrays(arrays: Mapping[str, np.ndarray], *, compress: bool = False) -> dict[str, dict[str, Any]]:
    """:func:`pack` every array of :func:`view_payload` with its wire dtype (colours: float32)."""
    return {name: pack(a, DTYPE_OF.get(name, "float32"), compress=compress) for name, a in arrays.items()}


# --- the widget ---------------------------------------------------------------------------------
class FlowView(anywidget.AnyWidget):
    """Step, play and click through a flow field in the browser: state space, embedding, local flow.

    The page holds positions, vectors, neighbour indices, embedding, colour variables and the
    trajectory order as typed arrays and answers every interaction itself: Step (buttons, arrow
    keys), Play (requestAnimationFrame, ``fps`` samples per second), the scrubbing slider over the
    current trajectory, click-to-jump in either cloud (or on a highlighted neighbour), box/lasso
    selection in the embedding, recolour, and the current point's graph neighbours highlighted in
    every view (the local-flow view shows their offsets from the point and their vectors). After each
    step the page fires ``mw-drawn`` (detail: sample, time) in the frame that shows it.

    Synced state, two-way (the browser reports at most every ``sync_ms``; setting a trait here
    redraws the page): ``sample`` (int), ``playing`` (bool), ``color_by`` (one of
    :attr:`color_keys`), ``selection`` (sorted sample indices).

    Parameters
    ----------
    flow_field : the flow-field Dataset (``x``, ``v`` on (sample, dim); ``condition``/``trial``/``time``).
    embedding : optional ``MARBLE.transform(flow_field)`` (sample, latent); its first 2 dims are drawn.
    neighbors : (sample, k) int indices (-1 padded) or ``MARBLE.inspect`` output; default: the ``k``
        nearest samples in the full state space.
    dims : plotted state dims. 2 (default): a WebGL scatter whose point, neighbours and trail are SVG
        marks moved without redrawing plotly (a step costs about one frame). 3: a rotatable 3-D scene;
        plotly redraws its whole cloud for every change, so it is redrawn after the other views
        (coalesced, at most once a second while playing; the page fires ``mw-scene-drawn``).
    """

    _esm = STATIC / "flow_view.js"
    _css = STATIC / "flow_view.css"

    sample = traitlets.Int(0).tag(sync=True)
    playing = traitlets.Bool(False).tag(sync=True)
    color_by = traitlets.Unicode("").tag(sync=True)
    selection = traitlets.List(traitlets.Int()).tag(sync=True)
    fps = traitlets.Float(30.0).tag(sync=True)
    sync_ms = traitlets.Int(150).tag(sync=True)
    _arrays = traitlets.Dict().tag(sync=True)
    _meta = traitlets.Dict().tag(sync=True)
    _plotly = traitlets.Instance(PlotlyLibrary).tag(sync=True, **widgets.widget_serialization)

    def __init__(self, flow_field: xr.Dataset, embedding: xr.DataArray | None = None, *, neighbors: Any = None,
                 k: int = DEFAULT_K, dims: int = 2, color_by: str | None = None, fps: float = 30.0,
                 sample: int | None = None, title: str = "Flow field") -> None:
        require_vars(flow_field, ("x", "v"), "flow_field", FLOW_HINT)
        for coord in ("condition", "trial", "time"):
            if coord not in flow_field.coords:
                raise ValueError(f"flow_field lacks the sample coord {coord!r}; build it with mw.flow_field "
                                 "or flow_field_from_arrays (see docs/design.md).")
        n_dims = pick_dims(flow_field.sizes["dim"], dims)
        nb = neighbour_indices(flow_field, neighbors, k)
        arrays, meta = view_payload(flow_field, embedding, nb, n_dims)
        meta["title"] = str(title)
        self._n = meta["n"]
        self._color_keys = list(meta["colors"])
        self._values = arrays  # kept for tests/export: exactly what was packed
        start = int(arrays["order"][0]) if sample is None else sample
        if color_by is None:
            color_by = default_color_key(flow_field)
            color_by = color_by if color_by in meta["colors"] else ""
        super().__init__(_arrays=pack_arrays(arrays), _meta=meta, _plotly=plotly_library(), fps=fps,
                         sample=start, color_by=color_by)
        self.add_class("mw-flow-view")

    @property
    def color_keys(self) -> list[str]:
        """Names ``color_by`` accepts ("" = one flat colour)."""
        return list(self._color_keys)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays the page draws from, decoded from the synced buffers (as the page sees them)."""
        return {name: unpack(entry) for name, entry in self._arrays.items()}

    @traitlets.validate("sample")
    def _valid_sample(self, proposal: dict) -> int:
        return check_sample(proposal["value"], self._n)

    @traitlets.validate("color_by")
    def _valid_color(self, proposal: dict) -> str:
        key = proposal["value"]
        if key and key not in self._color_keys:
            raise ValueError(f"color_by={key!r} is not a per-sample variable of the flow field; choose one of "
                             f"{self._color_keys} (or '' for one colour).")
        return key

    @traitlets.validate("selection")
    def _valid_selection(self, proposal: dict) -> list[int]:
        sel = np.asarray(proposal["value"], dtype=np.int64)
        if sel.size and (sel.min() < 0 or sel.max() >= self._n):
            raise ValueError(f"selection holds indices outside [0, {self._n}); select samples of this flow field.")
        return np.unique(sel).tolist()

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
        return {"sample": self.sample, "playing": False, "color_by": self.color_by, "selection": list(self.selection),
                "fps": self.fps, "sync_ms": self.sync_ms, "_meta": self._meta, "_arrays": packed,
                "_plotly": {"version": version, "source": base64.b64encode(source).decode("ascii")}}

    def to_html(self, path: str | Path, title: str | None = None) -> Path:
        """Write one self-contained HTML file in which step, Play, click-to-jump and recolour work offline.

        The file embeds ``flow_view.js``, its CSS, plotly.js and the arrays (zlib + base64, inflated by
        the browser's ``DecompressionStream``); it loads nothing from the network.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = self.export_state()
        state["_meta"] = {**state["_meta"], "title": title or self._meta["title"]}
        path.write_text(export_html(state, state["_meta"]["title"]), encoding="utf-8")
        return path


def _script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</`` that would close it)."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def export_html(state: dict[str, Any], title: str) -> str:
    """The standalone page: payload JSON, the view's ESM and CSS, and the bootstrap module."""
    payload = {"esm": (STATIC / "flow_view.js").read_text(encoding="utf-8"), "state": state}
    css = (STATIC / "flow_view.css").read_text(encoding="utf-8")
    boot = (STATIC / "flow_view_export.js").read_text(encoding="utf-8")
    return (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>\n"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>\n<style>{css}\n"
            f"body{{margin:16px;font-family:{FONT}}}</style></head>\n<body>\n"
            "<div id='mw-root' class='mw-flow-view'></div>\n"
            f"<script type='application/json' id='mw-payload'>{_script_json(payload)}</script>\n"
            f"<script type='module'>\n{boot}\n</script>\n</body></html>\n")
