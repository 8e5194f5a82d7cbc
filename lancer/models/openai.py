"""``openai:MODEL``: Chat Completions with native tool calling, through the openai SDK.

Chat Completions is what every OpenAI-compatible server speaks (vLLM, Ollama, OpenRouter,
Together, LiteLLM ...). ``openai-compatible:MODEL`` is the same provider sending
``max_tokens``, the parameter older servers know, instead of ``max_completion_tokens``.

Key: OPENAI_API_KEY (or model.api_key_env); none needed when a server is set. Server:
model.base_url (--base-url), else OPENAI_BASE_URL, else api.openai.com; openai-compatible
has no default server and asks for one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from lancer.core.config import ModelConfig
from lancer.core.errors import ConfigError, ModelError
from lancer.core.model import Message, ModelResponse, ToolCall, ToolSpec, Usage
from lancer.models.api import ApiModel, missing_image_note, read_image
from lancer.models.retry import SdkErrors

SCREENSHOTS_NOTE = "Screenshots from the tool results above:"


class OpenAIModel(ApiModel):
    provider = "openai"
    key_env = "OPENAI_API_KEY"
    base_url_env = "OPENAI_BASE_URL"
    sdk_client = openai.OpenAI
    sdk_errors = SdkErrors(status=openai.APIStatusError, connection=openai.APIConnectionError, base=openai.OpenAIError)
    # The current name; older compatible servers only know "max_tokens".
    max_tokens_param = "max_completion_tokens"
    tiktoken_is_exact = True

    def _send(self, messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(messages),
            self.max_tokens_param: self.config.max_output_tokens,
        }
        if tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in tools
            ]
        if self.config.temperature is not None:
            params["temperature"] = self.config.temperature
        if self.config.reasoning_effort:
            params["reasoning_effort"] = self.config.reasoning_effort
        # Posted as built: ``chat.completions.create`` would first walk the whole history
        # against its type hints (a few ms per call at 20 messages, growing with every turn)
        # to produce the very same JSON.
        if self.config.stream:
            body = {**params, "stream": True, "stream_options": {"include_usage": True}}
            chunks = self.client.post(
                "/chat/completions",
                body=body,
                cast_to=ChatCompletion,
                stream=True,
                stream_cls=openai.Stream[ChatCompletionChunk],
            )
            return _from_stream(chunks)
        return _from_completion(self.client.post("/chat/completions", body=params, cast_to=ChatCompletion))


class OpenAICompatibleModel(OpenAIModel):
    provider = "openai-compatible"
    max_tokens_param = "max_tokens"
    images_by_default = False
    tiktoken_is_exact = False  # whatever model the server runs

    def __init__(self, model_name: str, config: ModelConfig) -> None:
        # Without a server it would quietly go to api.openai.com, which is not what the
        # provider is for; with one, no key is needed (a keyless vLLM, llama.cpp, Ollama).
        if self.server(config) is None:
            raise ConfigError(
                f"{self.provider}:{model_name} needs its server's base URL: pass --base-url http://HOST:PORT/v1, "
                f"or set {self.base_url_env} (or model.base_url in --config)"
            )
        super().__init__(model_name, config)


def to_openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """lancer messages as Chat Completions messages.

    A tool message cannot hold images, so the screenshots of a run of tool results follow
    them in one user message (all tool results must come right after their assistant turn).
    """
    out: list[dict[str, Any]] = []
    pending_images: list[str] = []
    for message in messages:
        if message.role != "tool" and pending_images:
            out.append({"role": "user", "content": _image_parts(pending_images, SCREENSHOTS_NOTE)})
            pending_images = []
        if message.role == "tool":
            out.append({"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.content})
            pending_images += message.images
        elif message.role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": message.content or None}
            if message.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": _arguments_json(call)},
                    }
                    for call in message.tool_calls
                ]
            out.append(entry)
        elif message.role == "user" and message.images:
            out.append({"role": "user", "content": _image_parts(message.images, message.content)})
        else:
            out.append({"role": message.role, "content": message.content})
    if pending_images:
        out.append({"role": "user", "content": _image_parts(pending_images, SCREENSHOTS_NOTE)})
    return out


def _image_parts(paths: list[str], text: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for path in paths:
        image = read_image(path)
        if image is None:
            parts.append({"type": "text", "text": missing_image_note(path)})
        else:
            media_type, data = image
            parts.append({"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}})
    return parts


def _arguments_json(call: ToolCall) -> str:
    if call.arguments is None:
        return call.raw_arguments or "{}"
    return json.dumps(call.arguments)


def parse_arguments(name: str, call_id: str, raw: str) -> ToolCall:
    """A ToolCall whose ``arguments`` is None when ``raw`` is not a JSON object."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        return ToolCall(call_id, name, None, raw)
    return ToolCall(call_id, name, value)


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage(cost_usd=None)
    details = getattr(usage, "prompt_tokens_details", None)
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cache_read_tokens=(getattr(details, "cached_tokens", None) or 0) if details else 0,
        cache_write_tokens=(getattr(details, "cache_write_tokens", None) or 0) if details else 0,
    )


def _events(finish_reason: str | None, usage: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    if finish_reason == "length":
        events.append({"type": "truncated", "detail": "the reply hit max_output_tokens"})
    if usage is None:
        events.append({"type": "usage_missing", "detail": "the server reported no token usage: cost unknown"})
    return events


def _from_completion(completion: Any) -> ModelResponse:
    if not completion.choices:
        raise ModelError(f"the server answered with no choices: {str(completion)[:200]}")
    choice = completion.choices[0]
    message = choice.message
    calls = [
        parse_arguments(tc.function.name, tc.id, tc.function.arguments or "")
        for tc in message.tool_calls or []
        if getattr(tc, "function", None) is not None
    ]
    usage = completion.usage
    return ModelResponse(message.content or "", calls, _usage(usage), _events(choice.finish_reason, usage))


def _from_stream(chunks: Iterable[Any]) -> ModelResponse:
    """Assembles streamed deltas: text, tool calls by index, and the usage chunk at the end."""
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage: Any = None
    finish_reason: str | None = None
    for chunk in chunks:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices or []:
            if choice.index != 0:
                continue
            finish_reason = choice.finish_reason or finish_reason
            delta = choice.delta
            if delta.content:
                text.append(delta.content)
            for tc in delta.tool_calls or []:
                call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = tc.id or call["id"]
                if tc.function is not None:
                    call["name"] += tc.function.name or ""
                    call["arguments"] += tc.function.arguments or ""
    tool_calls = [parse_arguments(c["name"], c["id"], c["arguments"]) for _, c in sorted(calls.items())]
    return ModelResponse("".join(text), tool_calls, _usage(usage), _events(finish_reason, usage))
