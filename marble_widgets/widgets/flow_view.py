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
file that stays interactive without a kernel. The buffers are built by ``flow_view_payload``.
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as widgets
import numpy as np
import traitlets
import xarray as xr
from ipywidgets.widgets.trait_types import bytes_serialization

from marble_widgets.plotting.common import check_sample, default_color_key, pick_dims, require_vars
from marble_widgets.plotting.state_space import FLOW_HINT
from marble_widgets.widgets.flow_view_payload import (  # noqa: F401  (re-exported: what the page receives)
    DEFAULT_K, DTYPE_OF, FEATURE_BITS, LEGACY_FEATURE_COORDS, RESULT_VARS, RESULTS_HINT, _indices_bytes, color_keys_of,
    features_payload, is_results, local_frame_payload, neighbour_indices, pack_arrays, view_payload,
)
from marble_widgets.widgets.page import (  # noqa: F401  (re-exported: the wire format and plotly.js holder)
    DTYPES, PLOTLY_JS, STATIC, PlotlyLibrary, pack, pack_quantized, page_view, plotly_js, plotly_library, unpack,
    write_page,
)

#: ES module parts, concatenated into one no-build module (WebGL point layer, panels, the view).
ESM_PARTS = ("mw_common.js", "flow_view_gl.js", "flow_view_dom.js", "flow_view_scene.js", "flow_view_panels.js",
             "flow_view.js")


def esm_text() -> str:
    """The view's ES module: ``ESM_PARTS`` joined (each part's top-level names stay module-private)."""
    return "\n".join(f"// ---- {name} ----\n" + (STATIC / name).read_text(encoding="utf-8") for name in ESM_PARTS)


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
    ``color_by``), ``show_transported`` (bool), ``channel`` (str: the page-wide channel shared with
    other views, see below).

    Parameters
    ----------
    flow_field : the flow-field Dataset (``x``, ``v`` on (sample, dim); ``condition``/``trial``/``time``)
        or MARBLE's results Dataset (the same with the results added).
    embedding : optional ``MARBLE.transform(flow_field)`` (sample, latent); its first 2 dims are drawn.
        Default with a results Dataset: its ``embedding``.
    neighbors : (sample, k) int indices (-1 padded) or ``MARBLE.inspect`` output; default: the results'
        ``neighbors``, else the ``k`` nearest samples in the full state space.
    dims : plotted state dims. 2 (default): a point layer (WebGL or CPU splats) under SVG marks for the
        point, its neighbours and trail (a step costs about one frame). 3: a rotatable 3-D scene of our own
        (``static/flow_view_scene.js``: the cloud splatted once per camera with a depth buffer, marks moved on a
        step in the same frame as the other views; fires ``mw-scene-drawn``); drag rotates, wheel zooms.
    behaviour : numeric per-sample variable plotted over time in the behaviour panel ("" or None:
        the colour variable when it is numeric).
    features : draw the derivative-features panel of a results Dataset. Its (sample, feature) buffer is the
        largest one sent; it travels as per-feature 8-bit codes (``FEATURE_BITS``: each value within
        (max - min) / 508 of its feature's; the rat at order 2: 1110 features, 7.3 MB instead of 29 MB as
        float32); False leaves it out.
    channel : name of a page-wide channel shared with other views (e.g. a dashboard's): the page publishes
        the shown sample (topic ``"sample"``) and the selection (``"selection"``, sample positions) on it and
        jumps to a sample another view publishes, in the browser. "" (default): no channel.
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
    channel = traitlets.Unicode("").tag(sync=True)
    _selection = traitlets.Bytes(b"").tag(sync=True, **bytes_serialization)
    _arrays = traitlets.Dict().tag(sync=True)
    _meta = traitlets.Dict().tag(sync=True)
    _plotly = traitlets.Instance(PlotlyLibrary).tag(sync=True, **widgets.widget_serialization)

    def __init__(self, flow_field: xr.Dataset, embedding: xr.DataArray | None = None, *, neighbors: Any = None,
                 k: int = DEFAULT_K, dims: int = 2, color_by: str | None = None, fps: float = 30.0,
                 sample: int | None = None, title: str = "Flow field", behaviour: str | None = None,
                 features: bool = True, channel: str = "") -> None:
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
                         sample=start, color_by=color_by, behaviour=behaviour or "", channel=channel)
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
                "fps": self.fps, "sync_ms": self.sync_ms, "channel": self.channel, "_meta": self._meta,
                "_arrays": packed,
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


