// Helpers shared by the browser-drawn views (flow_view.js, training_view.js, alignment_view.js):
// prepended to each view's module (page.esm_source, flow_view.ESM_PARTS), so every view stays one
// no-build ES module.
// plotly.js is evaluated at most once per page and version, in the same cache FlowView uses.

const MW_CACHE = (globalThis.__marbleWidgets = globalThis.__marbleWidgets || {});
const MW_TYPED = { float32: Float32Array, float64: Float64Array, int32: Int32Array, uint8: Uint8Array, uint16: Uint16Array };

async function mwInflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// DataView / ArrayBuffer / typed array / base64 text -> a Uint8Array owning an aligned buffer
function mwBytes(buf) {
  if (typeof buf === "string") {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(buf);
    const bin = atob(buf);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf.slice(0));
  return new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

async function mwDecode(entry) {
  let bytes = mwBytes(entry.buffer);
  if (entry.compression === "deflate") bytes = await mwInflate(bytes);
  const Typed = MW_TYPED[entry.dtype];
  if (!Typed) throw new Error(`[marble_widgets] unknown dtype ${entry.dtype}`);
  const data = new Typed(bytes.buffer, bytes.byteOffset, bytes.byteLength / Typed.BYTES_PER_ELEMENT);
  return { data: entry.quantized ? mwDequantize(data, entry.quantized) : data, shape: entry.shape };
}

// per-column affine codes (page.pack_quantized) -> Float32Array: offset[j] + step[j] * code (float64, then
// rounded to float32 as numpy does), NaN for the missing code
function mwDequantize(codes, { offset, step, missing }) {
  const m = offset.length, out = new Float32Array(codes.length);
  for (let base = 0; base < codes.length; base += m) {
    for (let j = 0; j < m; j++) {
      const q = codes[base + j];
      out[base + j] = q === missing ? NaN : offset[j] + step[j] * q;
    }
  }
  return out;
}

async function mwDecodeAll(entries) {
  const names = Object.keys(entries || {});
  const decoded = await Promise.all(names.map((n) => mwDecode(entries[n])));
  return Object.fromEntries(names.map((n, i) => [n, decoded[i]]));
}

async function mwLoadPlotly(model) {
  const ref = model.get("_plotly");
  let version, source;
  if (typeof ref === "string") {
    const holder = await model.widget_manager.get_model(ref.replace(/^IPY_MODEL_/, ""));
    version = holder.get("version");
    source = () => holder.get("source");
  } else {
    version = ref.version;
    source = () => ref.source;
  }
  if (globalThis.Plotly && globalThis.Plotly.version === version) return globalThis.Plotly;
  MW_CACHE.plotly = MW_CACHE.plotly || {};
  if (!MW_CACHE.plotly[version]) {
    MW_CACHE.plotly[version] = (async () => {
      const text = new TextDecoder().decode(await mwInflate(mwBytes(source())));
      const previous = globalThis.Plotly;
      const module = { exports: {} };
      new Function("module", "exports", "define", text)(module, module.exports, undefined);
      if (previous) globalThis.Plotly = previous;
      return module.exports;
    })();
  }
  return MW_CACHE.plotly[version];
}

function mwEl(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.appendChild(c);
  return node;
}

// browser -> Python at most every sync_ms (trailing, last value wins); values set by Python are applied
// unless they are the echo of what this page just sent (see flow_view.js for the reasoning).
function mwSync(model) {
  let timer = null;
  let last = -Infinity;
  let flushing = false;
  const unsent = new Map();
  const flush = () => {
    timer = null;
    last = performance.now();
    flushing = true;
    try { for (const [k, v] of unsent) model.set(k, v); } finally { flushing = false; }
    unsent.clear();
    model.save_changes();
  };
  return {
    push(name, value) {
      unsent.set(name, value);
      if (!timer) timer = setTimeout(flush, Math.max(0, last + (model.get("sync_ms") || 150) - performance.now()));
    },
    fromKernel(name, apply) {
      return () => { if (flushing) return; unsent.delete(name); apply(); };
    },
  };
}

// plots follow their container's width (e.g. drawn while hidden)
function mwResizer(Plotly, plots) {
  const ro = new ResizeObserver((entries) => {
    for (const e of entries) if (e.target.clientWidth > 0 && e.target._fullLayout) Plotly.Plots.resize(e.target);
  });
  plots.forEach((gd) => ro.observe(gd));
  return ro;
}

// Views of one dashboard share a named channel (their `channel` trait): one view publishes what it
// shows (topic "sample": a position on the results' sample dim; topic "selection": an Int32Array of
// sample positions) and the others follow in the page, never through the kernel. Works the same in
// JupyterLab, Notebook 7, Voila and an exported page, because every view of a page shares globalThis.
function mwChannel(name) {
  if (!name) return { publish() {}, subscribe() { return () => {}; } };
  MW_CACHE.channels = MW_CACHE.channels || {};
  const target = (MW_CACHE.channels[name] = MW_CACHE.channels[name] || new EventTarget());
  return {
    publish(topic, value, source) {
      target.dispatchEvent(new CustomEvent(topic, { detail: { value, source } }));
    },
    subscribe(topic, fn) {
      const handler = (e) => fn(e.detail.value, e.detail.source);
      target.addEventListener(topic, handler);
      return () => target.removeEventListener(topic, handler);
    },
  };
}
