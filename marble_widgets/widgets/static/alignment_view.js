// AlignmentView (alignment_view.py): distance heatmap, MDS map and the chosen pair's embeddings after
// alignment. Every ordered pair's aligned source arrived once (buffers); a heatmap click or the
// pickers switch the pair here, and `pair` is reported to Python (throttled).
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
    const root = mwEl("div", { class: "mw-av" }, [
      mwEl("div", { class: "mw-av-head", text: meta.title || "Alignment" }),
      mwEl("div", { class: "mw-av-controls" }, [mwEl("label", { text: "source " }, [source]), mwEl("label", { text: "target " }, [target]), score]),
      mwEl("div", { class: "mw-av-grid" }, [heatPanel, mdsPanel, overlayPanel])]);
    el.appendChild(root);
    el.__mwAlignmentView = { plots: { heat, mds, overlay } };
    const config = { displaylogo: false, responsive: true };
    // the pair is marked by layout shapes: a shape edit repaints only the shapes, not the plot
    await Plotly.newPlot(heat, meta.heatmap.data, avLayout(meta.heatmap, {}), config);
    await Plotly.newPlot(mds, meta.mds.data, avLayout(meta.mds, {}), config);
    const line = { color: th.highlight, width: 3 };
    const cellShape = (i, j) => ({ type: "rect", xref: "x", yref: "y", x0: j - 0.4, x1: j + 0.4, y0: i - 0.4, y1: i + 0.4, line });
    const ringShape = ([x, y]) => ({ type: "circle", xref: "x", yref: "y", xsizemode: "pixel", ysizemode: "pixel",
                                     xanchor: x, yanchor: y, x0: -12, x1: 12, y0: -12, y1: 12, line });
    const dot = (color, name) => ({ type: "scattergl", mode: "markers", x: [], y: [], name, marker: { size: 5, color, opacity: 0.6 } });
    await Plotly.newPlot(overlay, [dot(th.palette[0], "target"), dot(th.palette[1], "source (aligned)")], {
      autosize: true, height: 400, margin: { l: 50, r: 10, t: 20, b: 44 }, uirevision: "keep", hovermode: "closest",
      font: { family: th.font, size: 11, color: th.ink }, paper_bgcolor: "white", plot_bgcolor: "white",
      xaxis: { title: { text: "latent 0" } }, yaxis: { title: { text: "latent 1" } },
      legend: { orientation: "h", y: 1.0, yanchor: "bottom", x: 1, xanchor: "right" } }, config);

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
      const go = A.group_offsets.data;
      const tgt = avXY(A.points.data, go[j], go[j + 1]);
      const k = pairIndex.get(`${i},${j}`);
      const src = k === undefined ? { x: [], y: [] } : avXY(A.aligned.data, A.pair_offsets.data[k], A.pair_offsets.data[k + 1]);
      const value = k === undefined ? NaN : A.scores.data[k];
      score.innerHTML = k === undefined ? `${s}: one group (pick two to align)`
        : `consistency <b>${Number.isFinite(value) ? value.toFixed(3) : "–"}</b> (${s} → ${t})`;
      const xy = [meta.mds_xy[s] || [NaN, NaN], meta.mds_xy[t] || [NaN, NaN]];
      if (!fromModel) sync.push("pair", [s, t]);
      await Promise.all([
        Plotly.restyle(overlay, { x: [tgt.x, src.x], y: [tgt.y, src.y], name: [`${t} (target)`, `${s} (aligned)`] }, [0, 1]),
        Plotly.relayout(heat, { shapes: [cellShape(i, j)] }),
        Plotly.relayout(mds, { shapes: xy.map(ringShape) }),
      ]);
      if (shown !== key) return;
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
    await show(model.get("pair"), true);
    root.dataset.ready = "true";
    return () => {
      ro.disconnect();
      model.off("change:pair", onPair);
      [heat, mds, overlay].forEach((gd) => Plotly.purge(gd));
    };
  },
};
