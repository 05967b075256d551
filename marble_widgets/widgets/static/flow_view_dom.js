// FlowView's DOM, plotly figures and SVG marks (part of the one ES module flow_view.py builds from
// ESM_PARTS): the controls and panels, the plotly layout/traces of each plot, the RGBA colours of a
// PointLayer, and the marks (point, neighbours, trail) moved over a 2-D plot without a plotly redraw.

// --- small array helpers (lookups only) -------------------------------------------------------------
// graph neighbours of i (no -1 padding, not i itself); `cols` receives their columns in `neighbors`
function neighboursOf(A, i, cols = null) {
  const k = A.neighbors.shape[1];
  const out = [];
  for (let j = 0; j < k; j++) {
    const s = A.neighbors.data[i * k + j];
    if (s >= 0 && s !== i) { out.push(s); if (cols) cols.push(j); }
  }
  return out;
}

// a selection as the model holds it (int32 bytes from Python, a list in the export) -> sorted Int32Array
function readSelection(value) {
  if (!value) return new Int32Array(0);
  let idx;
  if (Array.isArray(value)) idx = Int32Array.from(value);
  else { const b = ownBytes(value); idx = new Int32Array(b.buffer, 0, b.byteLength >> 2); }
  return Int32Array.from(new Set(idx)).sort();
}


// --- the view ---------------------------------------------------------------------------------------
async function decodeAll(model) {
  return mwDecodeAll(model.get("_arrays"));
}

function buildDom(el, meta, hasEmbedding) {
  const ctl = {
    prev: h("button", { class: "mw-fv-prev", title: "previous sample (←)", text: "◀" }),
    play: h("button", { class: "mw-fv-play", title: "play / pause (space)", text: "▶ Play" }),
    next: h("button", { class: "mw-fv-next", title: "next sample (→)", text: "▶" }),
    slider: h("input", { class: "mw-fv-slider", type: "range", min: "0", max: "0", step: "1", value: "0" }),
    trajectory: h("select", { class: "mw-fv-trajectory" }),
    color: h("select", { class: "mw-fv-color" }),
    status: h("span", { class: "mw-fv-status" }),
  };
  meta.trajectories.forEach(([c, t], k) => ctl.trajectory.appendChild(h("option", { value: String(k), text: `${c} · trial ${t}` })));
  if (meta.trajectories.length < 2) ctl.trajectory.style.display = "none";
  ctl.color.appendChild(h("option", { value: "", text: "(one colour)" }));
  for (const key of Object.keys(meta.colors)) ctl.color.appendChild(h("option", { value: key, text: key }));
  const panel = (name, title) => {
    const plot = h("div", { class: `mw-fv-plot mw-fv-${name}` });
    const wrap = h("div", { class: "mw-fv-wrap" }, [plot]);
    return [h("div", { class: `mw-fv-panel mw-fv-panel-${name}` }, [h("div", { class: "mw-fv-title", text: title }), wrap]), plot, wrap];
  };
  const [statePanel, state, stateWrap] = panel("state", `State space (${meta.dims.join(", ")})${meta.n_dims === 3 ? " · drag to rotate" : ""}`);
  const inFrame = meta.tangent_dims !== undefined;
  const [localPanel, local] = panel("local", inFrame ? "Neighbourhood in the sample's frame (raw and transported vectors)"
                                                      : "Neighbourhood and local flow (offsets from the point)");
  const plots = { state, local };
  const wraps = { state: stateWrap };
  const panels = [statePanel];
  if (hasEmbedding) {
    const [embPanel, emb, embWrap] = panel("embedding", "Embedding (click to jump, drag to select)");
    plots.embedding = emb;
    wraps.embedding = embWrap;
    panels.push(embPanel);
  }
  panels.push(localPanel);
  if (inFrame) {
    ctl.transported = h("input", { type: "checkbox", class: "mw-fv-transported-toggle" });
    localPanel.firstChild.appendChild(h("label", { class: "mw-fv-toggle", text: " transported" }, []));
    localPanel.firstChild.lastChild.prepend(ctl.transported);
  }
  if (meta.features) {
    const [featPanel, feats] = panel("features", "Derivative features of the sample (the MLP's input)");
    plots.features = feats;
    panels.push(featPanel);
  }
  ctl.behaviour = h("select", { class: "mw-fv-behaviour-key" });
  ctl.behaviour.appendChild(h("option", { value: "", text: "(colour variable)" }));
  for (const key of meta.behaviour_keys || []) ctl.behaviour.appendChild(h("option", { value: key, text: key }));
  const [behavPanel, behav] = panel("behaviour", "Behaviour over the trajectory");
  behavPanel.firstChild.append(" ", ctl.behaviour);
  behavPanel.classList.add("mw-fv-wide");
  plots.behaviour = behav;
  panels.push(behavPanel);
  const controls = h("div", { class: "mw-fv-controls" }, [
    ctl.prev, ctl.play, ctl.next, ctl.slider, ctl.trajectory, h("label", { text: "colour " }, [ctl.color]), ctl.status]);
  const root = h("div", { class: "mw-fv", tabindex: "0" }, [h("div", { class: "mw-fv-head", text: meta.title || "" }),
    controls, h("div", { class: "mw-fv-grid" }, panels)]);
  root.setAttribute("data-lm-suppress-shortcuts", "true"); // JupyterLab: our arrow keys are not cell moves
  el.appendChild(root);
  return { root, ctl, plots, wraps };
}

// plotly marker of colour key `key`; `barOnly`: the colour bar's trace of a 2-D view (no per-point colours)
function markerFor(meta, A, key, size, withBar, barOnly = false) {
  const theme = meta.theme;
  if (!key) return { size, color: theme.palette[0], showscale: false, opacity: 0.7 };
  const spec = meta.colors[key];
  const bar = { ...(spec.colorbar || {}), len: 0.8, thickness: 10 };
  return { size, color: barOnly ? [spec.cmin] : A[`color:${key}`].data, colorscale: spec.colorscale,
           cmin: spec.cmin, cmax: spec.cmax, showscale: withBar, colorbar: bar, opacity: 0.7 };
}

function layoutFor(meta, kind, bounds = null) {
  const base = { margin: { l: 40, r: 10, t: 10, b: 36 }, showlegend: false, hovermode: false,
                 font: { family: meta.theme.font, size: 11, color: meta.theme.ink }, paper_bgcolor: "white",
                 plot_bgcolor: "white", uirevision: "keep", autosize: true, height: 420 };
  // the points are drawn by a PointLayer: plotly holds no data, so the axes get the data's ranges
  const titles = kind === "embedding" ? ["latent 0", "latent 1"] : meta.dims;
  return { ...base, dragmode: kind === "embedding" ? "select" : "zoom",
           xaxis: { title: { text: titles[0] }, range: bounds.x, autorange: false, zeroline: false },
           yaxis: { title: { text: titles[1] }, range: bounds.y, autorange: false, zeroline: false } };
}

// 2-D: one empty trace carrying the colour bar (the PointLayer draws the points; a 3-D state is a Scene3D,
// flow_view_scene.js). One off-axis point: plotly draws no colour bar for a trace without points.
function cloudTraces(meta, A, key, withBar) {
  return [{ type: "scatter", mode: "markers", x: [null], y: [null], name: "colour", hoverinfo: "none",
            marker: markerFor(meta, A, key, 4, withBar, true) }];
}

// RGBA bytes of colour key `key` for a PointLayer (cached: a recolour back is one buffer upload)
function colourOf(meta, A, cache, key) {
  if (!cache.has(key)) {
    const spec = meta.colors[key];
    cache.set(key, key ? colourBytes(A[`color:${key}`].data, spec.colorscale, spec.cmin, spec.cmax, 0.7)
                       : flatBytes(meta.n, meta.theme.palette[0], 0.7));
  }
  return cache.get(key);
}

// --- marks over a 2-D plot: moved without redrawing plotly ---------------------------------------------
// Why: every plotly restyle recomputes and repaints the whole WebGL cloud (tens to hundreds of ms);
// the point, its neighbours and the trail are a few SVG elements placed in data coordinates with the
// axis ranges plotly reports in gd.layout and the plot area's box (its drag rectangle) in the DOM.
const SVG = "http://www.w3.org/2000/svg";
function sv(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// the point (a diamond), its neighbours (circles) and the trail as SVG elements in `svg`; `draw(at, ...)` places
// them with `at(j) -> [x, y]` (CSS px in the svg), so the 2-D plots and the 3-D scene share them
class MarksSvg {
  constructor(svgClass, theme, onPick, { radius = 5, trailOpacity = 0.75 } = {}) {
    this.svg = sv("svg", { class: svgClass });
    this.trail = sv("polyline", { class: "mw-fv-trail", fill: "none", stroke: theme.highlight, "stroke-width": "2.5",
                                  "stroke-opacity": String(trailOpacity), "stroke-linejoin": "round" });
    this.layer = sv("g", { class: "mw-fv-neighbours" });
    this.current = sv("path", { class: "mw-fv-current", d: "M0,-9L9,0L0,9L-9,0Z", fill: theme.highlight,
                                stroke: "white", "stroke-width": "1.5" });
    this.theme = theme;
    this.radius = String(radius);
    this.circles = [];
    this.svg.append(this.trail, this.layer, this.current);
    this.svg.addEventListener("click", (ev) => {
      const s = ev.target.getAttribute && ev.target.getAttribute("data-sample");
      if (s !== null && s !== undefined) onPick(Number(s));
    });
  }

  draw(at, i, nbs, trail) {
    const [x, y] = at(i);
    this.current.setAttribute("transform", `translate(${x},${y})`);
    this.current.setAttribute("data-sample", String(i));
    this.trail.setAttribute("points", trail.map((j) => { const p = at(j); return `${p[0]},${p[1]}`; }).join(" "));
    while (this.circles.length < nbs.length) {
      const c = sv("circle", { r: this.radius, fill: "white", "fill-opacity": "0.9", stroke: this.theme.ink,
                               "stroke-width": "1.5" });
      this.circles.push(c);
      this.layer.appendChild(c);
    }
    this.circles.forEach((c, k) => {
      if (k >= nbs.length) { c.setAttribute("display", "none"); c.removeAttribute("data-sample"); return; }
      const [cx, cy] = at(nbs[k]);
      c.removeAttribute("display");
      c.setAttribute("cx", cx);
      c.setAttribute("cy", cy);
      c.setAttribute("data-sample", String(nbs[k]));
    });
    return [x, y];
  }
}

// the marks over a 2-D plot, in data coordinates (the axis ranges plotly reports and the plot area's box)
class Marks2D extends MarksSvg {
  constructor(gd, wrap, theme, onPick) {
    super("mw-fv-marks", theme, onPick);
    this.gd = gd;
    wrap.appendChild(this.svg);
    const refresh = () => this.refresh();
    gd.on("plotly_relayout", refresh);
    gd.on("plotly_relayouting", refresh);
    gd.on("plotly_afterplot", refresh);
    this.refresh();
  }

  refresh() {
    const fl = this.gd._fullLayout;
    if (!fl || !fl._size || !fl.xaxis || !fl.yaxis) return;
    const a = fl._size, xr = fl.xaxis.range, yr = fl.yaxis.range;
    Object.assign(this.svg.style, { left: `${this.gd.offsetLeft + a.l}px`, top: `${this.gd.offsetTop + a.t}px`,
                                    width: `${a.w}px`, height: `${a.h}px` });
    this.f = { x0: xr[0], sx: a.w / (xr[1] - xr[0]), y1: yr[1], sy: a.h / (yr[1] - yr[0]) };
    if (this.shown) this.place(...this.shown);
  }

  place(flat, width, i, nbs, trail) {
    this.shown = [flat, width, i, nbs, trail];
    const f = this.f;
    if (!f) return;
    this.draw((j) => [(flat[j * width] - f.x0) * f.sx, (f.y1 - flat[j * width + 1]) * f.sy], i, nbs, trail);
  }
}

