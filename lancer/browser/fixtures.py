"""pytest fixtures for a task's hidden browser tests: ``app_url``, ``browser``, ``context``, ``page``.

Loaded with ``-p lancer.browser.fixtures`` by the grader and by ``user_tool``; the names
match pytest-playwright's, so a test written for that plugin runs unchanged. A test reads
the app's address from ``app_url`` (or ``APP_URL``) and drives ``page``.

With ``LANCER_TRACE_DIR`` set (``user_tool`` does), every context is traced with
screenshots and DOM snapshots, and at the end of each test the trace, a PNG of each page
and its visible text are written there as ``flow-N.*``. Numbered, never named after the
test: the names are part of the hidden test source.

A harness fault (no Chromium, no APP_URL) ends the session with exit code 3, so the
grader reports an error instead of a failed fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright

from lancer.browser.chromium import Chromium
from lancer.core.chromium import TEST_VIEWPORT

HARNESS_ERROR_EXIT = 3
_flow_counter = 0


@pytest.fixture(scope="session")
def app_url() -> str:
    url = os.environ.get("APP_URL", "")
    if not url:
        pytest.exit("lancer: APP_URL is not set: the app was not started", returncode=HARNESS_ERROR_EXIT)
    return url.rstrip("/")


@pytest.fixture(scope="session")
def _lancer_chromium() -> Iterator[Chromium]:
    try:
        chromium = Chromium()
    except Exception as e:  # Chromium missing or broken: the harness, not the fix
        pytest.exit(f"lancer: cannot start Chromium: {e}", returncode=HARNESS_ERROR_EXIT)
    yield chromium
    chromium.close()


@pytest.fixture(scope="session")
def playwright(_lancer_chromium: Chromium) -> Playwright:
    return _lancer_chromium.playwright


@pytest.fixture(scope="session")
def browser(_lancer_chromium: Chromium) -> Browser:
    return _lancer_chromium.browser


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    global _flow_counter
    context = browser.new_context(viewport={"width": TEST_VIEWPORT[0], "height": TEST_VIEWPORT[1]})
    trace_dir = os.environ.get("LANCER_TRACE_DIR")
    if trace_dir:
        context.tracing.start(screenshots=True, snapshots=True, sources=False)
    yield context
    if trace_dir:
        _flow_counter += 1
        _save_flow(context, Path(trace_dir), f"flow-{_flow_counter}")
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def _save_flow(context: BrowserContext, folder: Path, stem: str) -> None:
    """What the user saw last (a PNG and the text of the last open page) and the trace."""
    folder.mkdir(parents=True, exist_ok=True)
    open_pages = [p for p in context.pages if not p.is_closed()]
    if open_pages:
        last = open_pages[-1]
        try:
            last.screenshot(path=str(folder / f"{stem}.png"), timeout=5000)
            (folder / f"{stem}.txt").write_text(f"{last.url}\n{last.title()}\n{last.inner_text('body', timeout=2000)}")
        except Exception:  # a page mid-navigation or crashed: the trace still tells the story
            pass
    context.tracing.stop(path=str(folder / f"{stem}.zip"))
