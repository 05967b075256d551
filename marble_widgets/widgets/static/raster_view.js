// RasterView (raster_view.py): the recording's spike counts (units x time) in a window around the
// current time, drawn on a canvas from buffers sent once (non-zero bins only). The cursor follows
// topic "sample" of the dashboard's channel (mwChannel) in the page; a click publishes the nearest
// results sample, so the flow view jumps there without the kernel.
// model: sample (two-way), time, window, channel, sync_ms, _meta {title, theme, units, bin_size,
// n_samples, trial_aligned}, _arrays {bin_time, segment_offsets, event_bin, event_unit, event_count,
// [sample_time, sample_bin, by_time, by_time_offsets]}.

const RV_MARGIN = { l: 58, r: 14, t: 8, b: 34 };

// first index in [lo, hi) whose value is >= x (values ascending there); `at` reads the value
function rvLowerBound(at, x, lo, hi) {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (at(mid) < x) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// ~n round ticks between lo and hi
function rvTicks(lo, hi, n) {
  const raw = (hi - lo) / Math.max(1, n);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(Number(v.toPrecision(12)));
  return { ticks: out, step };
}

function rvRgba(hex, alpha) {
  const h = hex.replace("#", "");
  const n = parseInt(h.length === 3 ? h.split("").map((c) => c + c).join("") : h, 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

export default {
  async render({ model, el }) {
    const started = performance.now();
    const meta = model.get("_meta");
    const A = await mwDecodeAll(model.get("_arrays"));
    const th = meta.theme;
    const units = meta.units;
    const rows = units.length;
    const bs = meta.bin_size;
    const binTime = A.bin_time.data;
    const segOff = A.segment_offsets.data;
    const evBin = A.event_bin.data;
    const evUnit = A.event_unit.data;
    const evCount = A.event_count.data;
    const nSamples = meta.n_samples || 0;
    const sTime = nSamples ? A.sample_time.data : null;
    const sBin = nSamples ? A.sample_bin.data : null;
    const byTime = nSamples ? A.by_time.data : null;
    const byOff = nSamples ? A.by_time_offsets.data : null;
    let maxCount = 0;
    for (let i = 0; i < evCount.length; i++) if (evCount[i] > maxCount) maxCount = evCount[i];

    const status = mwEl("span", { class: "mw-rv-status" });
    const canvas = mwEl("canvas", { class: "mw-rv-canvas" });
    const plot = mwEl("div", { class: "mw-rv-plot" }, [canvas]);
    const root = mwEl("div", { class: "mw-rv", tabindex: "0" }, [
      mwEl("div", { class: "mw-rv-head", text: meta.title || "Spike raster" }),
      mwEl("div", { class: "mw-rv-controls" }, [status]), plot]);
    el.appendChild(root);
    const ctx = canvas.getContext("2d");
    const plotH = Math.max(120, Math.min(360, rows * 6));
    const cssH = plotH + RV_MARGIN.t + RV_MARGIN.b;
    // draws, events in the last window, ms from render() to the first drawn frame (decode included)
    const stats = { draws: 0, events: 0, firstDrawMs: null };
    const cur = { sample: -1, time: model.get("time"), segment: 0, lo: 0, hi: 1, width: 0 };
    const view = { stats, canvas, cur, margin: RV_MARGIN, plotHeight: plotH };
    el.__mwRasterView = view;

    const segmentOfBin = (b) => rvLowerBound((i) => segOff[i], b + 1, 0, segOff.length) - 1;
    const timeToX = (t) => RV_MARGIN.l + ((t - cur.lo) / (cur.hi - cur.lo)) * (cur.width - RV_MARGIN.l - RV_MARGIN.r);
    view.timeToX = timeToX;

    const draw = () => {
      const width = Math.max(200, plot.clientWidth || 800);
      const dpr = window.devicePixelRatio || 1;
      if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(cssH * dpr)) {
        canvas.width = Math.round(width * dpr);
        canvas.height = Math.round(cssH * dpr);
        canvas.style.width = `${width}px`;
        canvas.style.height = `${cssH}px`;
      }
      const w = model.get("window");
      Object.assign(cur, { lo: cur.time - w, hi: cur.time + w, width });
      const pw = width - RV_MARGIN.l - RV_MARGIN.r;
      const rh = plotH / rows;
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, width, cssH);
      ctx.fillStyle = "white";
      ctx.fillRect(0, 0, width, cssH);
      // the current segment's bins inside the window, then their events (both sorted by bin)
      const s0 = segOff[cur.segment];
      const s1 = segOff[cur.segment + 1];
      const b0 = rvLowerBound((i) => binTime[i], cur.lo - bs, s0, s1);
      const b1 = rvLowerBound((i) => binTime[i], cur.hi + bs, b0, s1);
      const e0 = rvLowerBound((i) => evBin[i], b0, 0, evBin.length);
      const e1 = rvLowerBound((i) => evBin[i], b1, e0, evBin.length);
      ctx.save();
      ctx.beginPath();
      ctx.rect(RV_MARGIN.l, RV_MARGIN.t, pw, plotH);
      ctx.clip();
      const bw = Math.max(1, (bs / (cur.hi - cur.lo)) * pw);
      const gap = rh > 3 ? 0.5 : 0;
      const levels = 4; // counts shaded in a few levels: one fillStyle per level, not per spike
      for (let level = 1; level <= levels; level++) {
        ctx.fillStyle = rvRgba(th.ink, 0.3 + (0.7 * level) / levels);
        for (let e = e0; e < e1; e++) {
          const q = Math.min(levels, Math.max(1, Math.ceil((evCount[e] / maxCount) * levels)));
          if (q !== level) continue;
          ctx.fillRect(timeToX(binTime[evBin[e]]) - bw / 2, RV_MARGIN.t + evUnit[e] * rh + gap, bw, Math.max(1, rh - 2 * gap));
        }
      }
      stats.events = e1 - e0;
      if (nSamples && cur.sample >= 0) {
        const b = sBin[cur.sample];
        ctx.fillStyle = rvRgba(th.highlight, 0.18);
        ctx.fillRect(timeToX(binTime[b]) - bw / 2, RV_MARGIN.t, bw, plotH);
      }
      const cx = timeToX(cur.time);
      ctx.strokeStyle = th.highlight;
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(cx, RV_MARGIN.t);
      ctx.lineTo(cx, RV_MARGIN.t + plotH);
      ctx.stroke();
      ctx.restore();
      // axes: time below, unit ids on the left (a few)
      ctx.strokeStyle = "#c8ccd2";
      ctx.lineWidth = 1;
      ctx.strokeRect(RV_MARGIN.l + 0.5, RV_MARGIN.t + 0.5, pw - 1, plotH - 1);
      ctx.fillStyle = th.subtle;
      ctx.font = `11px ${th.font}`;
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      const { ticks, step } = rvTicks(cur.lo, cur.hi, Math.max(2, Math.floor(pw / 90)));
      const digits = Math.max(0, -Math.floor(Math.log10(step)));
      for (const t of ticks) ctx.fillText(t.toFixed(digits), timeToX(t), RV_MARGIN.t + plotH + 4);
      ctx.fillText(meta.trial_aligned ? "time in trial (s)" : "time (s)", RV_MARGIN.l + pw / 2, RV_MARGIN.t + plotH + 18);
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      const every = Math.max(1, Math.ceil(rows / Math.max(1, Math.floor(plotH / 14))));
      for (let r = 0; r < rows; r += every) ctx.fillText(String(units[r]), RV_MARGIN.l - 4, RV_MARGIN.t + (r + 0.5) * rh);
      ctx.save();
      ctx.translate(12, RV_MARGIN.t + plotH / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "center";
      ctx.fillText("unit", 0, 0);
      ctx.restore();
      const where = meta.trial_aligned ? ` · trial ${cur.segment}` : "";
      status.textContent = nSamples && cur.sample >= 0 ? `sample ${cur.sample} · t = ${cur.time.toFixed(3)} s${where}`
        : `t = ${cur.time.toFixed(3)} s${where}`;
      root.dataset.time = String(cur.time);
      root.dataset.sample = String(cur.sample);
      root.dataset.lo = String(cur.lo);
      root.dataset.hi = String(cur.hi);
      stats.draws += 1;
      el.dispatchEvent(new CustomEvent("mw-drawn", { detail: { sample: cur.sample, time: cur.time, t: performance.now() } }));
    };

    const sync = mwSync(model);
    const me = `raster-${Math.random().toString(36).slice(2)}`;
    let channel = mwChannel(model.get("channel"));
    // origin: "kernel" (Python set it), "channel" (another view), "click"; only kernel and click publish
    const goTo = (s, origin) => {
      if (!nSamples || !Number.isInteger(s) || s < 0 || s >= nSamples) return;
      if (s === cur.sample && origin !== "init") return;
      cur.sample = s;
      cur.time = sTime[s];
      cur.segment = segmentOfBin(sBin[s]);
      draw();
      if (origin === "channel" || origin === "click") {
        sync.push("sample", s);
        sync.push("time", cur.time);
      }
      if (origin === "click" || origin === "kernel") channel.publish("sample", s, me);
    };
    const nearestSample = (t) => {
      const o0 = byOff[cur.segment];
      const o1 = byOff[cur.segment + 1];
      if (o1 <= o0) return -1;
      const k = rvLowerBound((i) => sTime[byTime[i]], t, o0, o1);
      if (k >= o1) return byTime[o1 - 1];
      if (k === o0) return byTime[o0];
      return t - sTime[byTime[k - 1]] <= sTime[byTime[k]] - t ? byTime[k - 1] : byTime[k];
    };
    canvas.addEventListener("click", (e) => {
      const box = canvas.getBoundingClientRect();
      const px = e.clientX - box.left;
      const pw = cur.width - RV_MARGIN.l - RV_MARGIN.r;
      if (px < RV_MARGIN.l || px > RV_MARGIN.l + pw) return;
      const t = cur.lo + ((px - RV_MARGIN.l) / pw) * (cur.hi - cur.lo);
      if (nSamples) {
        goTo(nearestSample(t), "click");
      } else {
        cur.time = t;
        draw();
        sync.push("time", t);
      }
    });
    let unsubscribe = channel.subscribe("sample", (s, source) => { if (source !== me) goTo(s, "channel"); });
    const onSample = sync.fromKernel("sample", () => goTo(model.get("sample"), "kernel"));
    const onTime = sync.fromKernel("time", () => {
      if (nSamples) return; // with results the time follows the sample
      cur.time = model.get("time");
      draw();
    });
    const onWindow = () => draw();
    const onChannel = () => {
      unsubscribe();
      channel = mwChannel(model.get("channel"));
      unsubscribe = channel.subscribe("sample", (s, source) => { if (source !== me) goTo(s, "channel"); });
    };
    model.on("change:sample", onSample);
    model.on("change:time", onTime);
    model.on("change:window", onWindow);
    model.on("change:channel", onChannel);
    const ro = new ResizeObserver(() => { if (plot.clientWidth > 0 && plot.clientWidth !== cur.width) draw(); });
    ro.observe(plot);
    if (nSamples) goTo(model.get("sample"), "init"); else draw();
    stats.firstDrawMs = performance.now() - started;
    root.dataset.ready = "true";
    return () => {
      ro.disconnect();
      unsubscribe();
      model.off("change:sample", onSample);
      model.off("change:time", onTime);
      model.off("change:window", onWindow);
      model.off("change:channel", onChannel);
    };
  },
};
