"""Model providers, found by name.

``create_model("provider:model", config)`` resolves the provider from, in order: the
built-ins below, the ``lancer.models`` entry-point group of installed packages, or a
``package.module:Class`` path. Built-ins are imported only when used, so a missing SDK or
a slow import never costs a run that does not need it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from agent.config import ModelConfig
from agent.errors import ConfigError
from agent.models.base import Message, Model, ModelResponse, ToolCall, ToolSpec, Usage

__all__ = ["Message", "Model", "ModelResponse", "ToolCall", "ToolSpec", "Usage", "create_model"]

# name -> "module:factory"; a factory is called as factory(model_name, config).
BUILTIN_PROVIDERS = {
    "scripted": "agent.models.scripted:ScriptedModel",
    "replay": "agent.models.replay:ReplayModel",
}

ENTRY_POINT_GROUP = "lancer.models"


def create_model(spec: str, config: ModelConfig | None = None) -> Model:
    """Build the model named by ``spec`` (``provider:model``); raises ConfigError if it cannot."""
    provider, sep, name = spec.partition(":")
    if not sep or not provider or not name:
        raise ConfigError(f"model spec {spec!r} is not provider:model (e.g. openai:gpt-4o, scripted:turns.yaml)")
    factory = _find_provider(provider, name)
    if factory is None:
        known = ", ".join(sorted({*BUILTIN_PROVIDERS, *_plugin_names()}))
        raise ConfigError(f"unknown model provider {provider!r} in {spec!r}; known: {known}")
    model = factory(name, config or ModelConfig())
    if not isinstance(model, Model):
        raise ConfigError(f"provider {provider!r} made {type(model).__name__}, which lacks name/supports_images/query")
    return model


def _find_provider(provider: str, name: str) -> Callable[[str, ModelConfig], Any] | None:
    if provider in BUILTIN_PROVIDERS:
        return _import(BUILTIN_PROVIDERS[provider])
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == provider:
            return ep.load()  # type: ignore[no-any-return]
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
