"""Fixtures for the real-browser tests: one chromium per session, a fresh page per test.

Servers (JupyterLab, Notebook 7, Voila) are started by the test modules that need them
(``lab.start_lab``), each with its own generated notebook.
"""
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """Remember each phase's report on the item so fixtures can screenshot failures."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


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
