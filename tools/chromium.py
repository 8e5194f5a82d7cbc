"""How lancer starts Chromium: one place for the binary and its flags.

Used by the ``browser`` tool and by the pytest fixtures the hidden browser tests run with,
so the agent's browser and the grader's browser are the same program with the same flags.
Playwright's own browser download is never used: it needs the internet.
"""

from __future__ import annotations

import os
import shutil

from playwright.sync_api import Browser, Playwright

# Why each flag: headless (no display), no-sandbox (root, containers), no GPU, and no
# background traffic (sync, updates, QUIC probes), which a closed network refuses noisily.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

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


def launch_chromium(playwright: Playwright) -> Browser:
    """A headless system Chromium. Raises ChromiumNotFound, or Playwright's error if it fails."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
