// TrainingView (training_view.py): loss curves (top, lr on a log right axis) and diffusion time
// (bottom) per epoch, the best epoch marked; redrawn whenever Python sends the (small) arrays.
// model: _arrays {epoch, train_loss, val_loss, lr, diffusion_time}, best_epoch, n_epochs, status
// finished (Python -> page), stop_requested (page -> Python), _meta {title, theme[, exported]}, _plotly.

function tvTraces(A, th, withDiffusion) {
  const x = A.epoch ? A.epoch.data : [];
  const y = (k) => (A[k] ? A[k].data : []);
  const line = (color, extra = {}) => ({ color, width: 2, ...extra });
  const traces = [
    { type: "scatter", mode: "lines+markers", name: "train loss", x, y: y("train_loss"), line: line(th.palette[0]), marker: { size: 4 } },
    { type: "scatter", mode: "lines+markers", name: "val loss", x, y: y("val_loss"), line: line(th.palette[1]), marker: { size: 4 } },
    { type: "scatter", mode: "lines", name: "lr", x, y: y("lr"), yaxis: "y2", line: line("rgba(90,90,90,0.7)", { width: 1, dash: "dot" }) },
    { type: "scatter", mode: "lines+markers", name: "diffusion time", x, y: y("diffusion_time"), yaxis: "y3",
      line: line(th.palette[2]), marker: { size: 3 } },
  ];
  // without diffusion (all NaN) there is no third subplot: its white background would cover the losses
  return withDiffusion ? traces : traces.slice(0, 3);
}

function tvLayout(th, best, n, withDiffusion) {
  const shapes = [];
  const annotations = [];
  if (best >= 0) {
    shapes.push({ type: "line", xref: "x", yref: "paper", x0: best, x1: best, y0: 0, y1: 0.9, line: { color: "#9aa1ab", dash: "dash", width: 1 } });
    annotations.push({ x: best, y: 0.9, xref: "x", yref: "paper", yanchor: "bottom", xanchor: "center", showarrow: false,
                       text: `best epoch ${best}`, font: { size: 10, color: th.subtle } });
  }
  const grid = "#e8eaed";
  const layout = {
    // fixed margins, legend inside the plot: the plot area keeps its place as epochs arrive
    height: 420, margin: { l: 56, r: 64, t: 14, b: 40, autoexpand: false }, font: { family: th.font, size: 11, color: th.ink },
    paper_bgcolor: "white", plot_bgcolor: "white", hovermode: "x unified", uirevision: "keep",
    legend: { orientation: "h", y: 1, yanchor: "top", x: 0.99, xanchor: "right", bgcolor: "rgba(255,255,255,0.8)" },
    xaxis: { title: { text: "epoch" }, anchor: withDiffusion ? "y3" : "y", gridcolor: grid, zeroline: false,
             range: n ? undefined : [0, 1] },
    yaxis: { title: { text: "loss" }, domain: withDiffusion ? [0.36, 1] : [0, 1], gridcolor: grid },
    yaxis2: { title: { text: "learning rate" }, overlaying: "y", side: "right", type: "log", showgrid: false, tickformat: ".0e" },
    shapes, annotations,
  };
  if (withDiffusion) layout.yaxis3 = { title: { text: "diffusion t" }, domain: [0, 0.24], gridcolor: grid, rangemode: "tozero" };
  return layout;
}

export default {
  async render({ model, el }) {
    const Plotly = await mwLoadPlotly(model);
    const meta = model.get("_meta");
    const th = meta.theme;
    const stop = mwEl("button", { class: "mw-tv-stop", text: "■ Stop", title: "stop training after this epoch" });
    if (meta.exported) stop.style.display = "none";
    const status = mwEl("span", { class: "mw-tv-status" });
    const plot = mwEl("div", { class: "mw-tv-plot" });
    const root = mwEl("div", { class: "mw-tv" }, [
      mwEl("div", { class: "mw-tv-head", text: meta.title || "Training" }),
      mwEl("div", { class: "mw-tv-controls" }, [stop, status]), plot]);
    el.appendChild(root);
    const stats = { draws: 0 };
    el.__mwTrainingView = { stats, plot, redraw: () => draw() };
    let drawing = Promise.resolve();

    const draw = () => {
      drawing = drawing.then(async () => {
        const A = await mwDecodeAll(model.get("_arrays"));
        const n = A.epoch ? A.epoch.data.length : 0;
        const best = model.get("best_epoch");
        // models without diffusion report NaN: their (empty) diffusion panel is left out
        const withDiffusion = !!A.diffusion_time && A.diffusion_time.data.some(Number.isFinite);
        await Plotly.react(plot, tvTraces(A, th, withDiffusion), tvLayout(th, best, n, withDiffusion), { displaylogo: false, responsive: true });
        root.dataset.diffusion = String(withDiffusion);
        stats.draws += 1;
        root.dataset.epochs = String(n);
        root.dataset.best = String(best);
        el.dispatchEvent(new CustomEvent("mw-drawn", { detail: { epochs: n, best } }));
      }).catch((err) => console.error("[marble_widgets] TrainingView draw failed", err));
      return drawing;
    };
    const showStatus = () => {
      status.textContent = model.get("status") || "";
      const stopped = !!model.get("stop_requested");
      stop.disabled = stopped || !!model.get("finished");
      root.classList.toggle("mw-tv-stopped", stopped);
    };
    stop.addEventListener("click", () => {
      model.set("stop_requested", true);
      model.save_changes();
      showStatus();
      status.textContent = "stopping after this epoch…";
    });
    const onArrays = () => draw();
    model.on("change:_arrays", onArrays);
    model.on("change:best_epoch", onArrays);
    model.on("change:status", showStatus);
    model.on("change:stop_requested", showStatus);
    model.on("change:finished", showStatus);
    const ro = mwResizer(Plotly, [plot]);
    showStatus();
    await draw();
    root.dataset.ready = "true";
    return () => {
      ro.disconnect();
      model.off("change:_arrays", onArrays);
      model.off("change:best_epoch", onArrays);
      model.off("change:status", showStatus);
      model.off("change:stop_requested", showStatus);
      model.off("change:finished", showStatus);
      Plotly.purge(plot);
    };
  },
};
