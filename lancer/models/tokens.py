"""Token counts for fitting a request in a context window.

tiktoken counts exactly for OpenAI models and closely enough for others (o200k_base stands
in for tokenizers that are not public, such as Claude's). tiktoken downloads its encoding
files on first use; offline that fails (here in ~0.2 s, by DNS) or, behind a network that
drops packets, may hang. So the load runs once per process in a background thread with a
timeout; if it fails, lancer says so once on stderr and estimates

    tokens = ceil(characters / 4)

which is close for English prose and code. Pre-fill tiktoken's cache (TIKTOKEN_CACHE_DIR)
to count exactly offline.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from lancer.models.notices import warn_once

CHARS_PER_TOKEN = 4
# Long enough for a slow first download, short enough that a dead network costs one pause.
LOAD_TIMEOUT_S = 10.0
DEFAULT_ENCODING = "o200k_base"

_lock = threading.Lock()
# encoding name -> loaded encoding, or None when loading failed (not retried in this process).
_encodings: dict[str, Any] = {}


class TokenCounter(Protocol):
    exact: bool

    def count(self, text: str) -> int: ...


class EstimateCounter:
    """The documented fallback: ceil(characters / 4)."""

    exact = False

    def count(self, text: str) -> int:
        return -(-len(text) // CHARS_PER_TOKEN)


class TiktokenCounter:
    exact = True
    _CACHE_SIZE = 4096

    def __init__(self, encoding: Any) -> None:
        self._encoding = encoding
        # Each call resends the whole history: count a message's text once, not every call.
        self._cache: dict[str, int] = {}

    def count(self, text: str) -> int:
        tokens = self._cache.get(text)
        if tokens is None:
            tokens = len(self._encoding.encode(text, disallowed_special=()))
            if len(self._cache) >= self._CACHE_SIZE:
                self._cache.clear()
            self._cache[text] = tokens
        return tokens


def counter_for(model: str) -> TokenCounter:
    """A tiktoken counter for ``model``'s encoding, or the estimate when tiktoken cannot load."""
    name = _encoding_name(model)
    encoding = _load(name)
    return TiktokenCounter(encoding) if encoding is not None else EstimateCounter()


def _encoding_name(model: str) -> str:
    try:
        import tiktoken.model

        return str(tiktoken.model.encoding_name_for_model(model))
    except (ImportError, KeyError):
        return DEFAULT_ENCODING


def _load(name: str) -> Any:
    with _lock:
        if name in _encodings:
            return _encodings[name]
        result: list[Any] = []
        errors: list[BaseException] = []

        def load() -> None:
            try:
                import tiktoken

                result.append(tiktoken.get_encoding(name))
            except Exception as e:  # any failure means "no tokenizer": fall back, never crash
                errors.append(e)

        thread = threading.Thread(target=load, name=f"tiktoken-{name}", daemon=True)
        thread.start()
        thread.join(LOAD_TIMEOUT_S)
        encoding = result[0] if result else None
        _encodings[name] = encoding
    if encoding is None:
        why = type(errors[0]).__name__ if errors else f"no answer within {LOAD_TIMEOUT_S:g} s"
        warn_once(
            "tiktoken",
            f"tiktoken could not load its {name} encoding ({why}; offline?): token counts are "
            f"estimated as characters / {CHARS_PER_TOKEN}. Pre-fill TIKTOKEN_CACHE_DIR to count exactly.",
        )
    return encoding
