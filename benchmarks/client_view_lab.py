"""The FlowView in JupyterLab for ``client_view_latency.py``: first draw and bytes, step, Play, the kernel round
trip, DevTools' added latency, the view cell run again, and a 150 ms-each-way delaying proxy (``DelayProxy``)."""
from __future__ import annotations

import argparse
import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from client_view_common import _stats, lab, time_play, time_steps

LAB_CELLS = [
    "import os\nos.environ['OMP_NUM_THREADS'] = '1'\nimport torch\ntorch.set_num_threads(1)\n"
    "import ipywidgets as widgets\nimport marble_widgets as mw\nfrom marble_widgets.widgets.flow_view import FlowView\n"
    "ff = mw.flow_field(mw.datasets.rat_hippocampus(), n_components=10, smooth=0.25)\n"
    "model = mw.MARBLE(epochs={epochs}, k=50, hidden_channels=128, batch_size=256, seed=0).fit(ff)\n"
    "res = model.results(ff)",
    "view = FlowView(res, color_by='time')\nview",
    "echo = widgets.Label('-')\necho.add_class('mw-echo')\n"
    "view.observe(lambda c: setattr(echo, 'value', str(c['new'])), 'sample')\necho",
    # the 3-D state scene (the exported 3-D view's arrays: flow field + embedding, no results)
    "view3 = FlowView(ff, model.transform(ff), color_by='time', dims=3)\nview3",
]

# keydown -> the kernel heard the new sample and its Label changed in the page (a full round trip)
ECHO_JS = """async () => {
    const root = document.querySelector('.mw-fv');
    const label = () => document.querySelector('.mw-echo')?.textContent.trim();
    const t0 = performance.now();
    root.focus();
    root.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true}));
    const want = root.dataset.sample;
    while (label() !== want) { await new Promise(r => setTimeout(r, 2)); if (performance.now() - t0 > 10000) return null; }
    return performance.now() - t0;
}"""


def time_echo(page: Any, repeats: int = 8) -> dict[str, Any]:
    """Kernel round trip: a step in the browser until Python's Label shows it (sync_ms throttle idle)."""
    out = []
    for _ in range(repeats):
        time.sleep(0.4)  # past the 150 ms throttle: the step is sent at once
        value = page.evaluate(ECHO_JS)
        if value is not None:
            out.append(value)
    return _stats(out)


class DelayProxy:
    """TCP proxy on 127.0.0.1 that holds every chunk ``delay_s`` in each direction (websockets included).

    Why: Chrome's network emulation may not delay websocket frames; this delays the kernel connection
    whatever the browser does. Order is kept per direction.
    """

    def __init__(self, target_port: int, delay_s: float) -> None:
        self.target_port, self.delay_s, self.port = target_port, delay_s, lab.free_port()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        ready.set()
        self.loop.run_forever()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def pump_in() -> None:
            while data := await reader.read(65536):
                await queue.put((self.loop.time() + self.delay_s, data))
            await queue.put((None, b""))

        async def pump_out() -> None:
            while True:
                due, data = await queue.get()
                if due is None:
                    break
                if (wait := due - self.loop.time()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            writer.close()

        try:
            await asyncio.gather(pump_in(), pump_out())
        except (ConnectionError, asyncio.CancelledError):
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    def close(self) -> None:
        """Stop serving, cancel the open connections' pumps, stop the loop."""
        async def shutdown() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        self.thread.join(5)


def measure_lab(args: argparse.Namespace, context: Any, tmp: Path, delay_ms: float = 0.0) -> dict[str, Any]:
    """The results view in a JupyterLab notebook: first draw, bytes sent by the kernel, step and Play,
    the kernel round trip; ``delay_ms`` > 0: served through a :class:`DelayProxy` (each direction)."""
    nb = lab.write_notebook(tmp / f"flow_view_bench_{int(delay_ms)}.ipynb", [c.format(epochs=args.epochs) for c in LAB_CELLS])
    received = {"bytes": 0}
    with lab.start_lab([nb]) as server:
        proxy = DelayProxy(int(server.url.rsplit(":", 1)[1].split("/")[0]), delay_ms / 1000) if delay_ms else None
        url = f"http://127.0.0.1:{proxy.port}" if proxy else server.url
        page = context.new_page()
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: received.__setitem__(
            "bytes", received["bytes"] + len(payload if isinstance(payload, (bytes, str)) else b""))))
        lab.open_notebook(page, url, nb.name, timeout=300)
        received["bytes"] = 0
        t0 = time.monotonic()
        lab.run_all_cells(page, timeout=600)
        page.wait_for_selector(".mw-fv[data-ready=true]", timeout=120_000)
        page.wait_for_function("() => document.querySelector('.mw-fv').dataset.drawn !== undefined")
        visible = time.monotonic() - t0
        sent = received["bytes"]
        lab.screenshot(page, "bench_flow_view_lab", ".mw-fv")
        page.wait_for_selector(".mw-echo", timeout=120_000)
        out = {"delay_ms_each_way": delay_ms, "run_all_to_drawn_s": visible, "kernel_to_browser_mb": sent / 1e6,
               "kernel_round_trip": time_echo(page), "step": time_steps(page, args.steps),
               "play": time_play(page, args.play_s)}
        page.wait_for_selector(".mw-fv-scene", timeout=120_000)
        out["step_3d_scene"] = time_steps(page, 20, event="mw-scene-drawn", nth=1)
        if not delay_ms:
            out["devtools_latency_150ms"] = devtools_check(page, context)
            try:
                out.update(rerun_view_cell(page, received))
            except Exception as err:  # noqa: BLE001 - keep the other figures; say what failed
                lab.screenshot(page, "bench_flow_view_lab_rerun_failed")
                out["view_cell_error"] = f"{type(err).__name__}: {str(err)[:300]}"
        page.close()
        if proxy:
            proxy.close()
    return out


def devtools_check(page: Any, context: Any) -> dict[str, Any]:
    """Kernel round trip under ``Network.emulateNetworkConditions`` (latency 150 ms): does it delay the
    websocket? Also the step latency meanwhile (nothing should wait for the kernel)."""
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 150, "downloadThroughput": -1,
                                                   "uploadThroughput": -1})
    try:
        echo = time_echo(page)
        step = time_steps(page, 20)
    finally:
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                       "uploadThroughput": -1})
        cdp.detach()
    return {"kernel_round_trip": echo, "step": step}


def rerun_view_cell(page: Any, received: dict[str, int]) -> dict[str, Any]:
    """Run the view cell again (model fitted, plotly.js already on the page): seconds until the new
    view is drawn, and the bytes the kernel sent meanwhile."""
    page.evaluate("() => document.querySelectorAll('.mw-fv').forEach(e => e.setAttribute('data-old', '1'))")
    page.locator(".jp-NotebookPanel .jp-Cell").nth(1).locator(".jp-InputArea-editor").click()  # edit mode
    received["bytes"] = 0
    page_t0 = page.evaluate("() => performance.now()")
    t0 = time.monotonic()
    page.keyboard.press("Shift+Enter")  # runs the cell being edited
    page.wait_for_selector(".mw-fv[data-ready=true]:not([data-old])", timeout=120_000)
    page.wait_for_function("() => document.querySelector('.mw-fv:not([data-old])').dataset.drawn !== undefined")
    seconds = time.monotonic() - t0
    # where the time went, in the page: render() called (the kernel built the view and its buffers
    # arrived), buffers decoded, plotly plots drawn, every view ready (seconds after the key press)
    marks = page.evaluate("""t0 => { const t = document.querySelector('.mw-fv:not([data-old])').parentElement
        .__mwFlowView.stats.times; return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, (v - t0) / 1000])); }""",
                          page_t0)
    return {"view_cell_to_drawn_s": seconds, "view_cell_kernel_to_browser_mb": received["bytes"] / 1e6,
            "view_cell_page_milestones_s": marks}

