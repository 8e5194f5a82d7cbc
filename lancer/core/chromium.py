"""How lancer's Chromium is launched: its flags and the viewport the browser tests get.

One definition for lancer's own browser (lancer.browser) and for the Harbor export of a
web task, whose conftest.py carries them into the task's image (lancer.formats.harbor_web).
"""

from __future__ import annotations

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

# The page size (width, height) of a hidden browser test's context.
TEST_VIEWPORT = (1280, 800)
