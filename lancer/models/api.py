"""What the hosted-API providers (openai, anthropic) share, written once.

A provider subclasses ``ApiModel`` and supplies its SDK's client class and error classes,
one HTTP attempt (``_send``: lancer messages in, ModelResponse with usage out) and its
defaults (key and base-URL variables). This class does the rest: the key, the client,
fitting the context window, retries, cost, and the cost estimate the loop checks before
each call.
"""

from __future__ import annotations

import base64
import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from lancer.core.config import ModelConfig
from lancer.core.errors import ConfigError
from lancer.core.model import Message, ModelResponse, ToolSpec
from lancer.core.secrets import add_secret
from lancer.models.context import ContextFitter, Fitted
from lancer.models.limiter import limiter_for
from lancer.models.pricing import ModelCard, Pricing, model_card
from lancer.models.retry import RetryPolicy, SdkErrors, call_with_retries
from lancer.models.tokens import counter_for

# Sent when a custom server (vLLM, Ollama, a proxy) needs no key: the SDKs insist on one.
NO_KEY = "no-key"


class ApiModel(ABC):
    provider: ClassVar[str]  # the spec prefix, e.g. "openai"
    key_env: ClassVar[str]  # e.g. "OPENAI_API_KEY"
    base_url_env: ClassVar[str]  # e.g. "OPENAI_BASE_URL"
    # The SDK's client class: both take api_key, base_url, max_retries and timeout.
    sdk_client: ClassVar[type[Any]]
    sdk_errors: ClassVar[SdkErrors]
    images_by_default: ClassVar[bool] = True
    # Whether tiktoken is the model's own tokenizer; if not, counts are estimates.
    tiktoken_is_exact: ClassVar[bool] = False

    def __init__(self, model_name: str, config: ModelConfig) -> None:
        if not model_name.strip():
            raise ConfigError(f"{self.provider}: no model name (e.g. {self.provider}:MODEL)")
        self.model = model_name
        self.name = f"{self.provider}:{model_name}"
        self.config = config
        self.supports_images = images if (images := config.supports_images) is not None else self.images_by_default
        self.base_url = self.server(config)
        self.api_key_env = config.api_key_env or self.key_env
        self.api_key = self._api_key()
        card = self.card(model_name, config)
        self.price = card.price
        # Recorded in the trajectory's header: which prices the costs were counted with.
        self.price_source = card.price.source if card.price else None
        counter = counter_for(model_name)
        margin = 0.05 if counter.exact and self.tiktoken_is_exact else 0.2
        self.fitter = ContextFitter(card.context_window, self.max_output_tokens(), counter, margin)
        self.retry_policy = RetryPolicy.from_config(config)
        # The rate limit this endpoint shares with every run of the eval.
        self.limiter = limiter_for(config)
        self.endpoint = self.base_url or f"{self.provider} default"
        self._last_fit: tuple[tuple[int, int, int], Fitted] | None = None
        self.client: Any = shared_client(self.sdk_client, self.api_key, self.base_url, config.request_timeout_s)

    @classmethod
    def server(cls, config: ModelConfig) -> str | None:
        """The base URL the config or the environment gives; None: the provider's own."""
        return config.base_url or os.environ.get(cls.base_url_env) or None

    @classmethod
    def card(cls, model_name: str, config: ModelConfig) -> ModelCard:
        return model_card(model_name, config, cls.provider, cls.server(config))

    @classmethod
    def price_for(cls, model_name: str, config: ModelConfig) -> Pricing | None:
        """The price of ``model_name``'s tokens, known without a key (lancer.models.known_price)."""
        return cls.card(model_name, config).price

    # --- what a provider supplies -------------------------------------------------------

    @abstractmethod
    def _send(self, messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        """One request. Raises the SDK's own errors. Usage comes back unpriced (cost 0), or
        with cost None when the server reported none, so its cost stays unknown."""

    def max_output_tokens(self) -> int:
        """Tokens the reply may take (thinking included), reserved in the context window."""
        return self.config.max_output_tokens

    # --- the Model protocol ---------------------------------------------------------------

    def query(self, messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        fitted = self._fit(messages, tools)
        waited: list[float] = []
        response, retries = call_with_retries(
            lambda: self._send_limited(fitted, tools, waited),
            policy=self.retry_policy,
            errors=self.sdk_errors,
            label=self.name,
            key_env=self.api_key_env,
            on_retry_after=self._pause_everyone,
        )
        response.limiter_wait_s = round(sum(waited), 3)
        if response.usage.cost_usd is not None:
            response.usage.cost_usd = self.price.cost(response.usage) if self.price else None
        response.events = [*([fitted.event] if fitted.event else []), *retries, *response.events]
        return response

    def estimate_cost(self, messages: list[Message], tools: list[ToolSpec]) -> float | None:
        """An upper bound for the next call: every input token at its dearest (uncached or
        written to the cache), a full-length reply, at the tier that prompt's size reaches."""
        if self.price is None:
            return None
        return self.price.upper_bound(self._fit(messages, tools).tokens, self.max_output_tokens())

    # --- shared helpers -------------------------------------------------------------------

    def _send_limited(self, fitted: Fitted, tools: list[ToolSpec], waited: list[float]) -> ModelResponse:
        """One request within the rate limit it shares with every run of the eval (lancer.models.limiter)."""
        limiter, limits = self.limiter
        slot = limiter.acquire(self.endpoint, limits, fitted.tokens + self.max_output_tokens())
        waited.append(slot.waited_s)
        used = fitted.tokens + self.max_output_tokens()
        try:
            response = self._send(fitted.messages, tools)
            used = response.usage.input_tokens + response.usage.output_tokens
            return response
        finally:
            slot.release(used)

    def _pause_everyone(self, seconds: float) -> None:
        self.limiter[0].pause(self.endpoint, seconds)

    def _fit(self, messages: list[Message], tools: list[ToolSpec]) -> Fitted:
        """The loop asks for the cost estimate and then queries with the same history:
        count its tokens once, not twice, per step (histories only grow by appending)."""
        key = (len(messages), id(messages[-1]) if messages else 0, len(tools))
        if self._last_fit is None or self._last_fit[0] != key:
            self._last_fit = (key, self.fitter.fit(messages, tools))
        return self._last_fit[1]

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env, "").strip()
        if key:
            add_secret(key)  # whatever its variable's name, it never reaches a file or a message
            return key
        if self.base_url and not self.config.api_key_env:
            return NO_KEY
        raise ConfigError(
            f"{self.api_key_env} is not set: export your {self.provider} API key "
            f"(or set model.api_key_env to the variable that holds it)"
        )


_clients: dict[tuple[type[Any], str, str | None, float], Any] = {}
_clients_lock = threading.Lock()


def shared_client(sdk_client: type[Any], api_key: str, base_url: str | None, timeout: float) -> Any:
    """One SDK client per endpoint, key and timeout in this process, shared by every model
    (and so every attempt of an eval worker) that uses them: making one costs tens of ms of
    CPU (its SSL context loads the CA bundle), and a shared one keeps its connections open.
    The SDKs' clients are safe to use from many threads."""
    key = (sdk_client, api_key, base_url, timeout)
    with _clients_lock:
        if key not in _clients:
            # max_retries=0: lancer.models.retry is the one retry layer.
            _clients[key] = sdk_client(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)
        return _clients[key]


def read_image(path: str) -> tuple[str, str] | None:
    """(media type, base64 data) of an image file; None if it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    media_type = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"
    return media_type, base64.b64encode(data).decode("ascii")


def missing_image_note(path: str) -> str:
    return f"[screenshot {Path(path).name} could not be read]"
