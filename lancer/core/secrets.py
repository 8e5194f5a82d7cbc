"""Keeps secrets out of everything lancer writes: trajectories, results, logs, errors."""

from __future__ import annotations

import os
import re
from typing import Any

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


# The environment's secrets, recomputed only when the environment changed: every line
# lancer writes is redacted, and decoding the whole environment each time cost ~0.1 ms.
_env_seen: dict[bytes, bytes] | None = None
_env_secrets: frozenset[str] = frozenset()


def _environment_secrets() -> frozenset[str]:
    global _env_seen, _env_secrets
    data = getattr(os.environ, "_data", None)  # CPython's raw environment: compared in C, cheaply
    if data is None or data != _env_seen:
        _env_secrets = frozenset(v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_LEN)
        _env_seen = dict(data) if data is not None else None
    return _env_secrets


def secret_values() -> list[str]:
    """Values of environment variables whose names look secret, and added ones, longest first."""
    return sorted(_environment_secrets() | _registered, key=len, reverse=True)


def redact(text: str, extra: list[str] | None = None) -> str:
    """``text`` with every known secret replaced by ``[REDACTED]``."""
    for value in [*(extra or []), *secret_values()]:
        if value and value in text:
            text = text.replace(value, "[REDACTED]")
    return _KEY_SHAPES.sub("[REDACTED]", text) if "sk-" in text else text  # the check is 10x cheaper


def redact_tree(data: Any) -> Any:
    """``data`` (JSON-like: dicts, lists, strings) with every string redacted."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {key: redact_tree(value) for key, value in data.items()}
    if isinstance(data, list):
        return [redact_tree(value) for value in data]
    return data
