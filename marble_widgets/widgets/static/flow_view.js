// FlowView front end (marble_widgets/widgets/flow_view.py): draws with plotly.js and answers every
// interaction in the page from typed arrays it received once. No build step: a plain ES module,
// used by anywidget in notebooks and by the standalone HTML export (page.py, dashboard_export.js).
//
// model traits: sample, playing, color_by, behaviour, show_transported, _selection (int32 bytes, or a
// list in the HTML export; two-way), fps, sync_ms, channel (the dashboard channel, mw_common.js
// mwChannel), _meta (JSON), _arrays ({name: {dtype, shape, buffer[, compression][, quantized]}}),
// _plotly (library widget or {version, source}). The 2-D clouds are drawn by PointLayer
// (flow_view_gl.js), a 3-D state by Scene3D (flow_view_scene.js), the DOM, plotly figures and marks are
// built by flow_view_dom.js, the local flow, features and behaviour panels by flow_view_panels.js; this
// part holds the state and the events.

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
    // frames drawn; Play's own count and duration (frames / ms while playing); JS ms per part; frame gaps while playing
    const stats = { frames: 0, sceneFrames: 0, times, play: { frames: 0, ms: 0 }, prof: {}, gaps: [] };
    const layers = {};
    const colourCache = new Map();
    el.__mwFlowView = { stats, get sample() { return cur; }, get selection() { return selection; }, plots, layers, Plotly,
                        colours: (key) => colourOf(meta, A, colourCache, key) };
    let goTo = () => {};
    // the dashboard channel (mw_common.js mwChannel): this view publishes "sample" and "selection" once it
    // is drawn (`live`) and follows "sample" from the other views, as a click-to-jump does
    const me = `flow-view-${(MW_CACHE.flowViews = (MW_CACHE.flowViews || 0) + 1)}`;
    el.__mwFlowView.id = me;
    let live = false;
    let channel = mwChannel("");
    let unsubscribe = () => {};
    const followSample = (value, source) => {
      if (source === me || !Number.isInteger(value) || value < 0 || value >= n) return;
      goTo(value, false, true);
    };
    const connect = () => {
      unsubscribe();
      channel = mwChannel(model.get("channel") || "");
      unsubscribe = channel.subscribe("sample", followSample);
    };

    // --- views ---
    const config = { displaylogo: false, responsive: true, scrollZoom: false };
    const key0 = model.get("color_by");
    const marks = {};
    const cloud = async (name, flat, width, withBar) => {
      const gd = plots[name];
      const bounds = dataBounds(flat, width, n);
      await Plotly.newPlot(gd, cloudTraces(meta, A, key0, withBar), layoutFor(meta, name, bounds), config);
      layers[name] = pointLayer(gd, wraps[name], flat, width, n, meta.theme);
      layers[name].setColours(colourOf(meta, A, colourCache, key0));
      marks[name] = new Marks2D(gd, wraps[name], meta.theme, (s) => goTo(s));
      const follow = () => layers[name].refresh();
      gd.on("plotly_relayouting", () => layers[name].refresh(true)); // dragging: a slow layer shifts its image
      gd.on("plotly_relayout", follow);
      gd.on("plotly_afterplot", follow);
      follow();
    };
    // the 3-D scene (flow_view_scene.js) carries the colour bar when there is no embedding plot
    const barOf = (key) => (!hasEmb && key ? { key, spec: meta.colors[key] } : null);
    let scene = null;
    if (nd === 3) {
      scene = new Scene3D(plots.state, A.x.data, n, meta, (s) => goTo(s));
      scene.setColours(colourOf(meta, A, colourCache, key0), barOf(key0));
      el.__mwFlowView.scene = scene;
    } else {
      await cloud("state", A.x.data, nd, !hasEmb);
    }
    if (hasEmb) await cloud("embedding", A.embedding.data, 2, true);
    times.plotted = performance.now();
    const local = new LocalFlow(plots.local, meta);
    const features = meta.features ? new FeaturesPanel(plots.features, meta.features, meta.theme, A.features.data) : null;
    const behaviour = new BehaviourPanel(plots.behaviour, A, order, offsets, meta.theme);
    Object.assign(el.__mwFlowView, { features, behaviour, local });

    // browser -> Python, at most every sync_ms (trailing): code can read where the user is.
    // Local values go into the model only when sent, so ipywidgets' echo of a sent value finds the
    // model unchanged (no event) and echoes of older values are dropped by ipywidgets itself; a value
    // that does arrive was set by Python and is applied (it replaces an unsent local one).
    const { push, fromKernel } = mwSync(model);

    let lastFrame = 0;
    let playStart = 0;
    const frameDone = (now) => {
      frameQueued = false;
      stats.frames += 1;
      if (playing) stats.play.frames += 1;
      if (playing && lastFrame && stats.gaps.length < 2000) stats.gaps.push(Math.round(now - lastFrame));
      lastFrame = now;
      root.dataset.drawn = String(cur);
      el.dispatchEvent(new CustomEvent("mw-drawn", { detail: { sample: cur, t: performance.now() } }));
      if (scene) { // the scene's marks moved with the other views: the same frame shows them
        stats.sceneFrames += 1;
        root.dataset.sceneDrawn = String(cur);
        el.dispatchEvent(new CustomEvent("mw-scene-drawn", { detail: { sample: cur, t: performance.now() } }));
      }
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
    // per-part JS time (ms, count) of the steps drawn: stats.prof, read by benchmarks and tests
    const timed = (name, fn) => {
      const t0 = performance.now();
      fn();
      const p = (stats.prof[name] = stats.prof[name] || [0, 0]);
      p[0] += performance.now() - t0;
      p[1] += 1;
    };
    const drawSample = (i) => {
      const t = trajOf[i];
      const trail = Array.from(order.subarray(Math.max(offsets[t], posOf[i] - TRAIL), posOf[i] + 1));
      timed("marks", () => {
        if (marks.state) marks.state.place(A.x.data, nd, i, nbs, trail);
        if (marks.embedding) marks.embedding.place(A.embedding.data, 2, i, nbs, []);
        if (scene) scene.place(i, nbs, trail);
      });
      timed("local", () => drawLocal(i));
      // while playing, the features panel (one bar per feature: ~1000 for the rat) follows at ~5 Hz
      const now = performance.now();
      if (features && (!playing || now - featuresShown >= FEATURES_PLAY_MS)) { timed("features", () => features.show(i)); featuresShown = now; }
      timed("behaviour", () => behaviour.show(behaviourKey(), t, i));
      if (!frameQueued) { frameQueued = true; requestAnimationFrame(frameDone); }
    };

    const showControls = (i) => {
      const t = trajOf[i];
      ctl.slider.max = String(offsets[t + 1] - offsets[t] - 1);
      ctl.slider.value = String(posOf[i] - offsets[t]);
      if (ctl.trajectory.value !== String(t)) ctl.trajectory.value = String(t); // (see flow_view.css: its width is fixed)
      const [cond, trial] = meta.trajectories[t];
      ctl.status.innerHTML = `sample <b>${i}</b> · ${cond} · trial ${trial} · t = ${A.time.data[i].toPrecision(4)} s · ${nbs.length} neighbours`;
      root.dataset.sample = String(i);
    };

    // `fromModel`: set by Python (not sent back); `fromChannel`: published by another view (not re-published)
    goTo = (i, fromModel = false, fromChannel = false) => {
      i = Math.max(0, Math.min(n - 1, i | 0));
      if (i === cur) return;
      cur = i;
      cols = [];
      nbs = neighboursOf(A, i, cols);
      timed("controls", () => showControls(i));
      drawSample(i);
      if (!fromModel) push("sample", i);
      if (!fromChannel && live) channel.publish("sample", i, me);
    };
    const stepBy = (d) => goTo(order[Math.max(0, Math.min(n - 1, posOf[cur] + d))]);

    // --- colour and selection: one buffer per cloud (2-D layers and 3-D scene); a 2-D colour bar is an empty plotly trace ---
    const recolour = (key, fromModel = false) => {
      ctl.color.value = key;
      root.dataset.colorBy = key;
      const rgba = colourOf(meta, A, colourCache, key);
      const jobs = Object.values(layers).map((layer) => layer.setColours(rgba));
      // only the plot showing the colour bar needs plotly (the other's trace carries nothing visible)
      const bar = hasEmb ? "embedding" : "state";
      if (layers[bar]) jobs.push(Plotly.restyle(plots[bar], { marker: [markerFor(meta, A, key, 4, true, true)] }, [0]));
      if (scene) jobs.push(scene.setColours(rgba, barOf(key)));
      if (cur >= 0) behaviour.show(behaviourKey(), trajOf[cur], cur);
      if (!fromModel) push("color_by", key);
      return Promise.all(jobs).then(() => el.dispatchEvent(new CustomEvent("mw-recoloured", { detail: { key, t: performance.now() } })));
    };
    const select = (idx, fromModel = false) => {
      selection = idx;
      const jobs = Object.values(layers).map((layer) => layer.setSelection(idx));
      if (scene) jobs.push(scene.setSelection(idx));
      if (!fromModel) push("_selection", selectionBytes(idx));
      if (live) channel.publish("selection", Int32Array.from(idx), me);
      root.dataset.selected = String(idx.length);
      return Promise.all(jobs).then(() => el.dispatchEvent(new CustomEvent("mw-selected", { detail: { n: idx.length, t: performance.now() } })));
    };

    // --- Play: at most one step per animation frame, `fps` samples per second ---
    // Steps are due every 1000 / fps ms on a fixed schedule: a frame the page drew late is followed by the
    // next step one animation frame later (at most one step per frame, debt capped at one step), so the
    // point advances `fps` samples per second and a slow frame does not slow Play down.
    const tick = (now) => {
      if (!playing) return;
      const every = 1000 / (model.get("fps") || 30);
      if (now - lastStep >= every - 1) {
        lastStep = lastStep ? Math.max(lastStep + every, now - every) : now;
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
      if (on) { lastStep = 0; lastFrame = 0; playStart = performance.now(); raf = requestAnimationFrame(tick); } else {
        cancelAnimationFrame(raf);
        stats.play.ms += performance.now() - playStart;
      }
      if (!on && features && cur >= 0) features.show(cur); // paused: the features panel catches up
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
      // a deselect with nothing selected changes nothing: no re-splat of the clouds
      plots.embedding.on("plotly_deselect", () => { if (selection.length) select(new Int32Array(0)); });
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
                       behaviour: onBehaviour, show_transported: onTransported, channel: connect };
    for (const [name, fn] of Object.entries(handlers)) model.on(`change:${name}`, fn);

    // plots follow their container's width (e.g. a view first drawn in a hidden tab)
    const resizer = new ResizeObserver((entries) => {
      for (const e of entries) {
        if (e.target.clientWidth > 0 && e.target._fullLayout) Plotly.Plots.resize(e.target);
      }
      Object.values(marks).forEach((m) => m.refresh());
      Object.values(layers).forEach((m) => m.refresh());
      if (scene) scene.resize();
    });
    [plots.state, plots.embedding].filter(Boolean).forEach((gd) => resizer.observe(gd));

    root.dataset.colorBy = key0;
    ctl.color.value = key0;
    ctl.behaviour.value = model.get("behaviour") || "";
    setTransported(model.get("show_transported") !== false, true);
    goTo(model.get("sample"), true);
    await select(readSelection(model.get("_selection")), true);
    setPlaying(!!model.get("playing"), true);
    connect();
    live = true;
    root.dataset.ready = "true";
    times.ready = performance.now();
    return () => {
      setPlaying(false, true);
      unsubscribe();
      resizer.disconnect();
      for (const [name, fn] of Object.entries(handlers)) model.off(`change:${name}`, fn);
      unlisten.forEach((off) => off());
      Object.values(layers).forEach((layer) => layer.dispose());
      if (scene) scene.dispose();
      [plots.state, plots.embedding].filter((gd) => gd && gd._fullLayout).forEach((gd) => Plotly.purge(gd));
    };
  },
};
