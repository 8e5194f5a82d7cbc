"""``anthropic:MODEL``: the Messages API with tool_use, through the anthropic SDK.

Key: ANTHROPIC_API_KEY (or model.api_key_env). Server: model.base_url, else
ANTHROPIC_BASE_URL, else api.anthropic.com.

Prompt caching (model.prompt_caching, on by default) puts cache_control breakpoints on the
tools, the system prompt and the two latest user turns: four, the API's maximum. Each call
then reads the history up to the previous turn from the cache and writes only the new turn.

Extended thinking (model.thinking_budget) must hand the thinking blocks of an assistant turn
back with it. lancer's Message has no room for provider data, so the provider keeps them,
keyed by the turn's tool-call ids (or its text), and puts them back when that turn is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic

from lancer.core.config import ModelConfig
from lancer.core.errors import ConfigError
from lancer.core.model import Message, ModelResponse, ToolCall, ToolSpec, Usage
from lancer.models.api import ApiModel, missing_image_note, read_image
from lancer.models.retry import SdkErrors

CACHE = {"type": "ephemeral"}
# Cache breakpoints on the latest user turns; with tools and system that makes the API's four.
CACHED_TURNS = 2

TurnKey = tuple[str, ...]


class AnthropicModel(ApiModel):
    provider = "anthropic"
    key_env = "ANTHROPIC_API_KEY"
    base_url_env = "ANTHROPIC_BASE_URL"
    sdk_client = anthropic.Anthropic
    sdk_errors = SdkErrors(
        status=anthropic.APIStatusError, connection=anthropic.APIConnectionError, base=anthropic.AnthropicError
    )

    def __init__(self, model_name: str, config: ModelConfig) -> None:
        if config.thinking_budget is not None and config.temperature is not None:
            raise ConfigError("model.temperature cannot be set with model.thinking_budget (Anthropic requires 1)")
        super().__init__(model_name, config)
        self._thinking: dict[TurnKey, list[dict[str, Any]]] = {}

    def max_output_tokens(self) -> int:
        # The thinking budget is part of max_tokens, so the reply keeps its own allowance.
        return self.config.max_output_tokens + (self.config.thinking_budget or 0)

    def _send(self, messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        system, turns = to_anthropic_messages(messages, lambda m: self._thinking.get(_turn_key(m), []))
        params: dict[str, Any] = {"model": self.model, "max_tokens": self.max_output_tokens(), "messages": turns}
        if system:
            params["system"] = [{"type": "text", "text": system}]
        if tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
            ]
        if self.config.prompt_caching:
            add_cache_breakpoints(params)
        if self.config.temperature is not None:
            params["temperature"] = self.config.temperature
        if self.config.thinking_budget is not None:
            params["thinking"] = {"type": "enabled", "budget_tokens": self.config.thinking_budget}
        if self.config.stream:
            with self.client.messages.stream(**params) as stream:
                reply = stream.get_final_message()
        else:
            reply = self.client.messages.create(**params)
        return self._parse(reply)

    def _parse(self, reply: Any) -> ModelResponse:
        text: list[str] = []
        calls: list[ToolCall] = []
        thinking: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for block in reply.content:
            if block.type == "text":
                text.append(block.text)
            elif block.type == "tool_use":
                arguments = dict(block.input) if isinstance(block.input, dict) else None
                calls.append(ToolCall(block.id, block.name, arguments))
            elif block.type == "thinking":
                thinking.append({"type": "thinking", "thinking": block.thinking, "signature": block.signature})
                if block.thinking:
                    events.append({"type": "thinking", "text": block.thinking})
            elif block.type == "redacted_thinking":
                thinking.append({"type": "redacted_thinking", "data": block.data})
        content = "".join(text)
        if thinking:
            self._thinking[_turn_key(Message("assistant", content, calls))] = thinking
        if reply.stop_reason == "max_tokens":
            events.append({"type": "truncated", "detail": "the reply hit max_tokens"})
        return ModelResponse(content, calls, _usage(reply.usage), events)


def _turn_key(message: Message) -> TurnKey:
    return tuple(c.id for c in message.tool_calls) or ("text", message.content)


def _usage(usage: Any) -> Usage:
    read = getattr(usage, "cache_read_input_tokens", None) or 0
    write = getattr(usage, "cache_creation_input_tokens", None) or 0
    # Anthropic's input_tokens leaves out cache reads and writes; lancer's includes them.
    return Usage(usage.input_tokens + read + write, usage.output_tokens, read, write)


def to_anthropic_messages(
    messages: list[Message], thinking_for: Callable[[Message], list[dict[str, Any]]] = lambda message: []
) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, messages) for the Messages API.

    Tool results become tool_result blocks (screenshots inside them) in a user turn;
    consecutive turns of one role are merged, since the API wants them alternating.
    """
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "assistant":
            role, blocks = "assistant", _assistant_blocks(message, thinking_for(message))
        elif message.role == "tool":
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id or ""}
            content = _content_blocks(message.content, message.images)
            if content:
                result["content"] = content
            role, blocks = "user", [result]
        else:
            role, blocks = "user", _content_blocks(message.content, message.images) or [_text("(empty)")]
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _assistant_blocks(message: Message, thinking: list[dict[str, Any]]) -> list[dict[str, Any]]:
    blocks = [dict(b) for b in thinking]
    if message.content:
        blocks.append(_text(message.content))
    blocks += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments if c.arguments is not None else {}}
        for c in message.tool_calls
    ]
    return blocks or [_text("(no reply)")]


def _content_blocks(text: str, images: list[str]) -> list[dict[str, Any]]:
    # The API refuses empty text blocks.
    blocks = [_text(text)] if text else []
    for path in images:
        image = read_image(path)
        if image is None:
            blocks.append(_text(missing_image_note(path)))
        else:
            media_type, data = image
            blocks.append({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
    return blocks


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def add_cache_breakpoints(params: dict[str, Any]) -> None:
    """Marks the last tool, the system prompt and the last block of the latest user turns."""
    if params.get("tools"):
        params["tools"][-1]["cache_control"] = dict(CACHE)
    if params.get("system"):
        params["system"][-1]["cache_control"] = dict(CACHE)
    user_turns = [t for t in params["messages"] if t["role"] == "user"]
    for turn in user_turns[-CACHED_TURNS:]:
        turn["content"][-1]["cache_control"] = dict(CACHE)
