// FlowView's 3-D state scene (part of the one ES module flow_view.py builds from ESM_PARTS).
// Why: plotly's scatter3d restyles and redraws its whole gl3d scene on any change (130-170 ms a step
// with software GL). Here the cloud is splatted once per camera (or colour, selection, size) into an
// ImageData with a depth buffer (nearer points win), the axis box, grid, ticks and colour bar are drawn
// on a canvas beneath it, and a step only moves a few SVG marks (point, neighbours, trail) over both.
//
// Projection (orthographic, turntable camera {azimuth θ, elevation φ, zoom}), in CSS px of the scene box:
//   u_d = (x_d - mid_d) / half_d       (mid, half: the data's centre and 0.55 x its range per dim)
//   a = cos θ u0 - sin θ u1,  b = sin θ u0 + cos θ u1
//   px = cx + S a,  py = cy - S (sin φ b + cos φ u2),  depth = cos φ b - sin φ u2  (smaller: nearer)
//   S = zoom * min(w, h) / (2 * SCENE_FIT), cx = w / 2, cy = h / 2, w = box width less the colour bar's room.

const SCENE_HALF = 0.55;
const SCENE_FIT = 1.9;
const SCENE_CAMERA = Object.freeze({ azimuth: -0.65, elevation: 0.42, zoom: 1 });
const SCENE_BAR_ROOM = 78; // CSS px kept on the right for the colour bar
const SCENE_DRAG_RAD_PER_PX = 0.008;

// about `count` round tick values inside [lo, hi]
function niceTicks(lo, hi, count = 4) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

const tickText = (v) => (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(1) : String(+v.toPrecision(4)));

// The 3-D state panel inside `box`: `flat` holds n x 3 positions; setColours / setSelection / setCamera redraw the
// cloud (once per animation frame), place(i, nbs, trail) moves the marks only, pick(x, y) finds a clicked sample.
class Scene3D {
  constructor(box, flat, n, meta, onPick) {
    this.box = box;
    this.flat = flat;
    this.n = n;
    this.meta = meta;
    this.theme = meta.theme;
    this.size = n <= 20000 ? 4 : n <= 200000 ? 3 : 2;
    this.selRGB = parseColor(this.theme.selection);
    this.camera = { ...SCENE_CAMERA };
    this.selected = new Uint32Array(0);
    this.nSel = 0;
    this.colours = null;
    this.bar = null; // {key, spec} of the colour bar drawn, or null
    this.splats = 0; // full draws of the cloud (per camera, colour, selection or size)
    this.drawMs = 0;
    this.queued = null;
    this.shown = null;
    this.bounds(flat, n);
    box.classList.add("mw-fv-scene");
    this.axes = h("canvas", { class: "mw-fv-scene-axes" });
    this.canvas = h("canvas", { class: "mw-fv-scene-cloud" });
    this.ctx = this.canvas.getContext("2d");
    this.marks = new SceneMarks(this.theme, onPick);
    box.append(this.axes, this.canvas, this.marks.svg);
    this.listen(onPick);
    this.resize();
  }

  bounds(flat, n) {
    this.mid = [0, 0, 0];
    this.half = [1, 1, 1];
    this.range = [];
    for (let d = 0; d < 3; d++) {
      let lo = Infinity, hi = -Infinity;
      for (let i = 0; i < n; i++) { const v = flat[i * 3 + d]; if (v < lo) lo = v; if (v > hi) hi = v; }
      this.mid[d] = (lo + hi) / 2;
      this.half[d] = SCENE_HALF * (hi - lo) || 1;
      this.range.push([this.mid[d] - this.half[d], this.mid[d] + this.half[d]]);
    }
  }

  // the linear map data -> (px, py, depth) of the current camera and box: {o: [3], m: [3][3]}
  projector() {
    const { azimuth: t, elevation: p, zoom } = this.camera;
    const w = this.w - (this.bar ? SCENE_BAR_ROOM : 0), S = (zoom * Math.min(w, this.h)) / (2 * SCENE_FIT);
    const ct = Math.cos(t), st = Math.sin(t), cp = Math.cos(p), sp = Math.sin(p);
    const rows = [[S * ct, -S * st, 0], [-S * sp * st, -S * sp * ct, -S * cp], [cp * st, cp * ct, -sp]];
    const m = rows.map((r) => r.map((c, d) => c / this.half[d]));
    const o = [w / 2, this.h / 2, 0].map((c, k) => c - m[k].reduce((acc, v, d) => acc + v * this.mid[d], 0));
    return { o, m, S };
  }

  // (px, py, depth) of data point `x` (3 numbers) in CSS px of the box
  projectPoint(x, P = this.projector()) {
    return P.m.map((r, k) => P.o[k] + r[0] * x[0] + r[1] * x[1] + r[2] * x[2]);
  }

  project(i, P) {
    const f = this.flat;
    return this.projectPoint([f[i * 3], f[i * 3 + 1], f[i * 3 + 2]], P);
  }

  resize() {
    const w = this.box.clientWidth, hgt = this.box.clientHeight;
    if (!w || !hgt || (w === this.w && hgt === this.h)) return this.request();
    const dpr = globalThis.devicePixelRatio || 1;
    this.w = w;
    this.h = hgt;
    for (const c of [this.axes, this.canvas]) { c.width = Math.round(w * dpr); c.height = Math.round(hgt * dpr); }
    this.image = this.ctx.createImageData(this.canvas.width, this.canvas.height);
    this.pixels = new Uint32Array(this.image.data.buffer);
    this.depth = new Float32Array(this.pixels.length);
    return this.request();
  }

  setColours(rgba, bar = null) {
    this.colours = rgba;
    this.words = new Uint32Array(rgba.buffer, rgba.byteOffset, this.n);
    this.bar = bar;
    return this.request();
  }

  setSelection(idx) {
    this.selected = Uint32Array.from(idx);
    this.nSel = idx.length;
    return this.request();
  }

  setCamera(cam) {
    Object.assign(this.camera, cam);
    this.camera.elevation = Math.max(-1.55, Math.min(1.55, this.camera.elevation));
    this.camera.zoom = Math.max(0.2, Math.min(20, this.camera.zoom));
    return this.request();
  }

  // one full draw per animation frame (camera, colours, selection and size changes coalesce)
  request() {
    if (!this.queued) {
      this.queued = new Promise((resolve) => requestAnimationFrame(() => {
        this.queued = null;
        if (this.w && this.colours) this.full();
        resolve();
      }));
    }
    return this.queued;
  }

  full() {
    const t0 = performance.now();
    const P = this.projector();
    this.P = P;
    drawSceneAxes(this, P);
    this.splatAll(P);
    if (this.shown) this.marks.place(this, ...this.shown);
    this.splats += 1;
    this.drawMs = performance.now() - t0;
  }

  // every point projected once (kept for picking), splatted into the ImageData with a depth test
  splatAll(P) {
    const n = this.n, f = this.flat, dpr = globalThis.devicePixelRatio || 1;
    const X = (this.px = this.px && this.px.length === n ? this.px : new Float32Array(n));
    const Y = (this.py = this.py && this.py.length === n ? this.py : new Float32Array(n));
    const Z = (this.pz = this.pz && this.pz.length === n ? this.pz : new Float32Array(n));
    const [mx, my, mz] = P.m, [ox, oy, oz] = P.o;
    for (let i = 0, o = 0; i < n; i++, o += 3) {
      const a = f[o], b = f[o + 1], c = f[o + 2];
      X[i] = ox + mx[0] * a + mx[1] * b + mx[2] * c;
      Y[i] = oy + my[0] * a + my[1] * b + my[2] * c;
      Z[i] = oz + mz[0] * a + mz[1] * b + mz[2] * c;
    }
    this.pixels.fill(0);
    this.depth.fill(Infinity);
    const words = this.nSel ? CpuPoints.prototype.fadedWords.call(this) : this.words;
    this.splat(null, words, 0, this.size, dpr, 0);
    if (this.nSel) {
      const [r, g, b] = this.selRGB;
      this.splat(this.selected, null, ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0, this.size + 2, dpr, -10); // in front of every faded point (|depth| <= √3)
    }
    this.ctx.putImageData(this.image, 0, 0);
  }

  // round splats of `side` CSS px at the projected points (`idx` or all); a pixel keeps the nearest point
  splat(idx, words, word, side, dpr, bias) {
    const W = this.canvas.width, H = this.canvas.height, px = this.pixels, zb = this.depth;
    const s = Math.max(1, Math.round(side * dpr)), half = s / 2, r2 = half * half + 0.25;
    const mask = [];
    for (let y = 0; y < s; y++) for (let x = 0; x < s; x++) if ((x + 0.5 - half) ** 2 + (y + 0.5 - half) ** 2 <= r2) mask.push([x, y]);
    const offs = mask.map(([x, y]) => y * W + x), mx = mask.map((m) => m[0]), my = mask.map((m) => m[1]);
    const X = this.px, Y = this.py, Z = this.pz, count = idx ? idx.length : this.n, F = 1 << 20;
    for (let k = 0; k < count; k++) {
      const i = idx ? idx[k] : k;
      const cx = ((X[i] * dpr - half + 0.5 + F) | 0) - F, cy = ((Y[i] * dpr - half + 0.5 + F) | 0) - F;
      if (cx <= -s || cy <= -s || cx >= W || cy >= H) continue;
      const z = Z[i] + bias, c = words ? words[i] : word, base = cy * W + cx;
      const inside = cx >= 0 && cy >= 0 && cx + s <= W && cy + s <= H;
      for (let m = 0; m < offs.length; m++) {
        if (!inside) { const x = cx + mx[m], y = cy + my[m]; if (x < 0 || y < 0 || x >= W || y >= H) continue; }
        const q = base + offs[m];
        if (z < zb[q]) { zb[q] = z; px[q] = c; }
      }
    }
  }

  // the sample whose projection is nearest to page point (cx, cy) within `radius` CSS px (nearer in depth
  // on a tie), or -1
  pick(cx, cy, radius = 8) {
    if (!this.px) return -1;
    const rect = this.canvas.getBoundingClientRect(), dx = cx - rect.left, dy = cy - rect.top;
    let best = -1, bestD = radius * radius + 1e-9, bestZ = Infinity;
    for (let i = 0; i < this.n; i++) {
      const ex = this.px[i] - dx, ey = this.py[i] - dy, d = ex * ex + ey * ey;
      if (d < bestD - 1e-6 || (d <= bestD + 1e-6 && this.pz[i] < bestZ)) { bestD = d; best = i; bestZ = this.pz[i]; }
    }
    return best;
  }

  place(i, nbs, trail) {
    this.shown = [i, nbs, trail];
    if (this.P) this.marks.place(this, i, nbs, trail);
  }

  // drag: turntable rotation; wheel: zoom; double-click: the default camera; click: the nearest point
  listen(onPick) {
    let down = null;
    this.box.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0 || (ev.target.closest && ev.target.closest(".mw-fv-marks circle, .mw-fv-marks .mw-fv-current"))) return;
      down = { x: ev.clientX, y: ev.clientY, cam: { ...this.camera }, moved: false };
      try { this.box.setPointerCapture(ev.pointerId); } catch { /* a synthetic event: no capture needed */ }
    });
    this.box.addEventListener("pointermove", (ev) => {
      if (!down) return;
      const dx = ev.clientX - down.x, dy = ev.clientY - down.y;
      if (!down.moved && Math.hypot(dx, dy) <= 3) return;
      down.moved = true;
      this.setCamera({ azimuth: down.cam.azimuth + dx * SCENE_DRAG_RAD_PER_PX,
                       elevation: down.cam.elevation + dy * SCENE_DRAG_RAD_PER_PX });
    });
    const up = (ev) => {
      if (!down) return;
      const moved = down.moved;
      down = null;
      if (!moved) { const s = this.pick(ev.clientX, ev.clientY); if (s >= 0) onPick(s); }
    };
    this.box.addEventListener("pointerup", up);
    this.box.addEventListener("pointercancel", () => { down = null; });
    this.box.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      this.setCamera({ zoom: this.camera.zoom * Math.exp(-ev.deltaY * 0.0015) });
    }, { passive: false });
    this.box.addEventListener("dblclick", () => this.setCamera({ ...SCENE_CAMERA }));
  }

  dispose() {
    this.box.replaceChildren();
  }
}

// the point, its neighbours and the trail over the scene: SVG marks moved on a step (no cloud redraw)
class SceneMarks extends MarksSvg {
  constructor(theme, onPick) {
    super("mw-fv-marks mw-fv-scene-marks", theme, onPick, { radius: 4.5, trailOpacity: 0.8 });
  }

  place(scene, i, nbs, trail) {
    const P = scene.P;
    const [x, y] = this.draw((j) => scene.project(j, P), i, nbs, trail);
    this.current.setAttribute("data-px", `${x},${y}`);
  }
}

// --- the axis box beneath the cloud: back walls with grid lines, edges, ticks, dims' names, colour bar ---
function drawSceneAxes(scene, P) {
  const ctx = scene.axes.getContext("2d"), dpr = globalThis.devicePixelRatio || 1, th = scene.theme;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, scene.w, scene.h);
  const at = (u) => scene.projectPoint(u.map((s, d) => scene.mid[d] + s * scene.half[d]), P); // unit cube -> px
  const unit = (d, v) => (v - scene.mid[d]) / scene.half[d];
  const ticks = scene.range.map(([lo, hi], d) => niceTicks(lo, hi).filter((v) => Math.abs(unit(d, v)) <= 1));
  const line = (p, q) => { ctx.moveTo(p[0], p[1]); ctx.lineTo(q[0], q[1]); };
  const centre = at([0, 0, 0]);
  for (let k = 0; k < 3; k++) { // the wall of axis k farther from the viewer
    const e = [0, 0, 0];
    e[k] = 1;
    const s = at(e)[2] > at(e.map((v) => -v))[2] ? 1 : -1;
    const [d1, d2] = [0, 1, 2].filter((d) => d !== k);
    const corner = (a, b) => { const u = [0, 0, 0]; u[k] = s; u[d1] = a; u[d2] = b; return at(u); };
    ctx.beginPath();
    [corner(-1, -1), corner(1, -1), corner(1, 1), corner(-1, 1)].forEach((p, j) => (j ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
    ctx.closePath();
    ctx.fillStyle = "#f6f7f9";
    ctx.fill();
    ctx.beginPath();
    for (const v of ticks[d1]) line(corner(unit(d1, v), -1), corner(unit(d1, v), 1));
    for (const v of ticks[d2]) line(corner(-1, unit(d2, v)), corner(1, unit(d2, v)));
    ctx.strokeStyle = "#e1e4e8";
    ctx.lineWidth = 1;
    ctx.stroke();
  }
  ctx.beginPath();
  for (let d = 0; d < 3; d++) for (const a of [-1, 1]) for (const b of [-1, 1]) line(...edge(d, a, b, -1, 1).map(at));
  ctx.strokeStyle = "#c8ccd2";
  ctx.stroke();
  ctx.font = `11px ${th.font}`;
  ctx.fillStyle = th.ink;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  for (let d = 0; d < 3; d++) drawAxisLabels(ctx, d, scene, at, unit, ticks[d], centre);
  if (scene.bar) drawColourBar(ctx, scene, th);
  ctx.fillStyle = th.subtle;
  ctx.textAlign = "left";
  ctx.font = `10px ${th.font}`;
  ctx.fillText("drag: rotate · wheel: zoom · double-click: reset", 4, scene.h - 8);
}

// the two ends (unit-cube coords) of the box edge along dim d at the other dims' signs a, b, from u0 to u1
function edge(d, a, b, u0, u1) {
  const [d1, d2] = [0, 1, 2].filter((k) => k !== d);
  return [u0, u1].map((v) => { const u = [0, 0, 0]; u[d] = v; u[d1] = a; u[d2] = b; return u; });
}

// ticks and name of dim d along the box edge that lies lowest (a horizontal-ish axis) or leftmost on screen
function drawAxisLabels(ctx, d, scene, at, unit, ticks, centre) {
  const dir = ((p, q) => [q[0] - p[0], q[1] - p[1]])(at(edge(d, 1, 1, -1, 1)[0]), at(edge(d, 1, 1, -1, 1)[1]));
  const flat = Math.abs(dir[0]) >= Math.abs(dir[1]);
  let best = null;
  for (const a of [-1, 1]) for (const b of [-1, 1]) {
    const [p, q] = edge(d, a, b, -1, 1).map(at);
    const score = flat ? (p[1] + q[1]) / 2 : -(p[0] + q[0]) / 2;
    if (!best || score > best.score) best = { score, a, b, mid: [(p[0] + q[0]) / 2, (p[1] + q[1]) / 2] };
  }
  let ox = best.mid[0] - centre[0], oy = best.mid[1] - centre[1];
  const len = Math.hypot(ox, oy) || 1;
  ox /= len;
  oy /= len;
  for (const v of ticks) {
    const p = at(edge(d, best.a, best.b, unit(d, v), 0)[0]);
    ctx.fillText(tickText(v), p[0] + 13 * ox, p[1] + 13 * oy);
  }
  ctx.save();
  ctx.font = `600 12px ${scene.theme.font}`;
  ctx.fillText(scene.meta.dims[d], best.mid[0] + 32 * ox, best.mid[1] + 32 * oy);
  ctx.restore();
}

// the colour key's scale on the right: gradient (linear in RGB, as plotly), ticks and title
function drawColourBar(ctx, scene, th) {
  const spec = scene.bar.spec, cb = spec.colorbar || {};
  const x = scene.w - SCENE_BAR_ROOM + 16, y0 = scene.h * 0.14, y1 = scene.h * 0.86, span = spec.cmax - spec.cmin || 1;
  const grad = ctx.createLinearGradient(0, y1, 0, y0);
  for (const [t, colour] of spec.colorscale) grad.addColorStop(Number(t), colour);
  ctx.fillStyle = grad;
  ctx.fillRect(x, y0, 10, y1 - y0);
  ctx.strokeStyle = "#c8ccd2";
  ctx.strokeRect(x, y0, 10, y1 - y0);
  const vals = cb.tickvals || niceTicks(spec.cmin, spec.cmax, 4);
  const texts = cb.ticktext || vals.map(tickText);
  ctx.fillStyle = th.ink;
  ctx.textAlign = "left";
  vals.forEach((v, k) => {
    if (v < spec.cmin - 1e-9 * span || v > spec.cmax + 1e-9 * span) return;
    ctx.fillText(String(texts[k]), x + 15, y1 - ((v - spec.cmin) / span) * (y1 - y0));
  });
  const title = (cb.title && (cb.title.text || cb.title)) || scene.bar.key;
  ctx.fillText(String(title), x - 6, y0 - 14);
}
