// Standalone page of FlowView.to_html: the same ESM as in notebooks, driven by an in-page model
// (no kernel). `globalThis.mwModel` exposes it so scripts (and tests) can set traits like Python.
const payload = JSON.parse(document.getElementById("mw-payload").textContent);
const url = URL.createObjectURL(new Blob([payload.esm], { type: "text/javascript" }));
const widget = (await import(url)).default;
URL.revokeObjectURL(url);
const state = payload.state;
const listeners = new Map();
const model = {
  get: (name) => state[name],
  set: (name, value) => {
    const old = state[name];
    state[name] = value;
    if (old !== value) for (const fn of listeners.get(`change:${name}`) || []) fn();
  },
  on: (event, fn) => listeners.set(event, [...(listeners.get(event) || []), fn]),
  off: (event, fn) => listeners.set(event, (listeners.get(event) || []).filter((f) => f !== fn)),
  save_changes: () => {},
};
globalThis.mwModel = model;
await widget.render({ model, el: document.getElementById("mw-root") });
