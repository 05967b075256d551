"""What the browser-drawn views share: their ES modules, buffers, and the self-contained HTML page.

Why: :class:`~marble_widgets.widgets.TrainingView`, :class:`~marble_widgets.widgets.AlignmentView`
and the dashboard all ship a no-build ES module plus typed-array buffers; their offline export is
one HTML file holding each view's module and state and plotly.js once (``static/dashboard_export.js``
runs the same modules against in-page models, so every interaction works from ``file://``).
"""
from __future__ import annotations

import base64
import html
import json
import zlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

import plotly
import traitlets
import ipywidgets as widgets

from marble_widgets.plotting.theme import FONT, HIGHLIGHT, INK, MUTED, PALETTE, SELECTION, SUBTLE

STATIC = Path(__file__).parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
#: dtypes a buffer may carry (JS typed-array constructors of the same names exist for each).
DTYPES = ("float32", "float64", "int32", "uint8", "uint16")
#: code widths :func:`pack_quantized` offers (bits -> wire dtype).
QUANT_DTYPES = {8: "uint8", 16: "uint16"}

# --- binary buffers ---------------------------------------------------------------------------
def pack(array: np.ndarray, dtype: str, *, compress: bool = False) -> dict[str, Any]:
    """One array as ``{"dtype", "shape", "buffer"}`` (C-order little-endian bytes; zlib if ``compress`` and
    that saves at least 10 %, then marked ``"compression": "deflate"``).

    Why: ipywidgets sends ``bytes`` inside a synced dict as a binary websocket buffer, and the page
    wraps it in the typed array named by ``dtype`` without parsing any JSON numbers.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}; got {dtype!r}.")
    data = np.ascontiguousarray(np.asarray(array), dtype=np.dtype(dtype).newbyteorder("<"))
    raw = data.tobytes()
    entry: dict[str, Any] = {"dtype": dtype, "shape": list(data.shape), "buffer": raw}
    packed = zlib.compress(raw, 6) if compress else raw
    if compress and len(packed) < 0.9 * len(raw):  # incompressible (e.g. noise): inflating costs, saves nothing
        entry.update(buffer=packed, compression="deflate")
    return entry


def pack_quantized(array: np.ndarray, bits: int = 8, *, compress: bool = False) -> dict[str, Any]:
    """A (rows, columns) float array as per-column affine codes: :func:`pack` of ``uint8``/``uint16`` codes
    plus ``"quantized": {"offset", "step", "missing"}`` (one offset and step per column, JSON floats).

    Why: MARBLE's derivative features are the largest buffer a view sends (the rat at order 2: 1110
    columns, 29 MB as float32); 8-bit codes are a quarter of that. Decoded value = ``offset + step * code``
    (float64, then float32), so every finite value is within ``step / 2 = (max - min) / (2 (2**bits - 2))`` of
    its column's original (plus float32 rounding); code ``missing = 2**bits - 1`` is NaN (non-finite input).
    """
    if bits not in QUANT_DTYPES:
        raise ValueError(f"bits must be one of {sorted(QUANT_DTYPES)}; got {bits!r}.")
    a = np.asarray(array, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"pack_quantized takes a (rows, columns) array; got shape {a.shape}.")
    missing = 2**bits - 1
    finite = np.isfinite(a)
    every = bool(finite.all())
    has = finite.any(axis=0)
    lo = a.min(axis=0) if every else np.where(has, np.min(np.where(finite, a, np.inf), axis=0, initial=np.inf), 0.0)
    hi = a.max(axis=0) if every else np.where(has, np.max(np.where(finite, a, -np.inf), axis=0, initial=-np.inf), 0.0)
    step = (hi - lo) / (missing - 1)
    step = np.where(step > 0, step, 1.0)  # a constant column: code 0 is exact
    codes = np.subtract(a if every else np.where(finite, a, lo), lo)  # in place from here: one temporary
    codes /= step
    np.rint(codes, out=codes)
    np.clip(codes, 0, missing - 1, out=codes)
    if not every:
        codes[~finite] = missing
    entry = pack(codes, QUANT_DTYPES[bits], compress=compress)
    entry["quantized"] = {"offset": lo.tolist(), "step": step.tolist(), "missing": missing}
    return entry


def quantization_error(entry: Mapping[str, Any]) -> np.ndarray:
    """Per-column bound on ``|decoded - original|`` of a :func:`pack_quantized` entry: ``step / 2``."""
    return np.asarray(entry["quantized"]["step"], dtype=np.float64) / 2


def unpack(entry: Mapping[str, Any]) -> np.ndarray:
    """Inverse of :func:`pack` (also reads a buffer given as base64 text, as in the HTML export); a
    :func:`pack_quantized` entry decodes to float32 ``offset + step * code`` (NaN for missing codes)."""
    raw = entry["buffer"]
    raw = base64.b64decode(raw) if isinstance(raw, str) else bytes(raw)
    if entry.get("compression") == "deflate":
        raw = zlib.decompress(raw)
    data = np.frombuffer(raw, dtype=np.dtype(entry["dtype"]).newbyteorder("<")).reshape(entry["shape"])
    quant = entry.get("quantized")
    if quant is None:
        return data
    out = (np.asarray(quant["offset"]) + np.asarray(quant["step"]) * data).astype(np.float32)
    out[data == quant["missing"]] = np.nan
    return out


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


#: Theme values every view's module reads from its ``_meta`` (one look with the static figures).
THEME = {"font": FONT, "ink": INK, "subtle": SUBTLE, "highlight": HIGHLIGHT, "selection": SELECTION,
         "muted": MUTED, "palette": list(PALETTE)}


@lru_cache(maxsize=None)
def esm_source(name: str) -> str:
    """The ES module of view ``static/<name>``: ``mw_common.js`` helpers followed by the view's code."""
    common = (STATIC / "mw_common.js").read_text(encoding="utf-8")
    return f"{common}\n// ---- {name} ----\n{(STATIC / name).read_text(encoding='utf-8')}"


def pack_all(arrays: Mapping[str, np.ndarray], dtypes: Mapping[str, str], *, compress: bool = False
             ) -> dict[str, dict[str, Any]]:
    """:func:`pack` each array with its wire dtype (default float32)."""
    return {name: pack(a, dtypes.get(name, "float32"), compress=compress) for name, a in arrays.items()}


def exported_buffers(arrays: Mapping[str, np.ndarray], dtypes: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Arrays as the HTML export holds them: zlib-compressed, base64 text."""
    packed = pack_all(arrays, dtypes, compress=True)
    for entry in packed.values():
        entry["buffer"] = base64.b64encode(entry["buffer"]).decode("ascii")
    return packed


def plotly_state() -> dict[str, str]:
    """plotly.js as the export carries it once per page: ``{"version", "source"}`` (zlib, base64)."""
    source, version = plotly_js()
    return {"version": version, "source": base64.b64encode(source).decode("ascii")}


@dataclass
class PageView:
    """One view of an exported page: its root's CSS class, module text, CSS and exported state."""

    key: str
    root_class: str
    esm: str
    css: str
    state: dict[str, Any]


def page_view(key: str, widget: Any) -> PageView:
    """A :class:`PageView` of any of our anywidgets (FlowView included): module, CSS and ``export_state()``."""
    def text(value: Any) -> str:
        return value.read_text(encoding="utf-8") if isinstance(value, Path) else str(value or "")

    classes = [c for c in getattr(widget, "_dom_classes", ()) if c.startswith("mw-")]
    state = dict(widget.export_state())
    state.pop("_plotly", None)  # the page carries plotly.js once, for every view
    return PageView(key, classes[0] if classes else f"mw-{key}", text(widget._esm), text(getattr(widget, "_css", "")),
                    state)


def _script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</`` that would close it)."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


PAGE_CSS = (f"body{{margin:0;background:#f5f6f8;font-family:{FONT};color:{INK}}}"
            ".mw-page{max-width:1600px;margin:0 auto;padding:18px 24px 32px}"
            ".mw-page-view{background:white;border:1px solid #e5e7eb;border-radius:10px;padding:10px 14px;"
            "margin-bottom:18px;min-width:0}"
            f".mw-page-footer{{color:{SUBTLE};font-size:12px;text-align:center}}")


def page_html(title: str, views: Sequence[PageView], header: str = "") -> str:
    """One self-contained page: ``header`` (HTML), then every view drawn by its own module; no network.

    ``window.mwModels[key]`` is each view's in-page model (``mwModel``: the first), so scripts and
    tests set traits as Python would.
    """
    keys = [v.key for v in views]
    if len(set(keys)) != len(keys):
        raise ValueError(f"view keys must be unique; got {keys}.")
    payload = {"plotly": plotly_state(),
               "views": [{"key": v.key, "esm": v.esm, "state": v.state} for v in views]}
    css = "\n".join(dict.fromkeys(v.css for v in views if v.css))
    roots = "".join(f"<section class='mw-page-view'><div id='mw-root-{html.escape(v.key)}' "
                    f"class='{html.escape(v.root_class)}'></div></section>\n" for v in views)
    boot = (STATIC / "dashboard_export.js").read_text(encoding="utf-8")
    return (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>\n"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>\n<style>{PAGE_CSS}\n{css}</style>"
            f"</head>\n<body><main class='mw-page'>\n{header}\n{roots}"
            "<div class='mw-page-footer'>interactive export of a marble_widgets dashboard: step, play, click and "
            "recolour work without a kernel</div></main>\n"
            f"<script type='application/json' id='mw-payload'>{_script_json(payload)}</script>\n"
            f"<script type='module'>\n{boot}\n</script>\n</body></html>\n")


def write_page(path: str | Path, title: str, views: Sequence[PageView], header: str = "") -> Path:
    """Write :func:`page_html` to ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page_html(title, views, header), encoding="utf-8")
    return path
