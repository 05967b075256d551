"""Start JupyterLab (or Notebook 7, or Voila) and drive it from Debian chromium via Playwright.

Shared by the browser tests (``tests/browser``) and ``benchmarks/widget_latency.py`` so both
exercise the same server settings, browser flags and notebook-driving steps.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

CHROMIUM = os.environ.get("MARBLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# tall enough that a whole dashboard tab (up to three rows of views) fits on screen, so element
# screenshots show every view without resizing the page mid-test
VIEWPORT = {"width": 1400, "height": 2100}

# Lab settings that keep the page deterministic: no news/update toasts, and no notebook
# windowing (otherwise cells scrolled out of view are not rendered and widgets go missing).
_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


# Idle = the status bar names a real kernel ("Python 3 (ipykernel) | Idle"; it shows
# "No Kernel | Initializing" while the session starts, when the toolbar indicator already
# says idle) and no cell is queued ("[*]").
_KERNEL_IDLE_JS = """() => {
    const items = [...document.querySelectorAll('.jp-StatusBar-TextItem')].map(e => e.textContent);
    const kernel = items.find(t => / \\| [A-Z][a-z]+$/.test(t));
    if (!kernel || kernel.startsWith('No Kernel') || !kernel.endsWith('| Idle')) return false;
    return ![...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'));
}"""


def free_port() -> int:
    """Return a TCP port that is free now, so parallel runs never collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _jupyter_bin() -> Path:
    """The venv's ``jupyter`` next to the running interpreter (kernel = this python)."""
    path = Path(sys.executable).parent / "jupyter"
    if not path.exists():
        raise FileNotFoundError(
            f"jupyter not found next to {sys.executable!r}; install the test extras: "
            "pip install -e '.[test]'"
        )
    return path


def _isolated_env(base: Path) -> dict[str, str]:
    """Environment with private Jupyter config/data/IPython dirs and the venv bin on PATH."""
    env = dict(os.environ)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("IPYTHONDIR", "ipython"), ("JUPYTER_RUNTIME_DIR", "runtime")):
        env[var] = str(base / sub)
        (base / sub).mkdir(parents=True, exist_ok=True)
    env["JUPYTERLAB_SETTINGS_DIR"] = str(base / "config" / "lab" / "user-settings")
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(base / "config" / "lab" / "workspaces")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("JUPYTER_PATH", None)
    for name, value in _USER_SETTINGS.items():
        target = Path(env["JUPYTERLAB_SETTINGS_DIR"]) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value))
    return env


@dataclass
class LabServer:
    """A running JupyterLab: its base URL, root dir and process (stop it with :meth:`stop`)."""

    url: str
    root_dir: Path
    proc: subprocess.Popen
    tmp: Path
    log: Path
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Kill the server and every kernel it started, then remove its temp dirs."""
        if self._stopped:
            return
        self._stopped = True
        _kill_tree(self.proc.pid)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - kill_tree already sent SIGKILL
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "LabServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _kill_tree(pid: int) -> None:
    """Terminate a process and all of its descendants (kernels included), SIGKILL stragglers."""
    import psutil

    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = parent.children(recursive=True) + [parent]
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=5)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def _wait_status(url: str, proc: subprocess.Popen, log: Path, timeout: float, path: str = "/api/status") -> None:
    """Poll ``path`` until the server answers, failing fast if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the server at {url} did not answer in {timeout} s:\n{log.read_text()[-3000:]}")


def _server_cmd(app: str, root: Path, port: int, notebook: str | None) -> list[str]:
    """Command line of a JupyterLab / Notebook 7 / Voila server on ``port``, no token, rooted at ``root``."""
    if app == "voila":
        if notebook is None:
            raise ValueError("app='voila' serves one notebook: pass notebook=<file name>.")
        return [str(Path(_jupyter_bin()).parent / "voila"), str(root / notebook), "--no-browser", f"--port={port}",
                "--Voila.ip=127.0.0.1", "--token=", "--show_tracebacks=True"]
    if app not in ("lab", "notebook"):
        raise ValueError(f"app must be 'lab', 'notebook' or 'voila'; got {app!r}.")
    cmd = [str(_jupyter_bin()), app, "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
           f"--ServerApp.root_dir={root}", "--ServerApp.terminals_enabled=False"]
    if app == "lab":
        cmd.append("--LabApp.news_url=")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers/CI often run as root
    return cmd


def start_lab(notebooks: Iterable[str | Path] = (), *, timeout: float = 60.0, app: str = "lab",
              notebook: str | None = None) -> LabServer:
    """Start JupyterLab (``app="lab"``), Notebook 7 (``"notebook"``) or Voila (``"voila"``, serving
    ``notebook``) on a free port in a temp root holding copies of ``notebooks``.

    Why: tests and benchmarks need a real, isolated server (empty token, private config)
    that they can kill completely afterwards.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f"marble-{app}-"))
    root = tmp / "root"
    root.mkdir()
    for nb in notebooks:
        shutil.copy(nb, root / Path(nb).name)
    port = free_port()
    log = tmp / f"{app}.log"
    cmd = _server_cmd(app, root, port, notebook)
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, env=_isolated_env(tmp), stdout=fh, stderr=subprocess.STDOUT,
                                cwd=root, start_new_session=True)
    server = LabServer(url=f"http://127.0.0.1:{port}", root_dir=root, proc=proc, tmp=tmp, log=log)
    atexit.register(server.stop)  # last resort if the caller never reaches its cleanup
    try:
        _wait_status(server.url, proc, log, timeout, "/voila/static/voila.js" if app == "voila" else "/api/status")
    except BaseException:
        server.stop()
        raise
    return server


def write_notebook(path: Path, cells: Iterable[str]) -> Path:
    """Write a python3 notebook of code ``cells`` (no outputs) to ``path``."""
    nb = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"cell{i}",
                   "metadata": {}, "outputs": [], "source": src} for i, src in enumerate(cells)],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)",
                                    "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb, indent=1))
    return path


def launch_browser(playwright: Any, user_data_dir: str | Path) -> Any:
    """Launch Debian chromium headless with a fresh profile; returns a BrowserContext."""
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"chromium not found at {CHROMIUM!r}; run `make chromium`")
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=CHROMIUM, headless=True,
        args=list(CHROMIUM_ARGS), viewport=VIEWPORT,
    )


def accept_kernel_dialog(page: Any, timeout: float = 60.0) -> bool:
    """Click "Select" in JupyterLab's kernel dialog if it shows up; True when clicked.

    Waits until either the dialog appears or the notebook's kernel is already idle (a
    notebook whose kernelspec exists starts its kernel without asking).
    """
    page.wait_for_function(
        f"() => document.querySelector('.jp-Dialog .jp-mod-accept') || ({_KERNEL_IDLE_JS})()",
        timeout=timeout * 1000, polling=100,
    )
    button = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
    if not button.count():
        return False
    button.first.click()
    return True


def open_notebook(page: Any, base_url: str, name: str, timeout: float = 60.0) -> None:
    """Open notebook ``name`` in the lab, accept the kernel dialog and wait for an idle kernel."""
    # one workspace per notebook: a page never restores another test's open notebooks
    workspace = "".join(c if c.isalnum() else "-" for c in Path(name).stem)
    page.goto(f"{base_url}/lab/workspaces/{workspace}/tree/{name}", timeout=timeout * 1000)
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=timeout * 1000)
    accept_kernel_dialog(page, timeout=timeout)
    wait_kernel_idle(page, timeout=timeout)


def wait_kernel_idle(page: Any, timeout: float = 60.0) -> None:
    """Wait until the notebook's kernel reports idle and no cell shows ``[*]``."""
    page.wait_for_function(_KERNEL_IDLE_JS, timeout=timeout * 1000, polling=100)


def run_all_cells(page: Any, timeout: float = 60.0) -> None:
    """Run every cell via the menu Run > Run All Cells and wait for the kernel to go idle."""
    page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-InputPrompt')]"
        ".some(p => /\\[[0-9*]+\\]/.test(p.textContent))",
        timeout=timeout * 1000, polling=100,
    )
    wait_kernel_idle(page, timeout=timeout)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'],"
                          " .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
    if errors.count():
        raise AssertionError(f"notebook raised:\n{errors.first.inner_text()[:3000]}")


def wait_for(page: Any, selector: str, timeout: float = 30.0) -> Any:
    """Wait until ``selector`` is visible in the page and return its locator."""
    loc = page.locator(selector).first
    loc.wait_for(state="visible", timeout=timeout * 1000)
    return loc


def screenshot(page: Any, name: str, selector: str | None = None) -> Path:
    """Save a PNG of the page (or of ``selector``) to ``tests/browser/artifacts/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if selector is None:
        page.screenshot(path=str(path))
    else:
        page.locator(selector).first.screenshot(path=str(path))
    return path


# The plotly graph div of ``sel``: a FigureWidget view *is* the graph div (its classes, e.g.
# ``mw-view``, sit on it), a container holds it as a descendant.
GD_JS = "(sel => document.querySelector(sel + '.js-plotly-plot') || document.querySelector(sel + ' .js-plotly-plot'))"


def wait_for_plot(page: Any, selector: str, n_traces: int = 1, timeout: float = 30.0) -> None:
    """Wait until the plotly graph inside ``selector`` is drawn with ``n_traces`` traces.

    Why: a FigureWidget view shows its SVG before all of its traces have arrived.
    """
    page.wait_for_function(
        """([sel, n]) => {
            const gd = %s(sel);
            return !!(gd && gd.querySelector('.main-svg') && gd._fullLayout && gd.data && gd.data.length >= n
                      && gd._fullData && gd._fullData.length >= n);
        }""" % GD_JS,
        arg=[selector, n_traces], timeout=timeout * 1000, polling=50,
    )


def wait_for_fit(page: Any, selector: str, timeout: float = 15.0) -> None:
    """Wait until the plot at ``selector`` is laid out at its container's width (within 2 px).

    Why: a view first drawn inside a hidden tab is 700 px wide until it resizes to its panel.
    """
    page.wait_for_function(
        """sel => { const gd = %s(sel);
            return !!(gd && gd._fullLayout && gd.clientWidth > 0
                      && Math.abs(gd._fullLayout.width - gd.clientWidth) <= 2); }""" % GD_JS,
        arg=selector, timeout=timeout * 1000, polling=50,
    )


def run_until_plotted(page: Any, expected: dict[str, int], attempts: int = 3,
                      timeout: float = 20.0, run_timeout: float = 60.0) -> int:
    """Run All Cells until every plot in ``expected`` ({selector: n_traces}) shows its traces.

    Why: plain plotly 7 ``go.FigureWidget`` views in JupyterLab sometimes render from the model's
    empty initial state and never recover (anywidget drops every kernel message to a model whose
    5 MB ESM took > 2 s to load). The dashboards draw themselves (anywidget + plotly.js) and
    should draw on the first run; the retry stays for plain FigureWidgets and reports every re-run.
    ``run_timeout``: seconds allowed for one Run All. Returns the number of runs needed (1 = rendered first time); raises
    after ``attempts`` runs so a persistent failure is never hidden.
    """
    for attempt in range(1, attempts + 1):
        run_all_cells(page, timeout=run_timeout)
        try:
            for sel, n_traces in expected.items():
                wait_for_plot(page, sel, n_traces, timeout=timeout)
            return attempt
        except Exception:  # noqa: BLE001 - retried below, re-raised on the last attempt
            if attempt == attempts:
                raise
            print(f"[lab] FigureWidget rendered empty (run {attempt}); re-running all cells")
    return attempts


def plot_data(page: Any, plot_selector: str, trace: int, keys: Iterable[str] = ("x", "y")) -> dict:
    """Read trace ``trace`` (negative counts from the end) of the plot at ``plot_selector`` from the DOM."""
    return page.evaluate(
        """([sel, i, keys]) => {
            const gd = %s(sel);
            const t = gd.data[i < 0 ? gd.data.length + i : i];
            const out = {};
            for (const k of keys) out[k] = t[k] === undefined || t[k] === null ? null
                : (typeof t[k] === 'object' ? Array.from(t[k]) : t[k]);
            return out;
        }""" % GD_JS,
        [plot_selector, trace, list(keys)],
    )


def data_to_page(page: Any, plot_selector: str, x: float, y: float) -> tuple[float, float]:
    """Page pixel coordinates of data point (x, y) on the plot's first axes."""
    return tuple(page.evaluate(
        """([sel, x, y]) => {
            const gd = %s(sel);
            const fl = gd._fullLayout, xa = fl.xaxis, ya = fl.yaxis;
            const box = gd.querySelector('.main-svg').getBoundingClientRect();
            return [box.left + xa._offset + xa.l2p(x), box.top + ya._offset + ya.l2p(y)];
        }""" % GD_JS,
        [plot_selector, x, y],
    ))
