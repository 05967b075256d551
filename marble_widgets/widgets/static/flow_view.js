// FlowView front end (marble_widgets/widgets/flow_view.py): draws with plotly.js and answers every
// interaction in the page from typed arrays it received once. No build step: a plain ES module,
// used by anywidget in notebooks and by the standalone HTML export (flow_view_export.js).
//
// model traits: sample, playing, color_by, selection (two-way), fps, sync_ms, _meta (JSON),
// _arrays ({name: {dtype, shape, buffer[, compression]}}), _plotly (library widget or {version, source}).

const CACHE = (globalThis.__marbleWidgets = globalThis.__marbleWidgets || {});
const TYPED = { float32: Float32Array, float64: Float64Array, int32: Int32Array, uint8: Uint8Array };
const TRAIL = 40; // samples of the current trajectory drawn behind the point

// --- bytes --------------------------------------------------------------------------------------
async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// DataView / ArrayBuffer / typed array / base64 text -> a Uint8Array that owns an aligned buffer
function ownBytes(buf) {
  if (typeof buf === "string") {
    const bin = atob(buf);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf.slice(0));
  return new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

export async function decodeArray(entry) {
  let bytes = ownBytes(entry.buffer);
  if (entry.compression === "deflate") bytes = await inflate(bytes);
  const Typed = TYPED[entry.dtype];
  if (!Typed) throw new Error(`[marble_widgets] unknown dtype ${entry.dtype}`);
  return { data: new Typed(bytes.buffer, bytes.byteOffset, bytes.byteLength / Typed.BYTES_PER_ELEMENT),
           shape: entry.shape };
}

// --- plotly.js: evaluated at most once per page and version ---------------------------------------
async function plotlySource(model) {
  const ref = model.get("_plotly");
  if (typeof ref === "string") {
    const holder = await model.widget_manager.get_model(ref.replace(/^IPY_MODEL_/, ""));
    return { version: holder.get("version"), source: () => holder.get("source") };
  }
  return { version: ref.version, source: () => ref.source };
}

export async function loadPlotly(model) {
  const { version, source } = await plotlySource(model);
  if (globalThis.Plotly && globalThis.Plotly.version === version) return globalThis.Plotly;
  CACHE.plotly = CACHE.plotly || {};
  if (!CACHE.plotly[version]) {
    CACHE.plotly[version] = (async () => {
      const text = new TextDecoder().decode(await inflate(ownBytes(source())));
      const previous = globalThis.Plotly;
      const module = { exports: {} };
      new Function("module", "exports", "define", text)(module, module.exports, undefined);
      if (previous) globalThis.Plotly = previous; // another plotly on the page stays in place
      return module.exports;
    })();
  }
  return CACHE.plotly[version];
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

function neighboursOf(A, i) {
  const k = A.neighbors.shape[1];
  const out = [];
  for (let j = 0; j < k; j++) {
    const s = A.neighbors.data[i * k + j];
    if (s >= 0 && s !== i) out.push(s);
  }
  return out;
}

function h(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.appendChild(c);
  return node;
}

// --- the view ---------------------------------------------------------------------------------------
async function decodeAll(model) {
  const entries = model.get("_arrays");
  const names = Object.keys(entries);
  const decoded = await Promise.all(names.map((n) => decodeArray(entries[n])));
  const A = {};
  names.forEach((n, i) => { A[n] = decoded[i]; });
  return A;
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
  const [localPanel, local] = panel("local", "Neighbourhood and local flow (offsets from the point)");
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
  const controls = h("div", { class: "mw-fv-controls" }, [
    ctl.prev, ctl.play, ctl.next, ctl.slider, ctl.trajectory, h("label", { text: "colour " }, [ctl.color]), ctl.status]);
  const root = h("div", { class: "mw-fv", tabindex: "0" }, [h("div", { class: "mw-fv-head", text: meta.title || "" }),
    controls, h("div", { class: "mw-fv-grid" }, panels)]);
  root.setAttribute("data-lm-suppress-shortcuts", "true"); // JupyterLab: our arrow keys are not cell moves
  el.appendChild(root);
  return { root, ctl, plots, wraps };
}

function markerFor(meta, A, key, size, withBar) {
  const theme = meta.theme;
  if (!key) return { size, color: theme.palette[0], showscale: false, opacity: 0.7 };
  const spec = meta.colors[key];
  const bar = { ...(spec.colorbar || {}), len: 0.8, thickness: 10 };
  return { size, color: A[`color:${key}`].data, colorscale: spec.colorscale, cmin: spec.cmin, cmax: spec.cmax,
           showscale: withBar, colorbar: bar, opacity: 0.7 };
}

function layoutFor(meta, kind) {
  const base = { margin: { l: 40, r: 10, t: 10, b: 36 }, showlegend: false, hovermode: "closest",
                 font: { family: meta.theme.font, size: 11, color: meta.theme.ink }, paper_bgcolor: "white",
                 plot_bgcolor: "white", uirevision: "keep", autosize: true, height: 420 };
  if (kind === "scene") {
    const ax = (t) => ({ title: { text: t }, showspikes: false });
    return { ...base, margin: { l: 0, r: 0, t: 0, b: 0 },
             scene: { xaxis: ax(meta.dims[0]), yaxis: ax(meta.dims[1]), zaxis: ax(meta.dims[2]) } };
  }
  const titles = kind === "embedding" ? ["latent 0", "latent 1"] : meta.dims;
  return { ...base, dragmode: kind === "embedding" ? "select" : "zoom",
           xaxis: { title: { text: titles[0] } }, yaxis: { title: { text: titles[1] } } };
}

function overlay(type, name, marker) {
  // overlays keep their look while a box selection fades the cloud's unselected points
  const t = { type, name, mode: "markers", x: [], y: [], marker, hoverinfo: "none" };
  if (type === "scatter3d") t.z = []; else t.unselected = { marker: { opacity: 1 } };
  return t;
}

// plotly traces: 0 cloud, 1 selection; a 3-D scene adds 2 trail, 3 neighbours, 4 current
function cloudTraces(meta, A, flat, dims, key, withBar) {
  const type = dims === 3 ? "scatter3d" : "scattergl";
  const cloud = { type, mode: "markers", x: column(flat, dims, 0), y: column(flat, dims, 1),
                  marker: markerFor(meta, A, key, dims === 3 ? 2 : 4, withBar), hoverinfo: "none", name: "samples" };
  const th = meta.theme;
  const traces = [cloud, overlay(type, "selection", { color: th.selection, size: dims === 3 ? 3 : 6 })];
  if (dims === 3) {
    cloud.z = column(flat, dims, 2);
    traces.push({ type, mode: "lines", x: [], y: [], z: [], line: { color: th.highlight, width: 3 }, hoverinfo: "none", name: "trail" },
      overlay(type, "neighbours", { color: "white", size: 5, line: { color: th.ink, width: 1.5 } }),
      overlay(type, "current", { color: th.highlight, size: 7, symbol: "diamond", line: { color: "white", width: 1.5 } }));
  }
  return traces;
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
    gd.on("plotly_afterplot", refresh);
    this.refresh();
  }

  refresh() {
    const xr = this.gd.layout.xaxis && this.gd.layout.xaxis.range;
    const yr = this.gd.layout.yaxis && this.gd.layout.yaxis.range;
    const area = this.gd.querySelector(".draglayer .nsewdrag");
    if (!xr || !yr || !area) return;
    const a = area.getBoundingClientRect();
    const w = this.svg.parentElement.getBoundingClientRect();
    Object.assign(this.svg.style, { left: `${a.left - w.left}px`, top: `${a.top - w.top}px`,
                                    width: `${a.width}px`, height: `${a.height}px` });
    this.f = { x0: xr[0], sx: a.width / (xr[1] - xr[0]), y1: yr[1], sy: a.height / (yr[1] - yr[0]) };
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

// --- the local flow: neighbours' offsets from the point and their vectors, as plain SVG ---------------
class LocalFlow {
  constructor(box, meta) {
    const th = meta.theme;
    this.svg = sv("svg", { class: "mw-fv-localsvg", viewBox: "-1.2 -1.2 2.4 2.4", preserveAspectRatio: "xMidYMid meet" });
    const axis = { stroke: "#c8ccd2", "stroke-width": "1", "vector-effect": "non-scaling-stroke" };
    this.ring = sv("circle", { cx: "0", cy: "0", r: "1", fill: "none", stroke: "#e3e6ea", "stroke-width": "1", "vector-effect": "non-scaling-stroke" });
    const label = (x, y, text, anchor) => { const t = sv("text", { x, y, "font-size": "0.07", fill: th.subtle, "text-anchor": anchor }); t.textContent = text; return t; };
    this.radius = label("0.72", "-0.74", "", "start");
    this.vectors = sv("g", { stroke: th.muted, "stroke-width": "1.5" }); // vector-effect is not inherited
    this.points = sv("g", { fill: th.palette[0] });
    this.vector = sv("line", { x1: "0", y1: "0", stroke: th.highlight, "stroke-width": "3", "vector-effect": "non-scaling-stroke" });
    const point = sv("path", { d: "M0,-0.06L0.06,0L0,0.06L-0.06,0Z", fill: th.highlight });
    this.svg.append(sv("line", { x1: "-1.1", y1: "0", x2: "1.1", y2: "0", ...axis }), sv("line", { x1: "0", y1: "-1.1", x2: "0", y2: "1.1", ...axis }),
      this.ring, label("1.1", "0.1", `Δ ${meta.dims[0]}`, "end"), label("0.04", "-1.08", `Δ ${meta.dims[1]}`, "start"), this.radius,
      this.vectors, this.points, this.vector, point);
    box.appendChild(this.svg);
  }

  // offsets and vectors in data units (dims 0, 1); drawn scaled so the farthest end touches the ring
  draw(offsets, ends, vec, neighbours) {
    let r = Math.hypot(vec[0], vec[1]);
    for (let k = 0; k < offsets.length; k++) r = Math.max(r, Math.hypot(...offsets[k]), Math.hypot(...ends[k]));
    r = r > 0 ? r : 1;
    this.radius.textContent = `r = ${r.toPrecision(2)}`;
    const lines = offsets.map((o, k) => sv("line", { x1: o[0] / r, y1: -o[1] / r, x2: ends[k][0] / r, y2: -ends[k][1] / r,
                                                      "vector-effect": "non-scaling-stroke" }));
    const dots = offsets.map((o, k) => sv("circle", { cx: o[0] / r, cy: -o[1] / r, r: "0.035", "data-sample": String(neighbours[k]),
                                                      "data-x": String(o[0]), "data-y": String(o[1]) }));
    this.vectors.replaceChildren(...lines);
    this.points.replaceChildren(...dots);
    this.vector.setAttribute("x2", vec[0] / r);
    this.vector.setAttribute("y2", -vec[1] / r);
    this.vector.setAttribute("data-x", String(vec[0]));
    this.vector.setAttribute("data-y", String(vec[1]));
  }
}

// A 3-D scene redraws its whole cloud (hundreds of ms with software GL) and blocks the page meanwhile:
// while playing it is redrawn at most this often, so the 2-D views keep the frame rate; it catches up on pause.
const SCENE_PLAY_MS = 1000;

export default {
  async render({ model, el }) {
    const [Plotly, A] = await Promise.all([loadPlotly(model), decodeAll(model)]);
    const meta = model.get("_meta");
    const n = meta.n;
    const nd = meta.n_dims;
    const hasEmb = "embedding" in A;
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
    let selection = [];
    let playing = false;
    let raf = 0;
    let lastStep = 0;
    let frameQueued = false;
    const stats = { frames: 0, sceneFrames: 0 };
    el.__mwFlowView = { stats, get sample() { return cur; }, plots, Plotly };
    let goTo = () => {};

    // --- views ---
    const config = { displaylogo: false, responsive: true, scrollZoom: false };
    const key0 = model.get("color_by");
    await Plotly.newPlot(plots.state, cloudTraces(meta, A, A.x.data, nd, key0, !hasEmb),
                         layoutFor(meta, nd === 3 ? "scene" : "state"), config);
    const marks = {};
    if (nd === 2) marks.state = new Marks2D(plots.state, wraps.state, meta.theme, (s) => goTo(s));
    if (hasEmb) {
      await Plotly.newPlot(plots.embedding, cloudTraces(meta, A, A.embedding.data, 2, key0, true),
                           layoutFor(meta, "embedding"), config);
      marks.embedding = new Marks2D(plots.embedding, wraps.embedding, meta.theme, (s) => goTo(s));
    }
    const local = new LocalFlow(plots.local, meta);

    // browser -> Python, at most every sync_ms (trailing): code can read where the user is.
    // Local values go into the model only when sent, so ipywidgets' echo of a sent value finds the
    // model unchanged (no event) and echoes of older values are dropped by ipywidgets itself; a value
    // that does arrive was set by Python and is applied (it replaces an unsent local one).
    let syncTimer = null;
    let lastSync = -Infinity;
    let flushing = false;
    const unsent = new Map();
    const flush = () => {
      syncTimer = null;
      lastSync = performance.now();
      flushing = true;
      try { for (const [k, v] of unsent) model.set(k, v); } finally { flushing = false; }
      unsent.clear();
      model.save_changes();
    };
    const push = (name, value) => {
      unsent.set(name, value);
      if (!syncTimer) syncTimer = setTimeout(flush, Math.max(0, lastSync + (model.get("sync_ms") || 150) - performance.now()));
    };
    const fromKernel = (name, apply) => () => {
      if (flushing) return;
      unsent.delete(name);
      apply();
    };

    const pts = (flat, width, idx) => {
      const out = { x: pick(flat, width, idx, 0), y: pick(flat, width, idx, 1) };
      if (width === 3) out.z = pick(flat, width, idx, 2);
      return out;
    };
    const restyleGroups = (gd, flat, width, traces, groups) => {
      const update = { x: [], y: [] };
      if (width === 3) update.z = [];
      for (const idx of groups) {
        const p = pts(flat, width, idx);
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
      restyleGroups(plots.state, A.x.data, 3, [2, 3, 4], [trail, neighboursOf(A, i), [i]])
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

    const drawSample = (i) => {
      const t = trajOf[i];
      const trail = Array.from(order.subarray(Math.max(offsets[t], posOf[i] - TRAIL), posOf[i] + 1));
      if (marks.state) marks.state.place(A.x.data, nd, i, nbs, trail);
      if (marks.embedding) marks.embedding.place(A.embedding.data, 2, i, nbs, []);
      const x = A.x.data, v = A.v.data, s = meta.arrow_scale;
      const off = (j) => [x[j * nd] - x[i * nd], x[j * nd + 1] - x[i * nd + 1]];
      const offs = nbs.map(off);
      local.draw(offs, offs.map((o, k) => [o[0] + s * v[nbs[k] * nd], o[1] + s * v[nbs[k] * nd + 1]]),
                 [s * v[i * nd], s * v[i * nd + 1]], nbs);
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
      nbs = neighboursOf(A, i);
      showControls(i);
      drawSample(i);
      if (!fromModel) push("sample", i);
    };
    const stepBy = (d) => goTo(order[Math.max(0, Math.min(n - 1, posOf[cur] + d))]);

    // --- colour and selection: plotly restyles of the clouds (rare, heavier) ---
    const recolour = (key, fromModel = false) => {
      ctl.color.value = key;
      root.dataset.colorBy = key;
      const jobs = [Plotly.restyle(plots.state, { marker: [markerFor(meta, A, key, nd === 3 ? 2 : 4, !hasEmb)] }, [0])];
      if (hasEmb) jobs.push(Plotly.restyle(plots.embedding, { marker: [markerFor(meta, A, key, 4, true)] }, [0]));
      if (!fromModel) push("color_by", key);
      return Promise.all(jobs).then(() => el.dispatchEvent(new CustomEvent("mw-recoloured", { detail: { key } })));
    };
    const select = (idx, fromModel = false) => {
      selection = Array.from(new Set(idx)).sort((a, b) => a - b);
      const jobs = [restyleGroups(plots.state, A.x.data, nd, [1], [selection])];
      if (hasEmb) jobs.push(restyleGroups(plots.embedding, A.embedding.data, 2, [1], [selection]));
      if (!fromModel) push("selection", selection);
      return Promise.all(jobs).then(() => { root.dataset.selected = String(selection.length); });
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
      if (!on && sceneTimer) { // paused: the 3-D scene catches up now
        clearTimeout(sceneTimer);
        sceneTimer = null;
        sceneNext = 0;
        drawScene();
      }
      if (!fromModel) push("playing", on);
    };

    // --- events ---
    ctl.prev.addEventListener("click", () => stepBy(-1));
    ctl.next.addEventListener("click", () => stepBy(1));
    ctl.play.addEventListener("click", () => setPlaying(!playing));
    ctl.slider.addEventListener("input", () => goTo(order[offsets[trajOf[cur]] + Number(ctl.slider.value)]));
    ctl.trajectory.addEventListener("change", () => goTo(order[offsets[Number(ctl.trajectory.value)]]));
    ctl.color.addEventListener("change", () => recolour(ctl.color.value));
    root.addEventListener("keydown", (ev) => {
      if (ev.target.tagName === "SELECT") return;
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
    // clicks on the cloud (trace 0) or the selection (trace 1); 3-D: also neighbours (3) and current (4)
    const onClick = (ev) => {
      const point = ev && ev.points && ev.points[0];
      if (!point) return;
      const lists = { 0: null, 1: selection, 3: nd === 3 ? nbs : undefined };
      const list = lists[point.curveNumber];
      if (list === undefined) return;
      goTo(list === null ? point.pointNumber : list[point.pointNumber]);
    };
    plots.state.on("plotly_click", onClick);
    if (hasEmb) {
      plots.embedding.on("plotly_click", (ev) => ev && ev.points && ev.points[0] && ev.points[0].curveNumber <= 1 && onClick(ev));
      plots.embedding.on("plotly_selected", (ev) => {
        if (!ev || !ev.points) return;
        select(ev.points.filter((p) => p.curveNumber === 0).map((p) => p.pointNumber));
      });
      plots.embedding.on("plotly_deselect", () => select([]));
    }
    const onSample = fromKernel("sample", () => goTo(model.get("sample"), true));
    const onPlaying = fromKernel("playing", () => setPlaying(!!model.get("playing"), true));
    const onColor = fromKernel("color_by", () => {
      if (model.get("color_by") !== root.dataset.colorBy) recolour(model.get("color_by"), true);
    });
    const onSelection = fromKernel("selection", () => select(model.get("selection") || [], true));
    model.on("change:sample", onSample);
    model.on("change:playing", onPlaying);
    model.on("change:color_by", onColor);
    model.on("change:selection", onSelection);

    // plots follow their container's width (e.g. a view first drawn in a hidden tab)
    const resizer = new ResizeObserver((entries) => {
      for (const e of entries) {
        if (e.target.clientWidth > 0 && e.target._fullLayout) Plotly.Plots.resize(e.target);
      }
      Object.values(marks).forEach((m) => m.refresh());
    });
    [plots.state, plots.embedding].filter(Boolean).forEach((gd) => resizer.observe(gd));

    root.dataset.colorBy = key0;
    ctl.color.value = key0;
    goTo(model.get("sample"), true);
    await select(model.get("selection") || [], true);
    setPlaying(!!model.get("playing"), true);
    root.dataset.ready = "true";
    return () => {
      setPlaying(false, true);
      resizer.disconnect();
      model.off("change:sample", onSample);
      model.off("change:playing", onPlaying);
      model.off("change:color_by", onColor);
      model.off("change:selection", onSelection);
      [plots.state, plots.embedding].filter(Boolean).forEach((gd) => Plotly.purge(gd));
    };
  },
};
