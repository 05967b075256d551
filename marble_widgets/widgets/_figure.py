"""A ``go.FigureWidget`` that renders reliably in JupyterLab: plotly loaded once per page.

Why (plotly 7.1 + anywidget 0.11):

* ``go.FigureWidget`` ships plotly's whole 5 MB ``widgetbundle.js`` as *its own* ``_esm``, so
  every figure makes the page import a fresh module and evaluate plotly.js again (~1.6-2 s each
  in headless chromium).
* anywidget rejects a model whose ESM has not loaded within a hard-coded 2 s
  ("[anywidget] Failed to initialize model.") and then drops every later kernel message to it.
* The comm opens before plotly assigns the traces and layout, so they arrive in the first update
  message - the one that is dropped: the view stays empty and never changes again.
* Views drawn while hidden (a closed ``Tab``) are laid out 700 px wide and plotly's widget never
  resizes them under anywidget (its resize hooks are Lumino messages anywidget does not send).

:class:`FigureWidget` keeps plotly's Python side untouched but replaces ``_esm`` by
:data:`LOADER_ESM`, a small loader. The bundle text travels once per kernel in the shared,
view-less :class:`PlotlyBundle` widget; the loader imports it once per page (cached on
``globalThis``), resolves ``initialize`` at once (anywidget's 2 s timer never fires), queues the
``_py2js_*`` edits that arrive meanwhile, replays them into the model with plotly's own
``FigureModel`` and hands over to plotly's ``initialize``/``render``. Each view then follows its
container's width (a ``ResizeObserver`` calling plotly's responsive resize). Clicks and box/lasso
selections travel through their own synced traits (``_js2py_pointsClick``,
``_js2py_pointsSelection``): on plotly's shared ``_js2py_pointsCallback`` the hover events that
follow them within milliseconds overwrote them before ipywidgets sent them (box selections lost).
Plotly's bookkeeping replies are kept off the redraw path: layout deltas (sent by plotly 7.1 under
a name its Python side ignores) are not computed, trace deltas go at most every 150 ms.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets
import plotly
import plotly.graph_objects as go
import traitlets
from plotly.serializers import custom_serializers

BUNDLE_PATH = Path(plotly.__file__).parent / "package_data" / "widgetbundle.js"

#: ESM of every :class:`FigureWidget`: loads plotly's bundle once per page, queues model edits
#: until then, and resizes the view with its container.
LOADER_ESM = r"""
const CACHE = (globalThis.__marbleWidgetsPlotly = globalThis.__marbleWidgetsPlotly || {});
const OPS = ["addTraces", "deleteTraces", "moveTraces", "restyle", "relayout", "update", "animate",
             "removeLayoutProps", "removeTraceProps"];

// Keep plotly's bookkeeping messages off the redraw path (patched once per page, per bundle):
// * plotly 7.1 sends layout deltas under "_js2py_widget_layoutDelta", a name its Python side does
//   not know, so computing them (deep merge + diff of the full layout after every edit) is dead
//   work - skipped while the bundle carries that name;
// * trace deltas (Python keeps only those of its latest edit) are sent once per 150 ms with the
//   latest edit id, after the redraw instead of inside it.
function tune(mod) {
  const proto = mod.FigureView && mod.FigureView.prototype;
  if (!proto || proto.__marbleTuned) return mod;
  proto.__marbleTuned = true;
  if (String(proto._sendLayoutDelta).includes("_js2py_widget_layoutDelta")) {
    proto._sendLayoutDelta = function () {};
  }
  const sendTraceDeltas = proto._sendTraceDeltas;
  proto._sendTraceDeltas = function (editId) {
    this.__marbleDeltaId = editId;
    if (this.__marbleDeltaTimer) return;
    this.__marbleDeltaTimer = setTimeout(() => {
      this.__marbleDeltaTimer = null;
      if (this.el && this.el._fullData) sendTraceDeltas.call(this, this.__marbleDeltaId);
    }, 150);
  };
  return mod;
}

async function loadBundle(model) {
  const id = String(model.get("_plotly_bundle")).replace(/^IPY_MODEL_/, "");
  const holder = await model.widget_manager.get_model(id);
  const key = holder.get("version");
  if (!CACHE[key]) {
    const url = URL.createObjectURL(new Blob([holder.get("source")], { type: "text/javascript" }));
    CACHE[key] = import(/* webpackIgnore: true */ url).then(tune).finally(() => URL.revokeObjectURL(url));
  }
  return CACHE[key];
}

// Follow the container's width: plotly lays out a view drawn inside a hidden tab 700 px wide
// and, under anywidget, never hears of the tab being shown. `_responsiveChartHandler` is
// plotly's own per-plot resize (config.responsive), a no-op while the plot is hidden.
function followWidth(el) {
  let last = -1;
  let timer = null;
  const observer = new ResizeObserver(() => {
    const width = el.clientWidth;
    if (width === 0 || width === last) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (el._responsiveChartHandler && el._fullLayout && Math.abs(el._fullLayout.width - width) > 1) {
        el._responsiveChartHandler();
      }
      last = width;
    }, 30);
  });
  observer.observe(el);
  return () => { clearTimeout(timer); observer.disconnect(); };
}

// plotly's view reports clicks, selections and hovers through one synced trait
// (_js2py_pointsCallback). ipywidgets keeps one message per model in flight and merges what is
// set meanwhile, so the unhover that follows a box selection within milliseconds replaced the
// selection before it was sent. Clicks and selections get their own traits here.
const ROUTES = { plotly_click: "_js2py_pointsClick", plotly_selected: "_js2py_pointsSelection",
                 plotly_deselect: "_js2py_pointsSelection" };

function routed(model) {
  return {
    get: (name) => model.get(name),
    set: (name, value) => model.set(
      name === "_js2py_pointsCallback" && value && ROUTES[value.event_type] || name, value),
    on: (...args) => model.on(...args),
    off: (...args) => model.off(...args),
    save_changes: () => model.save_changes(),
  };
}

export default () => {
  let inner = null;
  let loaded = null;
  return {
    initialize({ model }) {
      const queue = [];
      const handlers = [];
      const listen = (name, fn) => { model.on(name, fn); handlers.push([name, fn]); };
      for (const op of OPS) {
        listen(`change:_py2js_${op}`, () => {
          const value = model.get(`_py2js_${op}`);
          if (value !== null && value !== undefined) queue.push([op, value]);
        });
      }
      // a full state snapshot already contains every earlier edit
      listen("change:_widget_data", () => { queue.length = 0; });
      listen("change:_widget_layout", () => { queue.length = 0; });
      loaded = loadBundle(model).then((mod) => {
        for (const [name, fn] of handlers) model.off(name, fn);
        for (const [op, value] of queue) {
          const proxy = { get: (name) => (name === `_py2js_${op}` ? value : model.get(name)) };
          new mod.FigureModel(proxy, {})[`do_${op}`]();
        }
        inner = mod.default();
        return inner.initialize({ model: routed(model) });
      });
      loaded.catch((err) => console.error("[marble_widgets] plotly widget bundle failed to load", err));
      // returning now lets anywidget resolve the model's `ready` well within its 2 s limit
    },
    async render(ctx) {
      await loaded;
      const cleanup = inner.render(ctx);
      const unfollow = followWidth(ctx.el);
      return () => { unfollow(); if (typeof cleanup === "function") cleanup(); };
    },
  };
};
"""


class PlotlyBundle(widgets.Widget):
    """View-less widget carrying plotly's widget bundle text, sent once per kernel.

    Every :class:`FigureWidget` references the kernel's one instance (see :func:`plotly_bundle`),
    so the 5 MB of JavaScript crosses the comm once instead of once per figure.
    """

    source = traitlets.Unicode().tag(sync=True)
    version = traitlets.Unicode().tag(sync=True)


_BUNDLE: PlotlyBundle | None = None


def plotly_bundle() -> PlotlyBundle:
    """The kernel's shared :class:`PlotlyBundle`, created on first use (again if it was closed)."""
    global _BUNDLE
    if _BUNDLE is None or _BUNDLE.comm is None:
        _BUNDLE = PlotlyBundle(source=BUNDLE_PATH.read_text(encoding="utf-8"), version=plotly.__version__)
    return _BUNDLE


class FigureWidget(go.FigureWidget):
    """``go.FigureWidget`` whose front end loads plotly once per page and never misses its data.

    Same Python API as plotly's (``batch_update``, ``on_click``, ``on_selection`` ...); only the
    JavaScript differs (see the module docstring). Plots are responsive: they follow the width
    of their container, also when first drawn inside a hidden tab.
    """

    _esm = LOADER_ESM
    _plotly_bundle = traitlets.Instance(PlotlyBundle).tag(sync=True, **widgets.widget_serialization)
    _js2py_pointsClick = traitlets.Dict(allow_none=True).tag(sync=True, **custom_serializers)
    _js2py_pointsSelection = traitlets.Dict(allow_none=True).tag(sync=True, **custom_serializers)

    def __init__(self, data: Any = None, layout: Any = None, frames: Any = None, skip_invalid: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(data=data, layout=layout, frames=frames, skip_invalid=skip_invalid, **kwargs)
        self._config = {**(self._config or {}), "responsive": True}

    @traitlets.default("_plotly_bundle")
    def _default_bundle(self) -> PlotlyBundle:
        return plotly_bundle()

    def clear_selections(self) -> None:
        """Remove the box/lasso outlines drawn in the browser (and the points' selected styling).

        Why: plotly keeps a drawn selection in the browser's ``layout.selections``, which the
        Python layout never holds, so assigning it there would change nothing.
        """
        self._send_update_msg({"selectedpoints": [None]}, {"selections": []})

    @traitlets.observe("_js2py_pointsClick", "_js2py_pointsSelection")
    def _handler_js2py_routed_points(self, change: dict) -> None:
        """Dispatch a click/selection message like plotly's ``_js2py_pointsCallback``, then reset it."""
        if change["new"]:
            self._handler_js2py_pointsCallback({"new": change["new"]})
            setattr(self, change["name"], None)  # the same event again must be a change again
