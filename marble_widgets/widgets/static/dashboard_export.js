// Standalone page of marble_widgets' to_html (page.py): each view's own ES module rendered against an
// in-page model (no kernel). plotly.js travels once in the payload and is shared by every view.
// `globalThis.mwModels[key]` exposes each model (`mwModel`: the first) so scripts and tests set traits.
const payload = JSON.parse(document.getElementById("mw-payload").textContent);

function inPageModel(state) {
  const listeners = new Map();
  return {
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
}

globalThis.mwModels = {};
for (const view of payload.views) {
  const model = inPageModel({ ...view.state, _plotly: payload.plotly });
  globalThis.mwModels[view.key] = model;
  globalThis.mwModel = globalThis.mwModel || model;
}
await Promise.all(payload.views.map(async (view) => {
  const url = URL.createObjectURL(new Blob([view.esm], { type: "text/javascript" }));
  const widget = (await import(url)).default;
  URL.revokeObjectURL(url);
  await widget.render({ model: globalThis.mwModels[view.key], el: document.getElementById(`mw-root-${view.key}`) });
}));
document.body.dataset.ready = "true";
