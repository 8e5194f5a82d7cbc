"""The run's own log: ``RUN_DIR/lancer.log`` at debug level (each model request and its
timing, each retry, each tool call's timing, the full traceback of an error that ended
the run), and with ``--verbose`` the same lines live on stderr. Every line is redacted.

Modules log to ``lancer.*`` loggers (``logging.getLogger("lancer.sandbox")``); nothing
is printed unless a run log or ``--verbose`` is on.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from lancer.core.secrets import redact

ROOT = "lancer"
_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s"
_DATE = "%Y-%m-%dT%H:%M:%S"

_root = logging.getLogger(ROOT)
_root.setLevel(logging.DEBUG)
_root.propagate = False  # an application embedding lancer keeps its own logging as it is
_root.addHandler(logging.NullHandler())


class RedactingFormatter(logging.Formatter):
    """Secrets out of the message and out of any traceback."""

    def __init__(self) -> None:
        super().__init__(_FORMAT, _DATE)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"{ROOT}.{name}")


def attach_run_log(path: Path) -> logging.Handler:
    """Start writing ``path``: the lines of this thread's run only (others may run beside it)."""
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(RedactingFormatter())
    run_thread = threading.get_ident()
    handler.addFilter(lambda record: record.thread == run_thread)
    _root.addHandler(handler)
    return handler


def detach_run_log(handler: logging.Handler) -> None:
    _root.removeHandler(handler)
    handler.close()


def log_to_stderr() -> None:
    """``--verbose``: every log line, as it is written, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(RedactingFormatter())
    _root.addHandler(handler)
