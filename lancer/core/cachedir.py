"""lancer's cache folder: task environments (lancer.sandbox), SWE-bench task folders and
downloaded datasets (lancer.formats) all live under it, so it is found in one place."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$LANCER_CACHE_DIR``, else ``$XDG_CACHE_HOME/lancer``, else ``~/.cache/lancer``."""
    if os.environ.get("LANCER_CACHE_DIR"):
        return Path(os.environ["LANCER_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "lancer"
