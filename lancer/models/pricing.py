"""What a model costs and how much it reads: prices and context windows.

Prices come from genai-prices (pydantic's price data for hundreds of models and providers,
with cache and long-context tiers), read from the snapshot shipped inside the package:
there is no network at run time. lancer never starts genai-prices' ``UpdatePrices`` (the
only code in it that downloads) and builds its own snapshot from the bundled data, so an
update started by anything else in the process cannot change prices in the middle of a run.

A call is priced on its own usage, so a long-context tier (e.g. Claude Sonnet 4.5 above
200k prompt tokens) applies to the calls that cross it and to no others. ``model.price``
in the run config replaces the catalog (flat prices, no tiers). A model the catalog does
not know keeps an unknown (null) cost; it is never priced as a look-alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Protocol

from lancer.core.config import ModelConfig
from lancer.core.model import Usage
from lancer.models.notices import warn_once

if TYPE_CHECKING:  # genai_prices itself is imported on first use: its data is large
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo, Provider

DEFAULT_CONTEXT_WINDOW = 128_000
CATALOG = "genai-prices"


class Pricing(Protocol):
    @property
    def source(self) -> str:
        """Where the prices come from, for the trajectory: "config", "genai-prices 0.2.3 (...)"."""

    def cost(self, usage: Usage) -> float:
        """USD for one call's ``usage`` (input_tokens include its cache reads and writes)."""

    def upper_bound(self, input_tokens: int, output_tokens: int) -> float:
        """The most a call reading ``input_tokens`` and writing ``output_tokens`` can cost."""


@dataclass(frozen=True)
class Price:
    """Flat USD per million tokens, from ``model.price`` in the run config."""

    input: float
    output: float
    cache_read: float
    cache_write: float
    source: str = "config"

    def cost(self, usage: Usage) -> float:
        uncached = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
        return (
            uncached * self.input
            + usage.cache_read_tokens * self.cache_read
            + usage.cache_write_tokens * self.cache_write
            + usage.output_tokens * self.output
        ) / 1_000_000

    def upper_bound(self, input_tokens: int, output_tokens: int) -> float:
        # Every prompt token at its dearest: uncached, or written to the cache if that costs more.
        return (input_tokens * max(self.input, self.cache_write) + output_tokens * self.output) / 1_000_000


@dataclass(frozen=True)
class CatalogPrice:
    """One model's genai-prices entry, priced per call (tiers depend on that call's prompt)."""

    provider: Provider = field(compare=False, repr=False)
    model: ModelInfo = field(compare=False, repr=False)
    source: str

    def cost(self, usage: Usage) -> float:
        from genai_prices import Usage as CatalogUsage

        calculation = self.model.calc_price(
            CatalogUsage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            ),
            self.provider,
            genai_request_timestamp=datetime.now(UTC),  # for prices that changed on a date: today's
        )
        return float(calculation.total_price)

    def upper_bound(self, input_tokens: int, output_tokens: int) -> float:
        uncached = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        all_written = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_write_tokens=input_tokens)
        return max(self.cost(uncached), self.cost(all_written))


@dataclass(frozen=True)
class ModelCard:
    price: Pricing | None
    context_window: int


def catalog_version() -> str:
    from importlib.metadata import version

    return version("genai-prices")


@cache
def _snapshot() -> DataSnapshot:
    from genai_prices.data import providers
    from genai_prices.data_snapshot import DataSnapshot

    return DataSnapshot(providers=providers, from_auto_update=False)


def lookup(model: str, provider: str, base_url: str | None = None) -> tuple[CatalogPrice, int | None] | None:
    """The catalog's price for ``model`` as served by lancer's ``provider`` (and its window).

    In order: the provider whose API URL ``base_url`` is (OpenRouter, Groq, DeepSeek ...);
    the provider named like lancer's (openai, anthropic, or a plugin named after a
    genai-prices provider); for any other (openai-compatible) server, the provider the
    model's name points to (gpt-* to OpenAI, deepseek-* to DeepSeek ...), then OpenRouter's
    ``vendor/model`` names, then ``provider/model`` names (LiteLLM's). None if none knows it.
    """
    snapshot = _snapshot()
    attempts: list[tuple[str | None, str | None]] = []
    if base_url:
        attempts.append((None, base_url))
    if provider != "openai-compatible" and _is_catalog_provider(provider):
        attempts.append((provider, None))
    else:
        attempts += [(None, None), ("openrouter", None), ("litellm", None)]
    for provider_id, api_url in attempts:
        try:
            found, entry = snapshot.find_provider_model(model, None, provider_id, api_url)
        except LookupError:
            continue
        source = f"{CATALOG} {catalog_version()} ({found.id} {entry.id})"
        return CatalogPrice(found, entry, source), entry.context_window
    return None


def _is_catalog_provider(name: str) -> bool:
    from genai_prices.data_snapshot import find_provider_by_id

    return find_provider_by_id(_snapshot().providers, name) is not None


def model_card(model: str, config: ModelConfig, provider: str = "openai", base_url: str | None = None) -> ModelCard:
    """Price and context window for ``model``, config first; warns once for what is unknown."""
    known = lookup(model, provider, base_url)
    price: Pricing | None = known[0] if known else None
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
            f"no price known for model {model!r} ({CATALOG} {catalog_version()} has none for {provider}): "
            "its cost is recorded as unknown (null). "
            "Set model.price (USD per million tokens) in the run config to count it.",
        )
    window = config.context_window or (known[1] if known else None)
    if window is None:
        warn_once(
            f"window:{model}",
            f"context window of model {model!r} unknown: assuming {DEFAULT_CONTEXT_WINDOW} tokens "
            "(set model.context_window in the run config).",
        )
        window = DEFAULT_CONTEXT_WINDOW
    return ModelCard(price, window)
