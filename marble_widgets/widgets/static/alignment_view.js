// AlignmentView (alignment_view.py): distance heatmap, MDS map and the chosen pair's embeddings after
// alignment. Every ordered pair's aligned source arrived once (buffers); a heatmap click or the
// pickers switch the pair here, and `pair` is reported to Python (throttled).
// A pair change must answer in < 50 ms: a plotly restyle of the overlay's points replots the whole
// figure (30-50 ms for the rat's 6576 points on 2 loaded cores), so plotly draws only the overlay's
// axes (fixed ranges over every pair) and the points are painted on a canvas above them (a few ms);
// the pair marks on the heatmap and MDS map are layout shapes, which a shapes relayout redraws alone.
// model: pair (two-way), sync_ms, _meta {title, theme, groups, pairs, heatmap, mds, mds_xy}, _arrays
// {points, group_offsets, aligned, pair_offsets, scores}, _plotly.

function avPanel(name, title) {
  const plot = mwEl("div", { class: `mw-av-plot mw-av-${name}` });
  return [mwEl("div", { class: `mw-av-panel mw-av-panel-${name}` }, [mwEl("div", { class: "mw-av-title", text: title }), plot]), plot];
}

function avXY(flat, from, to) {
  const n = to - from;
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) { x[i] = flat[2 * (from + i)]; y[i] = flat[2 * (from + i) + 1]; }
  return { x, y };
}

// [x0, x1, y0, y1] of every point any pair can show, padded by 5 % (the overlay's fixed axis ranges)
function avBounds(...flats) {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const flat of flats) {
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const x = flat[i], y = flat[i + 1];
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
  }
  if (!(x1 >= x0)) return [-1, 1, -1, 1];
  const px = (x1 - x0) * 0.05 || 1, py = (y1 - y0) * 0.05 || 1;
  return [x0 - px, x1 + px, y0 - py, y1 + py];
}

const AV_OVERLAY_MARGIN = { l: 50, r: 10, t: 20, b: 44 };

// an axis range from a plotly_relayout(ing) event ({"xaxis.range[0]": a, "xaxis.range[1]": b} or
// {"xaxis.range": [a, b]}), else the plot's layout
function avRange(gd, axis, ev) {
  if (ev && ev[`${axis}.range[0]`] !== undefined) return [ev[`${axis}.range[0]`], ev[`${axis}.range[1]`]];
  if (ev && Array.isArray(ev[`${axis}.range`])) return ev[`${axis}.range`];
  return gd.layout[axis].range;
}

// pixel offsets of a disc of `radius` px (a point's splat)
function avDisc(radius) {
  const out = [];
  const r = Math.ceil(radius);
  for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) if (dx * dx + dy * dy <= radius * radius) out.push([dx, dy]);
  return out;
}

// the pair's points over the overlay's plot area (axis ranges: a zoom/pan event's or the layout's),
// splatted into an ImageData in JS and put once: canvas paths of thousands of arcs are rasterised at
// frame time, which in software rendering cost more than the whole pair change may take
function avPaint(canvas, gd, traces, radius, ev) {
  const dpr = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(gd.clientWidth * dpr));
  const height = Math.max(1, Math.round(gd.clientHeight * dpr));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
    canvas.style.width = `${gd.clientWidth}px`;
    canvas.style.height = `${gd.clientHeight}px`;
  }
  const m = AV_OVERLAY_MARGIN;
  const left = m.l * dpr, top = m.t * dpr;
  const right = width - m.r * dpr, bottom = height - m.b * dpr;
  const [x0, x1] = avRange(gd, "xaxis", ev);
  const [y0, y1] = avRange(gd, "yaxis", ev);
  const sx = (right - left) / (x1 - x0), sy = (bottom - top) / (y1 - y0);
  if (!canvas.__mwImage || canvas.__mwImage.width !== width || canvas.__mwImage.height !== height) {
    canvas.__mwImage = new ImageData(width, height); // reused: one 4-byte pixel buffer per canvas size
  }
  const img = canvas.__mwImage;
  const px = img.data;
  px.fill(0);
  const disc = avDisc(radius * dpr);
  const alpha = 0.6;
  for (const { x, y, color } of traces) {
    const n = parseInt(color.replace("#", ""), 16);
    const cr = (n >> 16) & 255, cg = (n >> 8) & 255, cb = n & 255;
    for (let i = 0; i < x.length; i++) {
      const cx = Math.round(left + (x[i] - x0) * sx), cy = Math.round(top + (y1 - y[i]) * sy);
      if (!(cx >= left - radius * dpr && cx <= right + radius * dpr && cy >= top - radius * dpr && cy <= bottom + radius * dpr)) continue;
      for (const [dx, dy] of disc) {
        const qx = cx + dx, qy = cy + dy;
        if (qx < left || qx >= right || qy < top || qy >= bottom) continue;
        const o = 4 * (qy * width + qx);
        const da = px[o + 3] / 255;
        const oa = alpha + da * (1 - alpha); // "source over" on what is already there
        const keep = (da * (1 - alpha)) / oa;
        px[o] = cr * (alpha / oa) + px[o] * keep;
        px[o + 1] = cg * (alpha / oa) + px[o + 1] * keep;
        px[o + 2] = cb * (alpha / oa) + px[o + 2] * keep;
        px[o + 3] = oa * 255;
      }
    }
  }
  canvas.getContext("2d").putImageData(img, 0, 0);
}

function avLayout(fig, extra) {
  const layout = { ...(fig.layout || {}), ...extra };
  delete layout.width;
  delete layout.title; // the panel names the view
  return { ...layout, autosize: true, height: 400, uirevision: "keep", margin: { l: 60, r: 20, t: 20, b: 50 } };
}

export default {
  async render({ model, el }) {
    const meta = model.get("_meta");
    const [Plotly, A] = await Promise.all([mwLoadPlotly(model), mwDecodeAll(model.get("_arrays"))]);
    const th = meta.theme;
    const groups = meta.groups;
    const pairIndex = new Map(meta.pairs.map(([i, j], k) => [`${i},${j}`, k]));
    const source = mwEl("select", { class: "mw-av-source" });
    const target = mwEl("select", { class: "mw-av-target" });
    groups.forEach((g, i) => {
      source.appendChild(mwEl("option", { value: String(i), text: g }));
      target.appendChild(mwEl("option", { value: String(i), text: g }));
    });
    const score = mwEl("span", { class: "mw-av-score" });
    const [heatPanel, heat] = avPanel("heatmap", "Distances between groups (click a cell to align that pair)");
    const [mdsPanel, mds] = avPanel("mds", "MDS map (the pair circled)");
    const [overlayPanel, overlay] = avPanel("overlay", "Aligned pair (source aligned onto target)");
    const paint = mwEl("canvas", { class: "mw-av-points" });
    const stage = mwEl("div", { class: "mw-av-stage" });
    overlay.replaceWith(stage);
    stage.append(overlay, paint);
    const legend = mwEl("div", { class: "mw-av-legend" });
    overlayPanel.insertBefore(legend, overlayPanel.children[1]);
    const root = mwEl("div", { class: "mw-av" }, [
      mwEl("div", { class: "mw-av-head", text: meta.title || "Alignment" }),
      mwEl("div", { class: "mw-av-controls" }, [mwEl("label", { text: "source " }, [source]), mwEl("label", { text: "target " }, [target]), score]),
      mwEl("div", { class: "mw-av-grid" }, [heatPanel, mdsPanel, overlayPanel])]);
    el.appendChild(root);
    // `shown`: the overlay's current arrays (what the canvas painted), read by tests
    // stats: ms of the last pair change's canvas paint and heatmap/MDS mark relayouts (benchmarks read them)
    const view = { plots: { heat, mds, overlay }, canvas: paint, shown: null, stats: { changes: 0, paintMs: 0, marksMs: 0 } };
    el.__mwAlignmentView = view;
    const config = { displaylogo: false, responsive: true };
    // the pair is marked by layout shapes: a shape edit repaints only the shapes, not the plot
    await Plotly.newPlot(heat, meta.heatmap.data, avLayout(meta.heatmap, {}), config);
    await Plotly.newPlot(mds, meta.mds.data, avLayout(meta.mds, {}), config);
    const line = { color: th.highlight, width: 3 };
    const cellShape = (i, j) => ({ type: "rect", xref: "x", yref: "y", x0: j - 0.4, x1: j + 0.4, y0: i - 0.4, y1: i + 0.4, line });
    const ringShape = ([x, y]) => ({ type: "circle", xref: "x", yref: "y", xsizemode: "pixel", ysizemode: "pixel",
                                     xanchor: x, yanchor: y, x0: -12, x1: 12, y0: -12, y1: 12, line });
    const [bx0, bx1, by0, by1] = avBounds(A.points.data, A.aligned.data);
    await Plotly.newPlot(overlay, [], {
      autosize: true, height: 400, margin: { ...AV_OVERLAY_MARGIN, autoexpand: false }, uirevision: "keep",
      font: { family: th.font, size: 11, color: th.ink }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      xaxis: { title: { text: "latent 0" }, range: [bx0, bx1], autorange: false, zeroline: false },
      yaxis: { title: { text: "latent 1" }, range: [by0, by1], autorange: false, zeroline: false }, showlegend: false },
    { ...config, doubleClick: "reset", modeBarButtonsToRemove: ["autoScale2d", "select2d", "lasso2d"] });
    const repaint = (ev) => { if (view.shown) avPaint(paint, overlay, [view.shown.target, view.shown.source], 2.5, ev); };
    overlay.on("plotly_relayout", repaint);
    overlay.on("plotly_relayouting", repaint);
    const swatch = (color, text) => mwEl("span", { class: "mw-av-key" }, [mwEl("i", { style: `background:${color}` }), mwEl("span", { text })]);

    // each group's and pair's x/y arrays, split out of the buffers once, on first use
    const xyCache = new Map();
    const pairXY = (i, j, k) => {
      const key = `${i},${j}`;
      if (!xyCache.has(key)) {
        const go = A.group_offsets.data;
        const po = A.pair_offsets.data;
        xyCache.set(key, { tgt: avXY(A.points.data, go[j], go[j + 1]),
                           src: k === undefined ? { x: new Float32Array(0), y: new Float32Array(0) } : avXY(A.aligned.data, po[k], po[k + 1]) });
      }
      return xyCache.get(key);
    };
    const sync = mwSync(model);
    let shown = "";
    const show = async (pair, fromModel = false) => {
      const [s, t] = pair;
      const i = groups.indexOf(s);
      const j = groups.indexOf(t);
      if (i < 0 || j < 0) return;
      const key = `${s}|${t}`;
      if (key === shown) return;
      shown = key;
      source.value = String(i);
      target.value = String(j);
      const k = pairIndex.get(`${i},${j}`);
      const { tgt, src } = pairXY(i, j, k);
      const value = k === undefined ? NaN : A.scores.data[k];
      score.innerHTML = k === undefined ? `${s}: one group (pick two to align)`
        : `consistency <b>${Number.isFinite(value) ? value.toFixed(3) : "–"}</b> (${s} → ${t})`;
      const xy = [meta.mds_xy[s] || [NaN, NaN], meta.mds_xy[t] || [NaN, NaN]];
      const t0 = performance.now();
      view.shown = { target: { ...tgt, color: th.palette[0] }, source: { ...src, color: th.palette[1] } };
      avPaint(paint, overlay, [view.shown.target, view.shown.source], 2.5);
      const t1 = performance.now();
      legend.replaceChildren(swatch(th.palette[0], `${t} (target)`), swatch(th.palette[1], `${s} (aligned)`));
      // a whole `shapes` relayout redraws the shapes only (~2 ms); attribute edits ("shapes[0].x0") are
      // ten times slower in plotly.js 3 (they replot the figure)
      await Promise.all([Plotly.relayout(heat, { shapes: [cellShape(i, j)] }),
                         Plotly.relayout(mds, { shapes: xy.map(ringShape) })]);
      if (shown !== key) return;
      Object.assign(view.stats, { changes: view.stats.changes + 1, paintMs: t1 - t0, marksMs: performance.now() - t1 });
      // Python hears of the change after the frame that shows it: the message and the kernel's busy/idle
      // replies (which JupyterLab repaints its toolbars for) never land inside that frame
      if (!fromModel) requestAnimationFrame(() => setTimeout(() => { if (shown === key) sync.push("pair", [s, t]); }, 0));
      root.dataset.pair = key;
      el.dispatchEvent(new CustomEvent("mw-drawn", { detail: { pair: [s, t], t: performance.now() } }));
    };
    heat.on("plotly_click", (ev) => {
      const p = ev && ev.points && ev.points[0];
      if (!p || p.curveNumber !== 0) return;
      show([String(p.y), String(p.x)]);
    });
    const picked = () => show([groups[Number(source.value)], groups[Number(target.value)]]);
    source.addEventListener("change", picked);
    target.addEventListener("change", picked);
    const onPair = sync.fromKernel("pair", () => show(model.get("pair"), true));
    model.on("change:pair", onPair);
    const ro = mwResizer(Plotly, [heat, mds, overlay]);
    const roPaint = new ResizeObserver(() => repaint());
    roPaint.observe(overlay);
    await show(model.get("pair"), true);
    root.dataset.ready = "true";
    return () => {
      ro.disconnect();
      roPaint.disconnect();
      model.off("change:pair", onPair);
      [heat, mds, overlay].forEach((gd) => Plotly.purge(gd));
    };
  },
};
