"""Fixtures for the real-browser tests: one JupyterLab server and one chromium per session."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import lab  # noqa: E402  (tests/browser/lab.py, shared with benchmarks/widget_latency.py)

NOTEBOOKS = HERE / "notebooks"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """Remember each phase's report on the item so fixtures can screenshot failures."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="session")
def lab_server() -> Iterator[lab.LabServer]:
    """JupyterLab on a free port serving copies of ``tests/browser/notebooks``; killed at the end."""
    server = lab.start_lab(sorted(NOTEBOOKS.glob("*.ipynb")))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lab_url(lab_server: lab.LabServer) -> str:
    """Base URL of the session's JupyterLab (no token needed)."""
    return lab_server.url


@pytest.fixture(scope="session")
def browser_context() -> Iterator[Any]:
    """A headless Debian-chromium BrowserContext with a throw-away profile."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="marble-chromium-") as profile, \
            sync_playwright() as playwright:
        context = lab.launch_browser(playwright, profile)
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


def new_page(context: Any) -> Any:
    """New page whose uncaught JS errors are collected in ``page.js_errors``."""
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda err: page.js_errors.append(str(err)))
    return page


def shoot_if_failed(request: pytest.FixtureRequest, page: Any) -> None:
    """Save ``artifacts/FAILED-<test>.png`` when the test owning ``request`` failed."""
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and not page.is_closed():
        lab.screenshot(page, f"FAILED-{request.node.name}")


@pytest.fixture
def page(browser_context: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page for one test (screenshot saved to artifacts/ on failure)."""
    page = new_page(browser_context)
    yield page
    shoot_if_failed(request, page)
    page.close()


def notebook_page_fixtures(name: str, notebook: str, expected: dict[str, int], **run_kwargs: Any) -> tuple[Any, Any]:
    """Fixtures ``_<name>`` (``notebook`` opened and run once per module) and ``<name>`` (that page per test).

    The per-test fixture saves ``artifacts/FAILED-<test>.png`` when its test fails. Assign both to
    module-level names in the test module so pytest collects them.
    """
    @pytest.fixture(scope="module", name=f"_{name}")
    def opened(browser_context: Any, lab_url: str) -> Iterator[Any]:
        page = new_page(browser_context)
        lab.open_notebook(page, lab_url, notebook)
        runs = lab.run_until_plotted(page, expected, **run_kwargs)
        print(f"[{notebook}] all views drawn after {runs} Run All")
        yield page
        page.close()

    @pytest.fixture(name=name)
    def per_test(request: pytest.FixtureRequest) -> Iterator[Any]:
        page = request.getfixturevalue(f"_{name}")
        yield page
        shoot_if_failed(request, page)

    return opened, per_test
