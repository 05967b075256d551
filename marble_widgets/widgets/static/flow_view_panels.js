// FlowView's SVG panels (part of the one ES module flow_view.py builds): the local flow, the derivative
// features of the current sample and the behaviour of the current trajectory. Each is built once and
// then only moves or resizes a few SVG elements per step, so stepping and Play stay within a frame.

const ORDER_NAMES = { "-1": "position", 0: "v", 1: "∂v", 2: "∂²v", 3: "∂³v" };

// --- the local flow: neighbours' offsets from the point and their vectors -----------------------------
// In the ambient dims 0, 1 (flow field only) or, given MARBLE's results, in the sample's frame (its first
// two tangent directions): raw vectors projected on the frame next to the parallel-transported ones.
class LocalFlow {
  constructor(box, meta) {
    const th = meta.theme;
    const inFrame = meta.tangent_dims !== undefined;
    this.svg = sv("svg", { class: "mw-fv-localsvg", viewBox: "-1.2 -1.2 2.4 2.4", preserveAspectRatio: "xMidYMid meet" });
    const axis = { stroke: "#c8ccd2", "stroke-width": "1", "vector-effect": "non-scaling-stroke" };
    this.ring = sv("circle", { cx: "0", cy: "0", r: "1", fill: "none", stroke: "#e3e6ea", "stroke-width": "1", "vector-effect": "non-scaling-stroke" });
    const label = (x, y, text, anchor) => { const t = sv("text", { x, y, "font-size": "0.07", fill: th.subtle, "text-anchor": anchor }); t.textContent = text; return t; };
    this.radius = label("0.72", "-0.74", "", "start");
    this.vectors = sv("g", { stroke: th.muted, "stroke-width": "1.5", class: "mw-fv-raw" }); // vector-effect is not inherited
    this.transported = sv("g", { stroke: th.palette[1] || "#E69F00", "stroke-width": "1.8", class: "mw-fv-transported" });
    this.points = sv("g", { fill: th.palette[0] });
    this.vector = sv("line", { x1: "0", y1: "0", stroke: th.highlight, "stroke-width": "3", "vector-effect": "non-scaling-stroke" });
    const point = sv("path", { d: "M0,-0.06L0.06,0L0,0.06L-0.06,0Z", fill: th.highlight });
    const names = inFrame ? ["tangent 1", "tangent 2"] : [`Δ ${meta.dims[0]}`, `Δ ${meta.dims[1]}`];
    this.svg.append(sv("line", { x1: "-1.1", y1: "0", x2: "1.1", y2: "0", ...axis }), sv("line", { x1: "0", y1: "-1.1", x2: "0", y2: "1.1", ...axis }),
      this.ring, label("1.1", "0.1", names[0], "end"), label("0.04", "-1.08", names[1], "start"), this.radius,
      this.vectors, this.transported, this.points, this.vector, point);
    if (inFrame) {
      const key = (y, colour, text) => [sv("line", { x1: "-1.15", y1: y, x2: "-1.02", y2: y, stroke: colour, "stroke-width": "2", "vector-effect": "non-scaling-stroke" }),
        label("-1.0", String(Number(y) + 0.025), text, "start")];
      this.svg.append(...key("1.05", th.muted, "raw vectors (projected)"), ...key("1.14", th.palette[1] || "#E69F00", "transported vectors"));
    }
    box.appendChild(this.svg);
  }

  showTransported(on) {
    this.transported.style.display = on ? "" : "none";
  }

  // offsets and vectors in data units; drawn scaled so the farthest end touches the ring.
  // `moved`: [k] -> end of the transported vector of neighbour k (or null), `tvec`: its unscaled value.
  // Elements are reused between steps (Play redraws this every frame): spare ones are hidden.
  draw(offsets, ends, vec, neighbours, moved = null, tvec = null) {
    let r = Math.hypot(vec[0], vec[1]);
    for (let k = 0; k < offsets.length; k++) r = Math.max(r, Math.hypot(...offsets[k]), Math.hypot(...ends[k]));
    if (moved) for (const m of moved) if (m) r = Math.max(r, Math.hypot(...m));
    r = r > 0 ? r : 1;
    this.radius.textContent = `r = ${r.toPrecision(2)}`;
    const m = offsets.length;
    const lines = pool(this.vectors, "line", m, { "vector-effect": "non-scaling-stroke" });
    const dots = pool(this.points, "circle", m, { r: "0.035" });
    const tl = pool(this.transported, "line", m, { "vector-effect": "non-scaling-stroke" });
    offsets.forEach((o, k) => {
      showAttrs(lines[k], { x1: o[0] / r, y1: -o[1] / r, x2: ends[k][0] / r, y2: -ends[k][1] / r });
      showAttrs(dots[k], { cx: o[0] / r, cy: -o[1] / r, "data-sample": neighbours[k], "data-x": o[0], "data-y": o[1] });
      const t = moved && moved[k];
      if (t) showAttrs(tl[k], { x1: o[0] / r, y1: -o[1] / r, x2: t[0] / r, y2: -t[1] / r, "data-sample": neighbours[k],
                          "data-tx": tvec[k][0], "data-ty": tvec[k][1] });
      else hideMark(tl[k]);
    });
    for (const list of [lines, dots, tl]) for (let k = m; k < list.length; k++) hideMark(list[k]);
    this.vector.setAttribute("x2", vec[0] / r);
    this.vector.setAttribute("y2", -vec[1] / r);
    this.vector.setAttribute("data-x", String(vec[0]));
    this.vector.setAttribute("data-y", String(vec[1]));
  }
}

// the children of `group` (created with `attrs` until there are `m`), shown
function pool(group, tag, m, attrs) {
  while (group.children.length < m) group.appendChild(sv(tag, attrs));
  return Array.from(group.children);
}

function showAttrs(node, attrs) {
  node.removeAttribute("display");
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
}

// hidden and without data attributes (tests and scripts read only what is shown)
function hideMark(node) {
  node.setAttribute("display", "none");
  for (const k of ["data-sample", "data-x", "data-y", "data-tx", "data-ty"]) node.removeAttribute(k);
}

// --- derivative features of the current sample: one bar per feature, grouped by derivative order ------
// Drawn on a canvas: ~1000 bars are ~1000 fillRects (under a millisecond), where as many SVG rects cost
// ~15 ms of attribute writes plus their repaint every update. Hover names the bar under the pointer.
class FeaturesPanel {
  constructor(box, fmeta, theme, values) {
    this.values = values; // Float32Array (sample * feature)
    this.fmeta = fmeta;
    this.m = fmeta.names.length;
    this.scale = fmeta.scale;
    // bars grouped by order (positions first), stable within a group: the layout the coords describe
    this.slots = Int32Array.from(fmeta.order.map((o, j) => [o, j]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((p) => p[1]));
    this.groups = [];
    this.slots.forEach((j, s) => {
      const o = fmeta.order[j], last = this.groups[this.groups.length - 1];
      if (!last || last.order !== o) this.groups.push({ order: o, start: s, stop: s + 1, colour: o < 0 ? "#9aa1ab" : theme.palette[o % theme.palette.length] });
      else last.stop = s + 1;
    });
    this.canvas = h("canvas", { class: "mw-fv-featcanvas" });
    this.ctx = this.canvas.getContext("2d");
    this.heights = new Float32Array(this.m); // signed bar heights (CSS px, up positive) in slot order, as drawn
    this.shown = -1;
    const labels = h("div", { class: "mw-fv-featgroups" });
    for (const g of this.groups) {
      const cell = h("span", { text: `${ORDER_NAMES[g.order] ?? `order ${g.order}`} (${g.stop - g.start})` });
      cell.style.flex = String(g.stop - g.start);
      labels.appendChild(cell);
    }
    this.readout = h("div", { class: "mw-fv-featnote" });
    box.append(labels, this.canvas, this.readout);
    this.canvas.addEventListener("pointermove", (ev) => this.hover(ev));
    // the canvas' CSS size, from the observer: reading clientWidth in show() would force a layout of the
    // page in the middle of a step's DOM writes
    this.size = [0, 0];
    new ResizeObserver((entries) => {
      const box = entries[entries.length - 1].contentRect;
      this.size = [box.width, box.height];
      if (this.shown >= 0) this.show(this.shown);
    }).observe(this.canvas);
  }

  // feature j of bar slot s: name, order, component, direction and this sample's value (canvas title)
  hover(ev) {
    const rect = this.canvas.getBoundingClientRect();
    const s = Math.min(this.m - 1, Math.max(0, Math.floor(((ev.clientX - rect.left) / rect.width) * this.m)));
    const j = this.slots[s], f = this.fmeta, dir = f.direction[j] ? ` · ${f.direction[j]}` : "";
    const v = this.shown >= 0 ? this.values[this.shown * this.m + j] : NaN;
    this.canvas.title = `${f.names[j]} (order ${f.order[j]}, component ${f.component[j] + 1}${dir}) = ${v.toPrecision(4)}`;
    this.canvas.dataset.feature = f.names[j];
  }

  show(i) {
    this.shown = i;
    const c = this.canvas, dpr = globalThis.devicePixelRatio || 1;
    const [W, H] = this.size;
    if (!W || !H) return;
    if (c.width !== Math.round(W * dpr) || c.height !== Math.round(H * dpr)) { c.width = Math.round(W * dpr); c.height = Math.round(H * dpr); }
    const ctx = this.ctx, w = W / this.m, mid = H / 2, half = mid - 6, base = i * this.m, gap = this.m > 200 ? 0 : 0.15 * w;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    this.groups.forEach((g, k) => {
      if (k % 2) { ctx.fillStyle = "#f3f4f6"; ctx.fillRect(g.start * w, 0, (g.stop - g.start) * w, H); }
    });
    ctx.fillStyle = "#c8ccd2";
    ctx.fillRect(0, mid - 0.5, W, 1);
    for (const g of this.groups) {
      ctx.fillStyle = g.colour;
      for (let s = g.start; s < g.stop; s++) {
        const v = this.values[base + this.slots[s]];
        const hgt = Number.isFinite(v) ? Math.min(1, Math.abs(v) / this.scale) * half * Math.sign(v) : 0;
        this.heights[s] = hgt;
        if (hgt) ctx.fillRect(s * w + gap / 2, hgt > 0 ? mid - hgt : mid, Math.max(w - gap, 0.75), Math.abs(hgt));
      }
    }
    this.canvas.dataset.sample = String(i);
    this.readout.textContent = `sample ${i} · ${this.m} features fed to the MLP · bars to ±${this.scale.toPrecision(3)}`;
  }
}

// --- behaviour of the current trajectory over time, with a cursor at the current sample ----------------
class BehaviourPanel {
  constructor(box, A, order, offsets, theme) {
    this.A = A;
    this.order = order;
    this.offsets = offsets;
    this.ranges = {};
    this.svg = sv("svg", { class: "mw-fv-behavsvg", viewBox: "0 0 1000 100", preserveAspectRatio: "none" });
    this.line = sv("polyline", { fill: "none", stroke: theme.palette[0], "stroke-width": "2", "vector-effect": "non-scaling-stroke" });
    this.svg.append(this.line);
    // the cursor is a layer of its own moved by a transform (its left border at translateX(p %) of the
    // panel's width): a step moves it without repainting the trajectory's line (thousands of points)
    this.cursor = h("div", { class: "mw-fv-cursor" });
    this.cursor.style.borderLeftColor = theme.highlight;
    this.readout = h("div", { class: "mw-fv-behavnote" });
    box.append(h("div", { class: "mw-fv-behavplot" }, [this.svg, this.cursor]), this.readout);
    this.shown = null;
  }

  range(key) {
    if (!this.ranges[key]) {
      const v = this.A[`color:${key}`].data;
      let lo = Infinity, hi = -Infinity;
      for (let i = 0; i < v.length; i++) if (Number.isFinite(v[i])) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i]; }
      this.ranges[key] = hi > lo ? [lo, hi] : [lo - 1, lo + 1];
    }
    return this.ranges[key];
  }

  // trajectory t of sample i, variable `key` ("" = nothing numeric to show)
  show(key, t, i) {
    if (!key) {
      this.line.setAttribute("points", "");
      this.cursor.style.display = "none";
      this.readout.textContent = "no numeric per-sample variable to plot";
      return;
    }
    const values = this.A[`color:${key}`].data, time = this.A.time.data;
    const a = this.offsets[t], b = this.offsets[t + 1];
    const t0 = time[this.order[a]], t1 = time[this.order[b - 1]];
    const [lo, hi] = this.range(key);
    const px = (s) => (t1 > t0 ? ((time[s] - t0) / (t1 - t0)) * 1000 : 500);
    const py = (v) => 96 - ((v - lo) / (hi - lo)) * 92;
    if (!this.shown || this.shown[0] !== key || this.shown[1] !== t) {
      const pts = [];
      for (let p = a; p < b; p++) { const s = this.order[p]; if (Number.isFinite(values[s])) pts.push(`${px(s)},${py(values[s])}`); }
      this.line.setAttribute("points", pts.join(" "));
      this.line.setAttribute("data-key", key);
      this.line.setAttribute("data-n", String(b - a));
      this.shown = [key, t];
    }
    this.cursor.style.display = "";
    this.cursor.style.transform = `translateX(${px(i) / 10}%)`;
    Object.assign(this.cursor.dataset, { sample: String(i), time: String(time[i]), value: String(values[i]) });
    this.readout.textContent = `${key} = ${Number(values[i]).toPrecision(4)} at t = ${time[i].toPrecision(4)} s · range ${lo.toPrecision(3)} … ${hi.toPrecision(3)}`;
  }
}
