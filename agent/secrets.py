"""Keeps secrets out of everything lancer writes: trajectories, results, logs, errors."""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
_MIN_LEN = 8
# Key shapes worth hiding even when they did not come from the environment.
_KEY_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_\-]{16,}|sk-ant-[A-Za-z0-9_\-]{16,})\b")


# Values known to be secret whatever their variable is called (e.g. model.api_key_env).
_registered: set[str] = set()


def add_secret(value: str) -> None:
    """Hide ``value`` wherever lancer redacts, for the rest of the process."""
    if len(value) >= _MIN_LEN:
        _registered.add(value)


def secret_values() -> list[str]:
    """Values of environment variables whose names look secret, and added ones, longest first."""
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_LEN}
    return sorted(values | _registered, key=len, reverse=True)


def redact(text: str, extra: list[str] | None = None) -> str:
    """``text`` with every known secret replaced by ``[REDACTED]``."""
    for value in [*(extra or []), *secret_values()]:
        if value and value in text:
            text = text.replace(value, "[REDACTED]")
    return _KEY_SHAPES.sub("[REDACTED]", text)
