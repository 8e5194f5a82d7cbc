"""How lancer starts Chromium: one place for the binary (its flags: lancer.core.chromium).

Used by the ``browser`` tool and by the pytest fixtures the hidden browser tests run with,
so the agent's browser and the grader's browser are the same program with the same flags.
Playwright's own browser download is never used: it needs the internet.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Browser, Playwright, sync_playwright

from lancer.core.chromium import CHROMIUM_ARGS
from lancer.core.sandbox import owned_temp_dir, remove_owned_dir

CHROMIUM_TEMP_PREFIX = "lancer-cr-"
_LONGEST_TEMP_DIR = 107 - len("/lancer-cr-XXXXXXXX/org.chromium.Chromium.XXXXXX/SingletonSocket")

_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


class ChromiumNotFound(RuntimeError):
    """No Chromium binary on this machine."""


def chromium_path() -> str:
    """``$LANCER_CHROMIUM``, else the first system Chromium found; raises ChromiumNotFound."""
    configured = os.environ.get("LANCER_CHROMIUM")
    if configured:
        return configured
    for candidate in _CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium")
    if found:
        return found
    raise ChromiumNotFound(
        "no Chromium found (looked for /usr/bin/chromium): install it (apt-get install -y "
        "chromium, or bash scripts/setup.sh) or set LANCER_CHROMIUM to the binary"
    )


class Chromium:
    """A Playwright driver and the headless system Chromium it launched.

    Every temp file of both (the driver's artifacts, the browser profile, Chromium's own)
    goes to one folder, removed by ``close``. Killed, they leave it behind (found by the
    soak), and then a resumed eval or `lancer sandbox prune` removes it: its owner file
    names this process. Raises ChromiumNotFound, or Playwright's error if Chromium fails.
    """

    def __init__(self) -> None:
        executable = chromium_path()
        parent = tempfile.gettempdir()
        self.temp = owned_temp_dir(CHROMIUM_TEMP_PREFIX, parent if len(parent) <= _LONGEST_TEMP_DIR else "/tmp")
        self._playwright: Playwright | None = None
        try:
            with _children_temp_dir(self.temp):
                self._playwright = sync_playwright().start()
            self.playwright: Playwright = self._playwright
            self.browser: Browser = self._playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_ARGS, headless=True
            )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the browser and stop the driver (best effort: either may be gone), then remove their files."""
        try:
            if self._playwright is not None:
                with contextlib.suppress(Exception):  # stopping the driver ends its browser too
                    self._playwright.stop()
                self._playwright = None
        finally:  # even if interrupted: Chromium may still write there as it ends (found by the soak)
            remove_owned_dir(self.temp)


@contextlib.contextmanager
def _children_temp_dir(path: Path) -> Iterator[None]:
    """$TMPDIR for the processes started meanwhile: Playwright starts its driver with this
    process's own environment and takes no other. The driver's children (Chromium) inherit it."""
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(path)
    try:
        yield
    finally:
        if before is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = before
