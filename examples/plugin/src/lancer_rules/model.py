"""``rules:FILE``: a model that follows a fixed policy of regex-triggered tool calls.

Each rule fires at most once: on every turn, the first unfired rule whose ``when`` pattern
matches the latest message (the task, then each tool result) makes the reply.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from lancer.core.config import ModelConfig
from lancer.core.errors import ConfigError, ModelError
from lancer.core.model import Message, ModelResponse, ToolCall, ToolSpec, Usage


class RulesModel:
    supports_images = False

    def __init__(self, model_name: str, config: ModelConfig) -> None:
        path = Path(model_name)
        if not path.is_file():
            raise ConfigError(f"rules file {path} does not exist (use --model rules:FILE)")
        data: Any = yaml.safe_load(path.read_text())
        rules = data.get("rules") if isinstance(data, dict) else None
        if not isinstance(rules, list) or not all(isinstance(r, dict) and "call" in r for r in rules):
            raise ConfigError(f"{path}: expected `rules:`, a list of {{when, say, call: {{name, arguments}}}}")
        self.name = f"rules:{model_name}"
        self._rules = rules
        self._fired: set[int] = set()

    def query(self, messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        latest = next((m.content for m in reversed(messages) if m.role in ("user", "tool")), "")
        for i, rule in enumerate(self._rules):
            if i in self._fired or not re.search(rule.get("when", ""), latest, re.MULTILINE):
                continue
            self._fired.add(i)
            call = rule["call"]
            tool_call = ToolCall(f"rule_{i}", call["name"], dict(call.get("arguments") or {}))
            return ModelResponse(rule.get("say", ""), [tool_call], Usage(cost_usd=0.0))
        raise ModelError(f"{self.name}: no rule matches the latest message: {latest[:200]!r}")
