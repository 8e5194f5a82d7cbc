"""Short notes to the person running lancer, on stderr (never in stdout, which scripts parse)."""

from __future__ import annotations

import sys
import threading

from lancer.core.secrets import redact

_said: set[str] = set()
_lock = threading.Lock()


def notice(message: str) -> None:
    print(f"lancer: {redact(message)}", file=sys.stderr, flush=True)


def warn_once(key: str, message: str) -> None:
    """Warn about ``key`` the first time only: a run makes hundreds of calls."""
    with _lock:
        if key in _said:
            return
        _said.add(key)
    notice(f"warning: {message}")
