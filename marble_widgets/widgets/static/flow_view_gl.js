// FlowView's point layer (part of the one ES module flow_view.py builds from ESM_PARTS). Why: a plotly restyle of a 10^5-point scattergl cloud costs
// 100+ ms and plotly cannot pan 10^6 points smoothly with software GL. Here each 2-D cloud is one
// canvas over plotly's (empty) plot area: recolour swaps one RGBA array (cached per key), a selection
// one index array, pan/zoom only the axis ranges. Two backends: WebGL on a GPU (positions uploaded
// once), and a CPU splat into an ImageData where WebGL is software-rendered (SwiftShader costs
// ~1-3 us per point primitive). plotly still draws the axes, colour bar and selection box.

const GL_VERT = `
attribute vec2 a_pos;
attribute vec4 a_color;
uniform vec2 u_scale;
uniform vec2 u_offset;
uniform float u_size;
uniform float u_fade;
uniform vec4 u_override;
varying vec4 v_color;
void main() {
  gl_Position = vec4(a_pos * u_scale + u_offset, 0.0, 1.0);
  gl_PointSize = u_size;
  vec4 c = u_override.a > 0.0 ? u_override : a_color;
  v_color = vec4(mix(c.rgb, vec3(0.8), u_fade), c.a * (1.0 - 0.7 * u_fade));
}`;

const GL_FRAG = `
precision mediump float;
varying vec4 v_color;
void main() {
  vec2 d = gl_PointCoord - 0.5;
  if (dot(d, d) > 0.25) discard;
  gl_FragColor = vec4(v_color.rgb * v_color.a, v_color.a);
}`;

// a layer whose full draw took longer (ms) follows a drag by moving its last image (PointsBase.shift)
const SHIFT_ABOVE_MS = 8;

// --- colours: values -> RGBA bytes with the same linear-in-RGB interpolation plotly uses ---------------
function parseColor(text) {
  const s = String(text).trim();
  if (s[0] === "#") {
    const hex = s.length === 4 ? s.slice(1).split("").map((c) => c + c).join("") : s.slice(1, 7);
    return [0, 2, 4].map((k) => parseInt(hex.slice(k, k + 2), 16));
  }
  const m = s.match(/rgba?\(([^)]+)\)/);
  if (m) return m[1].split(",").slice(0, 3).map((v) => Number(v));
  throw new Error(`[marble_widgets] cannot read colour ${text}`);
}

// RGBA bytes (n * 4) of `values` on plotly colour scale `stops` ([[t, colour], ...]) over [cmin, cmax]
function colourBytes(values, stops, cmin, cmax, alpha) {
  const ts = stops.map((s) => Number(s[0]));
  const cs = stops.map((s) => parseColor(s[1]));
  const n = values.length;
  const out = new Uint8Array(n * 4);
  const span = cmax - cmin || 1;
  const a = Math.round(alpha * 255);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    const o = i * 4;
    if (!Number.isFinite(v)) { out[o] = out[o + 1] = out[o + 2] = 200; out[o + 3] = a; continue; }
    const t = Math.min(1, Math.max(0, (v - cmin) / span));
    let k = 0;
    while (k < ts.length - 2 && t > ts[k + 1]) k++;
    const w = ts[k + 1] > ts[k] ? (t - ts[k]) / (ts[k + 1] - ts[k]) : 0;
    for (let c = 0; c < 3; c++) out[o + c] = Math.round(cs[k][c] + w * (cs[k + 1][c] - cs[k][c]));
    out[o + 3] = a;
  }
  return out;
}

function flatBytes(n, colour, alpha) {
  const [r, g, b] = parseColor(colour);
  const out = new Uint8Array(n * 4);
  const a = Math.round(alpha * 255);
  for (let o = 0; o < out.length; o += 4) { out[o] = r; out[o + 1] = g; out[o + 2] = b; out[o + 3] = a; }
  return out;
}

function dataBounds(flat, stride, n) {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = flat[i * stride], y = flat[i * stride + 1];
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  const pad = (a, b) => { const d = (b - a) * 0.05 || 1; return [a - d, b + d]; };
  return { x: pad(x0, x1), y: pad(y0, y1) };
}

function glProgram(gl) {
  const shader = (type, src) => {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(`[marble_widgets] shader: ${gl.getShaderInfoLog(s)}`);
    return s;
  };
  const prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER, GL_VERT));
  gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, GL_FRAG));
  gl.linkProgram(prog);
  if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(`[marble_widgets] program: ${gl.getProgramInfoLog(prog)}`);
  return prog;
}

// Points (`flat`, `stride` floats per sample, first two drawn) over the plot area of plotly plot `gd`:
// what both drawing backends share (canvas placement from plotly's layout, picking, box/lasso tests).
class PointsBase {
  constructor(gd, wrap, flat, stride, n, theme) {
    this.gd = gd;
    this.n = n;
    this.flat = flat;
    this.stride = stride;
    this.size = n <= 20000 ? 5 : n <= 200000 ? 3 : 2;
    this.selRGB = parseColor(theme.selection);
    this.canvas = document.createElement("canvas");
    this.canvas.className = "mw-fv-gl";
    wrap.insertBefore(this.canvas, wrap.children[1] || null);
    this.nSel = 0;
    this.selected = new Uint32Array(0);
    this.draws = 0; // frames the layer drew: full draws (splats) plus shifted images while dragging (shifts)
    this.splats = 0;
    this.shifts = 0;
    this.drawMs = 0;
    this.queued = null;
    this.ranges = null;
    this.colours = null;
  }

  setSelection(idx) {
    this.live = false; // new content: a full draw, never a shifted old image
    this.selected = Uint32Array.from(idx);
    this.nSel = idx.length;
    return this.request();
  }

  // plot area (CSS px, relative to the wrap) and axis ranges from plotly's layout. `live`: during a drag
  // (plotly_relayouting); a layer whose full draw is slow then moves its last image instead (see shift).
  refresh(live = false) {
    const fl = this.gd._fullLayout;
    if (!fl || !fl._size || !fl.xaxis || !fl.yaxis) return;
    const s = fl._size;
    const left = this.gd.offsetLeft + s.l, top = this.gd.offsetTop + s.t;
    const dpr = globalThis.devicePixelRatio || 1;
    this.live = live;
    if (this.box?.w !== s.w || this.box?.h !== s.h || this.box?.left !== left || this.box?.top !== top) {
      this.box = { left, top, w: s.w, h: s.h };
      Object.assign(this.canvas.style, { left: `${left}px`, top: `${top}px`, width: `${s.w}px`, height: `${s.h}px` });
      this.canvas.width = Math.max(1, Math.round(s.w * dpr));
      this.canvas.height = Math.max(1, Math.round(s.h * dpr));
      this.live = false;
      this.resized();
    }
    this.ranges = { x: fl.xaxis.range.map(Number), y: fl.yaxis.range.map(Number) };
    return this.request();
  }

  resized() {}

  // one draw per animation frame: the full cloud, or while a slow layer is dragged its last image shifted
  request() {
    if (!this.queued) {
      this.queued = new Promise((resolve) => requestAnimationFrame(() => {
        this.queued = null;
        if (this.ranges && this.colours) {
          if (this.live && this.drawnRanges && this.drawMs > SHIFT_ABOVE_MS) this.shift();
          else this.full();
          this.draws += 1;
        }
        resolve();
      }));
    }
    return this.queued;
  }

  full() {
    const t0 = performance.now();
    this.draw();
    this.drawMs = performance.now() - t0;
    this.drawnRanges = { x: [...this.ranges.x], y: [...this.ranges.y] };
    this.splats += 1;
    if (this.shifted) { this.canvas.style.transform = ""; this.canvas.style.clipPath = ""; this.shifted = false; }
  }

  // Why: splatting 10^6 points costs ~25-40 ms a frame on the CPU, too slow to follow a drag at 30 frames/s.
  // While dragging, the image of the last full draw is moved and scaled by a CSS transform from its
  // ranges to the current ones (clipped to the plot area; points that were outside it appear on release,
  // when plotly_relayout draws the full cloud again).
  shift() {
    const a = this.drawnRanges, r = this.ranges, w = this.box.w, hgt = this.box.h;
    const sx = (a.x[1] - a.x[0]) / (r.x[1] - r.x[0]), sy = (a.y[1] - a.y[0]) / (r.y[1] - r.y[0]);
    const tx = ((a.x[0] - r.x[0]) / (r.x[1] - r.x[0])) * w, ty = ((r.y[1] - a.y[1]) / (r.y[1] - r.y[0])) * hgt;
    // the plot area [0, w] x [0, h] in the canvas' own (untransformed) px: what stays visible
    const l = Math.max(0, -tx / sx), t = Math.max(0, -ty / sy);
    const rr = Math.max(0, w - (w - tx) / sx), b = Math.max(0, hgt - (hgt - ty) / sy);
    Object.assign(this.canvas.style, { transformOrigin: "0 0", transform: `matrix(${sx},0,0,${sy},${tx},${ty})`,
                                       clipPath: `inset(${t}px ${rr}px ${b}px ${l}px)` });
    this.shifted = true;
    this.shifts += 1;
  }

  // data -> CSS px inside the plot area
  transform() {
    const r = this.ranges, b = this.box;
    return { x0: r.x[0], sx: b.w / (r.x[1] - r.x[0]), y1: r.y[1], sy: b.h / (r.y[1] - r.y[0]) };
  }

  // the sample nearest to page point (cx, cy) within `radius` CSS px, or -1
  pick(cx, cy, radius = 8) {
    if (!this.ranges || !this.box) return -1;
    const rect = this.canvas.getBoundingClientRect();
    const f = this.transform();
    const dx = cx - rect.left, dy = cy - rect.top;
    const flat = this.flat, st = this.stride;
    let best = -1, bestD = radius * radius;
    for (let i = 0; i < this.n; i++) {
      const px = (flat[i * st] - f.x0) * f.sx - dx, py = (f.y1 - flat[i * st + 1]) * f.sy - dy;
      const d = px * px + py * py;
      if (d < bestD) { bestD = d; best = i; }
    }
    return best;
  }

  // samples inside a box (data units) or a lasso polygon (xs, ys in data units)
  inBox(x0, x1, y0, y1) {
    const out = new Int32Array(this.n);
    const flat = this.flat, st = this.stride;
    let m = 0;
    for (let i = 0; i < this.n; i++) {
      const x = flat[i * st], y = flat[i * st + 1];
      if (x >= x0 && x <= x1 && y >= y0 && y <= y1) out[m++] = i;
    }
    return out.slice(0, m);
  }

  inLasso(xs, ys) {
    const bx = [Math.min(...xs), Math.max(...xs)], by = [Math.min(...ys), Math.max(...ys)];
    const out = [];
    const flat = this.flat, st = this.stride, m = xs.length;
    for (let i = 0; i < this.n; i++) {
      const x = flat[i * st], y = flat[i * st + 1];
      if (x < bx[0] || x > bx[1] || y < by[0] || y > by[1]) continue;
      let inside = false;
      for (let a = 0, b = m - 1; a < m; b = a++) {
        if ((ys[a] > y) !== (ys[b] > y) && x < ((xs[b] - xs[a]) * (y - ys[a])) / (ys[b] - ys[a]) + xs[a]) inside = !inside;
      }
      if (inside) out.push(i);
    }
    return Int32Array.from(out);
  }

  dispose() {
    this.canvas.remove();
  }
}

// WebGL backend: positions on the GPU once; pan/zoom change two uniforms, recolour one buffer.
class GlPoints extends PointsBase {
  constructor(gd, wrap, flat, stride, n, theme, gl) {
    super(gd, wrap, flat, stride, n, theme);
    this.backend = "webgl";
    this.canvas.replaceWith(gl.canvas);
    this.canvas = gl.canvas;
    this.canvas.className = "mw-fv-gl";
    this.gl = gl;
    if (!(globalThis.WebGL2RenderingContext && gl instanceof WebGL2RenderingContext)) gl.getExtension("OES_element_index_uint");
    this.prog = glProgram(gl);
    this.loc = { pos: gl.getAttribLocation(this.prog, "a_pos"), color: gl.getAttribLocation(this.prog, "a_color") };
    for (const u of ["u_scale", "u_offset", "u_size", "u_fade", "u_override"]) this.loc[u] = gl.getUniformLocation(this.prog, u);
    this.posBuf = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.posBuf);
    gl.bufferData(gl.ARRAY_BUFFER, flat.subarray(0, n * stride), gl.STATIC_DRAW);
    this.colBuf = gl.createBuffer();
    this.selBuf = gl.createBuffer();
  }

  setColours(rgba) {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.colBuf);
    gl.bufferData(gl.ARRAY_BUFFER, rgba, gl.STATIC_DRAW);
    this.colours = rgba;
    this.live = false;
    return this.request();
  }

  setSelection(idx) {
    const gl = this.gl;
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, this.selBuf);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, Uint32Array.from(idx), gl.STATIC_DRAW);
    return super.setSelection(idx);
  }

  draw() {
    const gl = this.gl, r = this.ranges;
    const dpr = globalThis.devicePixelRatio || 1;
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.useProgram(this.prog);
    const sx = 2 / (r.x[1] - r.x[0]), sy = 2 / (r.y[1] - r.y[0]);
    gl.uniform2f(this.loc.u_scale, sx, sy);
    gl.uniform2f(this.loc.u_offset, -1 - r.x[0] * sx, -1 - r.y[0] * sy);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.posBuf);
    gl.enableVertexAttribArray(this.loc.pos);
    gl.vertexAttribPointer(this.loc.pos, 2, gl.FLOAT, false, this.stride * 4, 0);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.colBuf);
    gl.enableVertexAttribArray(this.loc.color);
    gl.vertexAttribPointer(this.loc.color, 4, gl.UNSIGNED_BYTE, true, 0, 0);
    gl.uniform1f(this.loc.u_size, this.size * dpr);
    gl.uniform1f(this.loc.u_fade, this.nSel ? 0.6 : 0);
    gl.uniform4f(this.loc.u_override, 0, 0, 0, 0);
    gl.drawArrays(gl.POINTS, 0, this.n);
    if (this.nSel) {
      gl.uniform1f(this.loc.u_size, (this.size + 2) * dpr);
      gl.uniform1f(this.loc.u_fade, 0);
      gl.uniform4f(this.loc.u_override, ...this.selRGB.map((c) => c / 255), 1);
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, this.selBuf);
      gl.drawElements(gl.POINTS, this.nSel, gl.UNSIGNED_INT, 0);
    }
  }

  dispose() {
    const ext = this.gl.getExtension("WEBGL_lose_context");
    if (ext) ext.loseContext();
    super.dispose();
  }
}

const FADED = new WeakMap(); // colour array -> its faded words (shared by the views of a page)

// CPU backend: square splats written into an ImageData (no blending: the last point drawn wins).
// Why: with software GL (SwiftShader, as on CI and many Binder hosts) every point costs ~1-3 us of
// primitive setup (10^5 points ~ 270 ms a frame); a typed-array loop splats 10^6 points in ~20 ms.
class CpuPoints extends PointsBase {
  constructor(gd, wrap, flat, stride, n, theme) {
    super(gd, wrap, flat, stride, n, theme);
    this.backend = "cpu";
    this.ctx = this.canvas.getContext("2d");
  }

  resized() {
    this.image = this.ctx.createImageData(this.canvas.width, this.canvas.height);
    this.pixels = new Uint32Array(this.image.data.buffer);
  }

  setColours(rgba) {
    this.colours = rgba;
    this.live = false;
    this.words = new Uint32Array(rgba.buffer, rgba.byteOffset, this.n); // little-endian ABGR words
    return this.request();
  }

  // faded colours (60 % towards light grey, alpha x 0.58, as the GL shader), made once per colour array
  fadedWords() {
    const rgba = this.colours;
    if (!FADED.has(rgba)) {
      const n = this.n, out = new Uint32Array(n);
      for (let i = 0, o = 0; i < n; i++, o += 4) {
        out[i] = (((rgba[o + 3] * 0.58) << 24) | (((0.4 * rgba[o + 2] + 122.4) | 0) << 16)
                  | (((0.4 * rgba[o + 1] + 122.4) | 0) << 8) | ((0.4 * rgba[o] + 122.4) | 0)) >>> 0;
      }
      FADED.set(rgba, out);
    }
    return FADED.get(rgba);
  }

  splat(idx, words, word, size) {
    const W = this.canvas.width, H = this.canvas.height, px = this.pixels;
    const r = this.ranges, dpr = globalThis.devicePixelRatio || 1;
    const side = Math.max(1, Math.round(size * dpr)), half = side / 2;
    const sx = W / (r.x[1] - r.x[0]), sy = H / (r.y[1] - r.y[0]);
    const ox = -r.x[0] * sx - half + 0.5, oy = r.y[1] * sy - half + 0.5; // +0.5: floor rounds
    const flat = this.flat, st = this.stride, xmax = W - side, ymax = H - side;
    const count = idx ? idx.length : this.n;
    const F = 1 << 20; // floor(v) as ((v + F) | 0) - F for v > -F: no Math.floor call per point
    for (let k = 0; k < count; k++) {
      const i = idx ? idx[k] : k;
      const cx = ((flat[i * st] * sx + ox + F) | 0) - F, cy = ((oy - flat[i * st + 1] * sy + F) | 0) - F;
      const c = words ? words[i] : word;
      if (cx >= 0 && cy >= 0 && cx <= xmax && cy <= ymax) { // inside: no clipping per pixel
        const o = cy * W + cx;
        if (side === 2) { px[o] = c; px[o + 1] = c; px[o + W] = c; px[o + W + 1] = c; continue; }
        for (let y = 0, q = o; y < side; y++, q += W) for (let x = 0; x < side; x++) px[q + x] = c;
      } else if (cx > -side && cy > -side && cx < W && cy < H) {
        const xa = Math.max(0, cx), xb = Math.min(W, cx + side), ya = Math.max(0, cy), yb = Math.min(H, cy + side);
        for (let y = ya; y < yb; y++) px.fill(c, y * W + xa, y * W + xb);
      }
    }
  }

  draw() {
    if (!this.pixels) this.resized();
    this.pixels.fill(0);
    this.splat(null, this.nSel ? this.fadedWords() : this.words, 0, this.size);
    if (this.nSel) {
      const [r, g, b] = this.selRGB;
      this.splat(this.selected, null, ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0, this.size + 2);
    }
    this.ctx.putImageData(this.image, 0, 0);
  }
}

// "webgl" on a GPU, "cpu" with software GL or no WebGL; `globalThis.__mwPointLayer` forces one
function pointLayer(gd, wrap, flat, stride, n, theme) {
  const forced = globalThis.__mwPointLayer;
  if (forced !== "cpu") {
    const opts = { antialias: false, premultipliedAlpha: true, alpha: true, preserveDrawingBuffer: false };
    const canvas = document.createElement("canvas");
    const gl = canvas.getContext("webgl2", opts) || canvas.getContext("webgl", opts);
    const info = gl && gl.getExtension("WEBGL_debug_renderer_info");
    const renderer = info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : "";
    const software = /swiftshader|llvmpipe|software|softpipe/i.test(renderer);
    if (gl && (forced === "webgl" || !software)) return new GlPoints(gd, wrap, flat, stride, n, theme, gl);
    if (gl) { const lose = gl.getExtension("WEBGL_lose_context"); if (lose) lose.loseContext(); }
  }
  return new CpuPoints(gd, wrap, flat, stride, n, theme);
}
