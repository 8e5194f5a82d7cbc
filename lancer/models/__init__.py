"""Model providers, found by name.

``create_model(spec, config)`` reads ``spec`` in one of two forms:

- ``provider:MODEL``: a built-in provider below, else one registered by an installed
  package in the ``lancer.models`` entry-point group. Provider names never contain a dot;
  MODEL is everything after the first colon, so it may hold colons (``llama3.1:8b``).
- ``package.module:Factory[:MODEL]``: when the text before the first colon has a dot, it is
  an importable module and Factory a callable in it (no install needed, only PYTHONPATH);
  it is called with MODEL, or with "" when there is none.

Either way the factory is called as ``factory(model_name, config)``. Built-ins are imported
only when used, so a missing SDK or a slow import never costs a run that does not need it.
A provider listed in NAMELESS_PROVIDERS is also named alone (``oracle``). A model that
plays the task's own material implements ``bind_task`` (base.TaskBound): ``create_model``
calls it with the task the model is made for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from lancer.core.config import ModelConfig
from lancer.core.errors import ConfigError
from lancer.core.model import Message, Model, ModelResponse, TaskBound, ToolCall, ToolSpec, Usage

if TYPE_CHECKING:
    from lancer.core.tasks import Task

__all__ = ["Message", "Model", "ModelResponse", "ToolCall", "ToolSpec", "Usage", "create_model", "known_price"]

# name -> "module:factory"; a factory is called as factory(model_name, config).
BUILTIN_PROVIDERS = {
    "scripted": "lancer.models.scripted:ScriptedModel",
    "replay": "lancer.models.replay:ReplayModel",
    "openai": "lancer.models.openai:OpenAIModel",
    "openai-compatible": "lancer.models.openai:OpenAICompatibleModel",
    "anthropic": "lancer.models.anthropic:AnthropicModel",
    "oracle": "lancer.models.oracle:OracleModel",
}
# Providers that need no model name: the spec may be the provider alone.
NAMELESS_PROVIDERS = {"oracle"}

ENTRY_POINT_GROUP = "lancer.models"


def create_model(spec: str, config: ModelConfig | None = None, task: Task | None = None) -> Model:
    """Build the model named by ``spec`` (see above) for ``task``; raises ConfigError if it cannot."""
    factory, provider, name = _resolve(spec)
    model: object = factory(name, config or ModelConfig())
    if not isinstance(model, Model):
        raise ConfigError(f"provider {provider!r} made {type(model).__name__}, which lacks name/supports_images/query")
    if task is not None and isinstance(model, TaskBound):
        model.bind_task(task)
    return model


def known_price(spec: str, config: ModelConfig | None = None) -> bool | None:
    """Whether ``spec``'s calls will be priced, told before the model is made (so before its key
    is looked for): a factory with a ``price_for(name, config)`` classmethod tells; None when
    only the made model can (a plugin's)."""
    factory, _, name = _resolve(spec)
    price_for = getattr(factory, "price_for", None)
    return None if price_for is None else price_for(name, config or ModelConfig()) is not None


def _resolve(spec: str) -> tuple[Callable[[str, ModelConfig], Any], str, str]:
    """(factory, provider, model name) of ``spec``; raises ConfigError if there is none."""
    provider, sep, name = spec.partition(":")
    factory: Callable[[str, ModelConfig], Any] | None
    if "." in provider:
        attr, _, name = name.partition(":")
        if not attr:
            raise ConfigError(f"model spec {spec!r} names a module but no factory: use package.module:Factory[:MODEL]")
        factory = _import(f"{provider}:{attr}")
        provider = f"{provider}:{attr}"
    elif (not sep or not provider or not name) and provider not in NAMELESS_PROVIDERS:
        raise ConfigError(f"model spec {spec!r} is not provider:model (e.g. openai:gpt-4o, scripted:turns.yaml)")
    else:
        factory = _find_provider(provider, name)
    if factory is None:
        known = ", ".join(sorted({*BUILTIN_PROVIDERS, *_plugin_names()}))
        raise ConfigError(f"unknown model provider {provider!r} in {spec!r}; known: {known}")
    return factory, provider, name


def _find_provider(provider: str, name: str) -> Callable[[str, ModelConfig], Any] | None:
    if provider in BUILTIN_PROVIDERS:
        return _import(BUILTIN_PROVIDERS[provider])
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == provider:
            try:
                return ep.load()  # type: ignore[no-any-return]
            except (ImportError, AttributeError) as e:
                raise ConfigError(f"model provider {provider!r} ({ep.value}) failed to load: {e}") from None
    return None


def _plugin_names() -> list[str]:
    return [ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)]


def _import(target: str) -> Callable[[str, ModelConfig], Any]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"cannot import model provider {target}: {e}") from None
    try:
        return getattr(module, attr)  # type: ignore[no-any-return]
    except AttributeError:
        raise ConfigError(f"{module_name} has no {attr}") from None
