// FlowView front end (marble_widgets/widgets/flow_view.py): draws with plotly.js and answers every
// interaction in the page from typed arrays it received once. No build step: a plain ES module,
// used by anywidget in notebooks and by the standalone HTML export (page.py, dashboard_export.js).
//
// model traits: sample, playing, color_by, behaviour, show_transported, _selection (int32 bytes, or a
// list in the HTML export; two-way), fps, sync_ms, _meta (JSON), _arrays ({name: {dtype, shape,
// buffer[, compression]}}), _plotly (library widget or {version, source}). The 2-D clouds are drawn by
// PointLayer (flow_view_gl.js), the local flow, features and behaviour panels by flow_view_panels.js.

const TRAIL = 40; // samples of the current trajectory drawn behind the point

// bytes and plotly.js: the shared helpers of mw_common.js (prepended to this module, see ESM_PARTS)
const ownBytes = mwBytes;
const h = mwEl;

export async function decodeArray(entry) {
  return mwDecode(entry);
}

// plotly.js is evaluated at most once per page and version, shared with the other views
export async function loadPlotly(model) {
  return mwLoadPlotly(model);
}

// --- small array helpers (lookups only) -------------------------------------------------------------
function column(flat, width, j) {
  const n = flat.length / width;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = flat[i * width + j];
  return out;
}

function pick(flat, width, idx, j) {
  return idx.map((i) => flat[i * width + j]);
}

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
  const [statePanel, state, stateWrap] = panel("state", `State space (${meta.dims.join(", ")})`);
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
  if (kind === "scene") {
    const ax = (t) => ({ title: { text: t }, showspikes: false });
    return { ...base, hovermode: "closest", margin: { l: 0, r: 0, t: 0, b: 0 },
             scene: { xaxis: ax(meta.dims[0]), yaxis: ax(meta.dims[1]), zaxis: ax(meta.dims[2]) } };
  }
  // the points are drawn by a PointLayer: plotly holds no data, so the axes get the data's ranges
  const titles = kind === "embedding" ? ["latent 0", "latent 1"] : meta.dims;
  return { ...base, dragmode: kind === "embedding" ? "select" : "zoom",
           xaxis: { title: { text: titles[0] }, range: bounds.x, autorange: false, zeroline: false },
           yaxis: { title: { text: titles[1] }, range: bounds.y, autorange: false, zeroline: false } };
}

function overlay(type, name, marker) {
  const t = { type, name, mode: "markers", x: [], y: [], z: [], marker, hoverinfo: "none" };
  return t;
}

// 2-D: one empty trace carrying the colour bar (the PointLayer draws the points).
// 3-D plotly traces: 0 cloud, 1 selection, 2 trail, 3 neighbours, 4 current.
function cloudTraces(meta, A, flat, dims, key, withBar) {
  // (one off-axis point: plotly draws no colour bar for a trace without points)
  if (dims === 2) return [{ type: "scatter", mode: "markers", x: [null], y: [null], name: "colour", hoverinfo: "none",
                            marker: markerFor(meta, A, key, 4, withBar, true) }];
  const type = "scatter3d";
  const cloud = { type, mode: "markers", x: column(flat, dims, 0), y: column(flat, dims, 1), z: column(flat, dims, 2),
                  marker: markerFor(meta, A, key, 2, withBar), hoverinfo: "none", name: "samples" };
  const th = meta.theme;
  return [cloud, overlay(type, "selection", { color: th.selection, size: 3 }),
    { type, mode: "lines", x: [], y: [], z: [], line: { color: th.highlight, width: 3 }, hoverinfo: "none", name: "trail" },
    overlay(type, "neighbours", { color: "white", size: 5, line: { color: th.ink, width: 1.5 } }),
    overlay(type, "current", { color: th.highlight, size: 7, symbol: "diamond", line: { color: "white", width: 1.5 } })];
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

class Marks2D {
  constructor(gd, wrap, theme, onPick) {
    this.gd = gd;
    this.svg = sv("svg", { class: "mw-fv-marks" });
    this.trail = sv("polyline", { class: "mw-fv-trail", fill: "none", stroke: theme.highlight, "stroke-width": "2.5",
                                  "stroke-opacity": "0.75", "stroke-linejoin": "round" });
    this.layer = sv("g", { class: "mw-fv-neighbours" });
    this.current = sv("path", { class: "mw-fv-current", d: "M0,-9L9,0L0,9L-9,0Z", fill: theme.highlight,
                                stroke: "white", "stroke-width": "1.5" });
    this.theme = theme;
    this.circles = [];
    this.svg.append(this.trail, this.layer, this.current);
    wrap.appendChild(this.svg);
    this.svg.addEventListener("click", (ev) => {
      const s = ev.target.getAttribute && ev.target.getAttribute("data-sample");
      if (s !== null && s !== undefined) onPick(Number(s));
    });
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
    const px = (j) => (flat[j * width] - f.x0) * f.sx;
    const py = (j) => (f.y1 - flat[j * width + 1]) * f.sy;
    this.current.setAttribute("transform", `translate(${px(i)},${py(i)})`);
    this.current.setAttribute("data-sample", String(i));
    this.trail.setAttribute("points", trail.map((j) => `${px(j)},${py(j)}`).join(" "));
    while (this.circles.length < nbs.length) {
      const c = sv("circle", { r: "5", fill: "white", "fill-opacity": "0.9", stroke: this.theme.ink, "stroke-width": "1.5" });
      this.circles.push(c);
      this.layer.appendChild(c);
    }
    this.circles.forEach((c, k) => {
      if (k >= nbs.length) { c.setAttribute("display", "none"); c.removeAttribute("data-sample"); return; }
      c.removeAttribute("display");
      c.setAttribute("cx", px(nbs[k]));
      c.setAttribute("cy", py(nbs[k]));
      c.setAttribute("data-sample", String(nbs[k]));
    });
  }
}

// A 3-D scene redraws its whole cloud (hundreds of ms with software GL) and blocks the page meanwhile:
// while playing it is redrawn at most this often, so the 2-D views keep the frame rate; it catches up on pause.
const SCENE_PLAY_MS = 1000;
const FEATURES_PLAY_MS = 200;

// while the page sends a selection to Python it goes as int32 bytes (no JSON list of 10^5 numbers)
const selectionBytes = (idx) => new DataView(Int32Array.from(idx).buffer);

export default {
  async render({ model, el }) {
    const times = { start: performance.now() }; // milestones of the first draw (ms since navigation)
    const [Plotly, A] = await Promise.all([loadPlotly(model), decodeAll(model)]);
    times.decoded = performance.now();
    const meta = model.get("_meta");
    const n = meta.n;
    const nd = meta.n_dims;
    const hasEmb = "embedding" in A;
    const inFrame = "transported" in A;
    const { root, ctl, plots, wraps } = buildDom(el, meta, hasEmb);
    const order = A.order.data;
    const offsets = A.offsets.data;
    const posOf = new Int32Array(n);
    const trajOf = new Int32Array(n);
    order.forEach((s, p) => { posOf[s] = p; });
    for (let t = 0; t + 1 < offsets.length; t++) for (let p = offsets[t]; p < offsets[t + 1]; p++) trajOf[order[p]] = t;

    // --- state ---
    let cur = -1;
    let nbs = [];
    let cols = [];
    let selection = new Int32Array(0);
    let playing = false;
    let raf = 0;
    let lastStep = 0;
    let frameQueued = false;
    const stats = { frames: 0, sceneFrames: 0, times };
    const layers = {};
    const colourCache = new Map();
    el.__mwFlowView = { stats, get sample() { return cur; }, get selection() { return selection; }, plots, layers, Plotly,
                        colours: (key) => colourOf(meta, A, colourCache, key) };
    let goTo = () => {};

    // --- views ---
    const config = { displaylogo: false, responsive: true, scrollZoom: false };
    const key0 = model.get("color_by");
    const marks = {};
    const cloud = async (name, flat, width, withBar) => {
      const gd = plots[name];
      const bounds = dataBounds(flat, width, n);
      await Plotly.newPlot(gd, cloudTraces(meta, A, flat, 2, key0, withBar), layoutFor(meta, name, bounds), config);
      layers[name] = pointLayer(gd, wraps[name], flat, width, n, meta.theme);
      layers[name].setColours(colourOf(meta, A, colourCache, key0));
      marks[name] = new Marks2D(gd, wraps[name], meta.theme, (s) => goTo(s));
      const follow = () => layers[name].refresh();
      gd.on("plotly_relayouting", follow);
      gd.on("plotly_relayout", follow);
      gd.on("plotly_afterplot", follow);
      follow();
    };
    if (nd === 3) {
      await Plotly.newPlot(plots.state, cloudTraces(meta, A, A.x.data, 3, key0, !hasEmb), layoutFor(meta, "scene"), config);
    } else {
      await cloud("state", A.x.data, nd, !hasEmb);
    }
    if (hasEmb) await cloud("embedding", A.embedding.data, 2, true);
    times.plotted = performance.now();
    const local = new LocalFlow(plots.local, meta);
    const features = meta.features ? new FeaturesPanel(plots.features, meta.features, meta.theme, A.features.data) : null;
    const behaviour = new BehaviourPanel(plots.behaviour, A, order, offsets, meta.theme);

    // browser -> Python, at most every sync_ms (trailing): code can read where the user is.
    // Local values go into the model only when sent, so ipywidgets' echo of a sent value finds the
    // model unchanged (no event) and echoes of older values are dropped by ipywidgets itself; a value
    // that does arrive was set by Python and is applied (it replaces an unsent local one).
    const { push, fromKernel } = mwSync(model);

    const pts = (flat, width, idx) => ({ x: pick(flat, width, idx, 0), y: pick(flat, width, idx, 1), z: pick(flat, width, idx, 2) });
    const restyleGroups = (gd, flat, traces, groups) => {
      const update = { x: [], y: [], z: [] };
      for (const idx of groups) {
        const p = pts(flat, 3, idx);
        for (const k of Object.keys(update)) update[k].push(p[k]);
      }
      return Plotly.restyle(gd, update, traces);
    };

    // 3-D scene: a full plotly redraw, coalesced (and spaced out while playing)
    let sceneBusy = false;
    let sceneWanted = -1;
    let sceneNext = 0; // earliest start of the next scene redraw (performance.now())
    let sceneTimer = null;
    const drawScene = () => {
      if (sceneBusy || sceneWanted < 0 || sceneTimer) return;
      const wait = sceneNext - performance.now();
      if (wait > 0) { sceneTimer = setTimeout(() => { sceneTimer = null; drawScene(); }, wait); return; }
      const i = sceneWanted;
      sceneWanted = -1;
      sceneBusy = true;
      const t = trajOf[i];
      const trail = Array.from(order.subarray(Math.max(offsets[t], posOf[i] - TRAIL), posOf[i] + 1));
      restyleGroups(plots.state, A.x.data, [2, 3, 4], [trail, neighboursOf(A, i), [i]])
        .then(() => new Promise((r) => requestAnimationFrame(r)))
        .then(() => {
          stats.sceneFrames += 1;
          root.dataset.sceneDrawn = String(i);
          el.dispatchEvent(new CustomEvent("mw-scene-drawn", { detail: { sample: i, t: performance.now() } }));
        })
        .catch((err) => console.error("[marble_widgets] FlowView 3-D redraw failed", err))
        .finally(() => {
          sceneBusy = false;
          sceneNext = playing ? performance.now() + SCENE_PLAY_MS : 0;
          drawScene();
        });
    };

    const frameDone = () => {
      frameQueued = false;
      stats.frames += 1;
      root.dataset.drawn = String(cur);
      el.dispatchEvent(new CustomEvent("mw-drawn", { detail: { sample: cur, t: performance.now() } }));
    };

    // the local view: ambient dims 0, 1, or (results) the sample's frame with transported vectors
    const frameCoords = (i, vec) => {
      const D = A.xf.shape[1], F = A.frame.data;
      const out = [0, 0];
      for (let d = 0; d < D; d++) { out[0] += F[(i * D + d) * 2] * vec[d]; out[1] += F[(i * D + d) * 2 + 1] * vec[d]; }
      return out;
    };
    const drawLocal = (i) => {
      const s = meta.arrow_scale;
      if (!inFrame) {
        const x = A.x.data, v = A.v.data;
        const offs = nbs.map((j) => [x[j * nd] - x[i * nd], x[j * nd + 1] - x[i * nd + 1]]);
        local.draw(offs, offs.map((o, k) => [o[0] + s * v[nbs[k] * nd], o[1] + s * v[nbs[k] * nd + 1]]),
                   [s * v[i * nd], s * v[i * nd + 1]], nbs);
        return;
      }
      const D = A.xf.shape[1], xf = A.xf.data, vf = A.vf.data, T = A.transported.data, K = A.neighbors.shape[1];
      const row = (flat, j) => flat.subarray(j * D, (j + 1) * D);
      const offs = nbs.map((j) => frameCoords(i, Array.from(row(xf, j), (val, d) => val - xf[i * D + d]))); // float64
      const raw = nbs.map((j) => frameCoords(i, row(vf, j)));
      const tvec = cols.map((c) => [T[(i * K + c) * 2], T[(i * K + c) * 2 + 1]]);
      const moved = tvec.map((t, k) => (Number.isFinite(t[0]) ? [offs[k][0] + s * t[0], offs[k][1] + s * t[1]] : null));
      const vi = frameCoords(i, row(vf, i));
      local.draw(offs, offs.map((o, k) => [o[0] + s * raw[k][0], o[1] + s * raw[k][1]]), [s * vi[0], s * vi[1]], nbs, moved, tvec);
    };

    let chosenBehaviour = model.get("behaviour") || "";
    const behaviourKey = () => {
      if (chosenBehaviour) return chosenBehaviour;
      const key = root.dataset.colorBy;
      return (meta.behaviour_keys || []).includes(key) ? key : (meta.behaviour_keys || [""])[0] || "";
    };

    let featuresShown = -Infinity;
    const drawSample = (i) => {
      const t = trajOf[i];
      const trail = Array.from(order.subarray(Math.max(offsets[t], posOf[i] - TRAIL), posOf[i] + 1));
      if (marks.state) marks.state.place(A.x.data, nd, i, nbs, trail);
      if (marks.embedding) marks.embedding.place(A.embedding.data, 2, i, nbs, []);
      drawLocal(i);
      // while playing, the features panel (one bar per feature: ~1000 for the rat) follows at ~5 Hz
      const now = performance.now();
      if (features && (!playing || now - featuresShown >= FEATURES_PLAY_MS)) { features.show(i); featuresShown = now; }
      behaviour.show(behaviourKey(), t, i);
      if (nd === 3) { sceneWanted = i; drawScene(); }
      if (!frameQueued) { frameQueued = true; requestAnimationFrame(frameDone); }
    };

    const showControls = (i) => {
      const t = trajOf[i];
      ctl.slider.max = String(offsets[t + 1] - offsets[t] - 1);
      ctl.slider.value = String(posOf[i] - offsets[t]);
      ctl.trajectory.value = String(t);
      const [cond, trial] = meta.trajectories[t];
      ctl.status.innerHTML = `sample <b>${i}</b> · ${cond} · trial ${trial} · t = ${A.time.data[i].toPrecision(4)} s · ${nbs.length} neighbours`;
      root.dataset.sample = String(i);
    };

    goTo = (i, fromModel = false) => {
      i = Math.max(0, Math.min(n - 1, i | 0));
      if (i === cur) return;
      cur = i;
      cols = [];
      nbs = neighboursOf(A, i, cols);
      showControls(i);
      drawSample(i);
      if (!fromModel) push("sample", i);
    };
    const stepBy = (d) => goTo(order[Math.max(0, Math.min(n - 1, posOf[cur] + d))]);

    // --- colour and selection: one buffer upload per 2-D cloud; the colour bar is an empty plotly trace ---
    const recolour = (key, fromModel = false) => {
      ctl.color.value = key;
      root.dataset.colorBy = key;
      const rgba = colourOf(meta, A, colourCache, key);
      const jobs = Object.values(layers).map((layer) => layer.setColours(rgba));
      // only the plot showing the colour bar needs plotly (the other's trace carries nothing visible)
      const bar = hasEmb ? "embedding" : "state";
      if (layers[bar]) jobs.push(Plotly.restyle(plots[bar], { marker: [markerFor(meta, A, key, 4, true, true)] }, [0]));
      if (nd === 3) jobs.push(Plotly.restyle(plots.state, { marker: [markerFor(meta, A, key, 2, !hasEmb)] }, [0]));
      if (cur >= 0) behaviour.show(behaviourKey(), trajOf[cur], cur);
      if (!fromModel) push("color_by", key);
      return Promise.all(jobs).then(() => el.dispatchEvent(new CustomEvent("mw-recoloured", { detail: { key, t: performance.now() } })));
    };
    const select = (idx, fromModel = false) => {
      selection = idx;
      const jobs = Object.values(layers).map((layer) => layer.setSelection(idx));
      if (nd === 3) jobs.push(restyleGroups(plots.state, A.x.data, [1], [Array.from(idx)]));
      if (!fromModel) push("_selection", selectionBytes(idx));
      root.dataset.selected = String(idx.length);
      return Promise.all(jobs).then(() => el.dispatchEvent(new CustomEvent("mw-selected", { detail: { n: idx.length, t: performance.now() } })));
    };

    // --- Play: at most one step per animation frame, `fps` samples per second ---
    const tick = (now) => {
      if (!playing) return;
      if (now - lastStep >= 1000 / (model.get("fps") || 30) - 1) {
        lastStep = now;
        const p = posOf[cur] + 1;
        goTo(order[p >= n ? 0 : p]);
      }
      raf = requestAnimationFrame(tick);
    };
    const setPlaying = (on, fromModel = false) => {
      if (on === playing) return;
      playing = on;
      ctl.play.textContent = on ? "❚❚ Pause" : "▶ Play";
      root.classList.toggle("mw-fv-playing", on);
      if (on) { lastStep = 0; raf = requestAnimationFrame(tick); } else cancelAnimationFrame(raf);
      if (!on && features && cur >= 0) features.show(cur); // paused: the features panel catches up
      if (!on && sceneTimer) { // paused: the 3-D scene catches up now
        clearTimeout(sceneTimer);
        sceneTimer = null;
        sceneNext = 0;
        drawScene();
      }
      if (!fromModel) push("playing", on);
    };
    const setTransported = (on, fromModel = false) => {
      if (!ctl.transported) return;
      ctl.transported.checked = on;
      local.showTransported(on);
      root.dataset.transported = String(on);
      if (!fromModel) push("show_transported", on);
    };

    // --- events ---
    ctl.prev.addEventListener("click", () => stepBy(-1));
    ctl.next.addEventListener("click", () => stepBy(1));
    ctl.play.addEventListener("click", () => setPlaying(!playing));
    ctl.slider.addEventListener("input", () => goTo(order[offsets[trajOf[cur]] + Number(ctl.slider.value)]));
    ctl.trajectory.addEventListener("change", () => goTo(order[offsets[Number(ctl.trajectory.value)]]));
    ctl.color.addEventListener("change", () => recolour(ctl.color.value));
    ctl.behaviour.addEventListener("change", () => {
      chosenBehaviour = ctl.behaviour.value;
      push("behaviour", chosenBehaviour);
      behaviour.show(behaviourKey(), trajOf[cur], cur);
    });
    if (ctl.transported) ctl.transported.addEventListener("change", () => setTransported(ctl.transported.checked));
    root.addEventListener("keydown", (ev) => {
      if (ev.target.tagName === "SELECT" || ev.target.tagName === "INPUT") return;
      const steps = { ArrowRight: 1, ArrowLeft: -1, ArrowUp: 10, ArrowDown: -10 };
      if (ev.key in steps) stepBy(steps[ev.key] * (ev.shiftKey ? 10 : 1));
      else if (ev.key === " ") setPlaying(!playing);
      else return;
      ev.preventDefault();
      ev.stopPropagation();
    });
    root.addEventListener("pointerdown", (ev) => {
      if (!["INPUT", "SELECT", "BUTTON"].includes(ev.target.tagName)) root.focus({ preventScroll: true });
    });
    // click (no drag) on a 2-D cloud -> the nearest sample within 8 px; marks handle their own clicks
    const unlisten = [];
    for (const name of Object.keys(layers)) {
      let down = null;
      wraps[name].addEventListener("pointerdown", (ev) => {
        const own = ev.target.closest && ev.target.closest(".mw-fv-marks circle, .mw-fv-marks .mw-fv-current, .modebar");
        down = own ? null : [ev.clientX, ev.clientY]; // marks and plotly's buttons handle their own clicks
      }, true);
      const up = (ev) => {
        if (!down) return;
        const moved = Math.hypot(ev.clientX - down[0], ev.clientY - down[1]);
        const start = down;
        down = null;
        if (moved > 3) { if (name === "embedding") boxNow(start, [ev.clientX, ev.clientY]); return; }
        const s = layers[name].pick(ev.clientX, ev.clientY);
        if (s >= 0) goTo(s);
      };
      globalThis.addEventListener("pointerup", up, true);
      unlisten.push(() => globalThis.removeEventListener("pointerup", up, true));
    }
    if (nd === 3) {
      plots.state.on("plotly_click", (ev) => {
        const point = ev && ev.points && ev.points[0];
        if (!point) return;
        const list = { 0: null, 1: selection, 3: nbs }[point.curveNumber];
        if (list !== undefined) goTo(list === null ? point.pointNumber : list[point.pointNumber]);
      });
    }
    // a box drag selects on pointer up, from the drag's corners: plotly reports its selection up to
    // 100 ms later (it throttles selection work); its own range then replaces ours if it differs
    const sameSelection = (idx) => idx.length === selection.length && idx.every((v, k) => v === selection[k]);
    function boxNow(a, b) {
      const gd = plots.embedding, layer = layers.embedding;
      if (gd._fullLayout.dragmode !== "select" || !layer.box) return;
      const rect = layer.canvas.getBoundingClientRect(), f = layer.transform();
      const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
      const xs = [a[0], b[0]].map((p) => f.x0 + clamp(p - rect.left, 0, rect.width) / f.sx).sort((p, q) => p - q);
      const ys = [a[1], b[1]].map((p) => f.y1 - clamp(p - rect.top, 0, rect.height) / f.sy).sort((p, q) => p - q);
      select(layer.inBox(xs[0], xs[1], ys[0], ys[1]));
    }
    if (hasEmb) {
      plots.embedding.on("plotly_selected", (ev) => {
        if (!ev) return;
        const layer = layers.embedding;
        let idx = null;
        if (ev.range && ev.range.x) idx = layer.inBox(...ev.range.x.map(Number).sort((p, q) => p - q), ...ev.range.y.map(Number).sort((p, q) => p - q));
        else if (ev.lassoPoints && ev.lassoPoints.x) idx = layer.inLasso(ev.lassoPoints.x.map(Number), ev.lassoPoints.y.map(Number));
        if (idx && !sameSelection(idx)) select(idx);
      });
      plots.embedding.on("plotly_deselect", () => select(new Int32Array(0)));
    }
    const onSample = fromKernel("sample", () => goTo(model.get("sample"), true));
    const onPlaying = fromKernel("playing", () => setPlaying(!!model.get("playing"), true));
    const onColor = fromKernel("color_by", () => {
      if (model.get("color_by") !== root.dataset.colorBy) recolour(model.get("color_by"), true);
    });
    const onSelection = fromKernel("_selection", () => select(readSelection(model.get("_selection")), true));
    const onBehaviour = fromKernel("behaviour", () => {
      chosenBehaviour = model.get("behaviour") || "";
      ctl.behaviour.value = chosenBehaviour;
      if (cur >= 0) behaviour.show(behaviourKey(), trajOf[cur], cur);
    });
    const onTransported = fromKernel("show_transported", () => setTransported(!!model.get("show_transported"), true));
    const handlers = { sample: onSample, playing: onPlaying, color_by: onColor, _selection: onSelection,
                       behaviour: onBehaviour, show_transported: onTransported };
    for (const [name, fn] of Object.entries(handlers)) model.on(`change:${name}`, fn);

    // plots follow their container's width (e.g. a view first drawn in a hidden tab)
    const resizer = new ResizeObserver((entries) => {
      for (const e of entries) {
        if (e.target.clientWidth > 0 && e.target._fullLayout) Plotly.Plots.resize(e.target);
      }
      Object.values(marks).forEach((m) => m.refresh());
      Object.values(layers).forEach((m) => m.refresh());
    });
    [plots.state, plots.embedding].filter(Boolean).forEach((gd) => resizer.observe(gd));

    root.dataset.colorBy = key0;
    ctl.color.value = key0;
    ctl.behaviour.value = model.get("behaviour") || "";
    setTransported(model.get("show_transported") !== false, true);
    goTo(model.get("sample"), true);
    await select(readSelection(model.get("_selection")), true);
    setPlaying(!!model.get("playing"), true);
    root.dataset.ready = "true";
    times.ready = performance.now();
    return () => {
      setPlaying(false, true);
      resizer.disconnect();
      for (const [name, fn] of Object.entries(handlers)) model.off(`change:${name}`, fn);
      unlisten.forEach((off) => off());
      Object.values(layers).forEach((layer) => layer.dispose());
      [plots.state, plots.embedding].filter(Boolean).forEach((gd) => Plotly.purge(gd));
    };
  },
};
