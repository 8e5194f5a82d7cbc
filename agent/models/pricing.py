"""What a model costs and how much it reads: USD per million tokens and context windows.

There is no network at run time, so the table ships in code. Sources, read 2026-11-24:
- OpenAI: https://openai.com/api/pricing (standard tier; cached input is the cache-read
  price; OpenAI bills no extra for cache writes).
- Anthropic: https://platform.claude.com/docs/en/about-claude/pricing and each model's
  overview page (cache write = the 5-minute write price, which is what lancer requests).
Long-context surcharges, batch, priority and regional tiers are not modelled. A model
missing here, or priced differently by the server you use, takes ``model.price`` (and
``model.context_window``) from the run config; without them its cost is recorded as
unknown (null), never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.config import ModelConfig
from agent.models.base import Usage
from agent.models.notices import warn_once

DEFAULT_CONTEXT_WINDOW = 128_000


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    def cost(self, usage: Usage) -> float:
        """USD for ``usage``, whose input_tokens include its cache reads and writes."""
        uncached = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
        return (
            uncached * self.input
            + usage.cache_read_tokens * self.cache_read
            + usage.cache_write_tokens * self.cache_write
            + usage.output_tokens * self.output
        ) / 1_000_000


@dataclass(frozen=True)
class ModelCard:
    price: Price | None
    context_window: int


def _openai(input: float, cached: float, output: float, window: int) -> ModelCard:
    return ModelCard(Price(input, output, cache_read=cached, cache_write=input), window)


def _anthropic(input: float, output: float, cache_read: float, cache_write: float, window: int) -> ModelCard:
    return ModelCard(Price(input, output, cache_read, cache_write), window)


# Keys are model names without their snapshot date: "gpt-4o" prices "gpt-4o-2024-08-06".
TABLE: dict[str, ModelCard] = {
    # OpenAI. gpt-5's window is its input limit (272k), not input + output (400k).
    "gpt-4o": _openai(2.50, 1.25, 10.00, 128_000),
    "gpt-4o-mini": _openai(0.15, 0.075, 0.60, 128_000),
    "gpt-4.1": _openai(2.00, 0.50, 8.00, 1_047_576),
    "gpt-4.1-mini": _openai(0.40, 0.10, 1.60, 1_047_576),
    "gpt-4.1-nano": _openai(0.10, 0.025, 0.40, 1_047_576),
    "o1": _openai(15.00, 7.50, 60.00, 200_000),
    "o3": _openai(2.00, 0.50, 8.00, 200_000),
    "o3-mini": _openai(1.10, 0.55, 4.40, 200_000),
    "o4-mini": _openai(1.10, 0.275, 4.40, 200_000),
    "gpt-5": _openai(1.25, 0.125, 10.00, 272_000),
    "gpt-5-mini": _openai(0.25, 0.025, 2.00, 272_000),
    "gpt-5-nano": _openai(0.05, 0.005, 0.40, 272_000),
    "gpt-5.1": _openai(1.25, 0.125, 10.00, 272_000),
    # Anthropic: input, output, cache read, 5-minute cache write.
    "claude-opus-5-5": _anthropic(4.00, 20.00, 0.20, 5.00, 1_000_000),
    "claude-opus-5": _anthropic(5.00, 25.00, 0.50, 6.25, 1_000_000),
    "claude-opus-4-8": _anthropic(5.00, 25.00, 0.50, 6.25, 200_000),
    "claude-opus-4-7": _anthropic(5.00, 25.00, 0.50, 6.25, 200_000),
    "claude-opus-4-6": _anthropic(5.00, 25.00, 0.50, 6.25, 200_000),
    "claude-opus-4-5": _anthropic(5.00, 25.00, 0.50, 6.25, 200_000),
    "claude-opus-4-1": _anthropic(15.00, 75.00, 1.50, 18.75, 200_000),
    "claude-opus-4": _anthropic(15.00, 75.00, 1.50, 18.75, 200_000),
    "claude-opus-4-0": _anthropic(15.00, 75.00, 1.50, 18.75, 200_000),
    "claude-3-opus": _anthropic(15.00, 75.00, 1.50, 18.75, 200_000),
    # Sonnet 5.5's cache reads went from $0.20 to $0.10 on 2026-10-07.
    "claude-sonnet-5-5": _anthropic(2.00, 10.00, 0.10, 2.50, 1_000_000),
    "claude-sonnet-5": _anthropic(2.00, 10.00, 0.20, 2.50, 1_000_000),
    "claude-sonnet-4-6": _anthropic(3.00, 15.00, 0.30, 3.75, 200_000),
    "claude-sonnet-4-5": _anthropic(3.00, 15.00, 0.30, 3.75, 200_000),
    "claude-sonnet-4": _anthropic(3.00, 15.00, 0.30, 3.75, 200_000),
    "claude-sonnet-4-0": _anthropic(3.00, 15.00, 0.30, 3.75, 200_000),
    "claude-3-7-sonnet": _anthropic(3.00, 15.00, 0.30, 3.75, 200_000),
    "claude-3-5-sonnet": _anthropic(3.00, 15.00, 0.30, 3.75, 200_000),
    "claude-haiku-4-5": _anthropic(1.00, 5.00, 0.10, 1.25, 200_000),
    "claude-3-5-haiku": _anthropic(0.80, 4.00, 0.08, 1.00, 200_000),
    "claude-3-haiku": _anthropic(0.25, 1.25, 0.03, 0.30, 200_000),
}

# What may follow a table key in a real model name: a snapshot date, or "-latest".
_SNAPSHOT = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest)")


def lookup(model: str) -> ModelCard | None:
    """The table's entry for ``model`` or one of its dated snapshots; None if unknown."""
    if model in TABLE:
        return TABLE[model]
    matches = [key for key in TABLE if model.startswith(key) and _SNAPSHOT.fullmatch(model[len(key) :])]
    return TABLE[max(matches, key=len)] if matches else None


def model_card(model: str, config: ModelConfig) -> ModelCard:
    """Price and context window for ``model``, config first; warns once for what is unknown."""
    known = lookup(model)
    price = known.price if known else None
    if config.price is not None:
        p = config.price
        price = Price(
            p.input,
            p.output,
            p.input if p.cache_read is None else p.cache_read,
            p.input if p.cache_write is None else p.cache_write,
        )
    if price is None:
        warn_once(
            f"price:{model}",
            f"no price known for model {model!r}: its cost is recorded as unknown (null). "
            "Set model.price (USD per million tokens) in the run config to count it.",
        )
    window = config.context_window or (known.context_window if known else None)
    if window is None:
        warn_once(
            f"window:{model}",
            f"context window of model {model!r} unknown: assuming {DEFAULT_CONTEXT_WINDOW} tokens "
            "(set model.context_window in the run config).",
        )
        window = DEFAULT_CONTEXT_WINDOW
    return ModelCard(price, window)
