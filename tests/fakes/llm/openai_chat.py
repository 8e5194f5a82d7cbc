"""OpenAI Chat Completions (``POST /v1/chat/completions``) as the fake server speaks it: the
real error bodies, the request rules the API enforces, replies whole or as chunks."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from lancer.models.scripted import ScriptedTurn
from tests.fakes.llm.wire import ApiError, calls, token_figures


def openai_error(status: int, retry_after: float | None = None) -> ApiError:
    bodies = {
        400: (
            "This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 "
            "tokens (including 412 in the functions). Please reduce the length of the messages or functions.",
            "invalid_request_error",
            "context_length_exceeded",
        ),
        401: (
            "Incorrect API key provided: sk-wrong*****************1234. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        429: (
            "Rate limit reached for gpt-4o in organization org-test on tokens per min (TPM): Limit 30000, "
            "Used 29800, Requested 1200. Please try again in 2.4s. Visit https://platform.openai.com/account/"
            "rate-limits to learn more.",
            "tokens",
            "rate_limit_exceeded",
        ),
        500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
        503: ("The engine is currently overloaded, please try again later", "server_error", None),
    }
    message, err_type, code = bodies[status]
    headers = {"x-request-id": f"req_{uuid.uuid4().hex[:16]}"}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    return ApiError(status, {"error": {"message": message, "type": err_type, "param": None, "code": code}}, headers)


def problem(body: dict[str, Any]) -> str | None:
    if not body.get("model") or not isinstance(body.get("messages"), list):
        return "you must provide a model parameter and messages"
    open_calls: set[str] = set()
    previous = None
    for i, m in enumerate(body["messages"]):
        role = m.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            return f"Invalid value for 'messages[{i}].role': {role!r}"
        if role == "tool":
            if previous not in ("assistant", "tool") or m.get("tool_call_id") not in open_calls:
                return (
                    f"Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    f"'tool_calls'. (messages[{i}])"
                )
            open_calls.discard(m["tool_call_id"])
        elif open_calls:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {sorted(open_calls)}"
            )
        if role == "assistant":
            open_calls = {c["id"] for c in m.get("tool_calls") or []}
        previous = role
    return None


def usage(turn: ScriptedTurn, n: int) -> dict[str, Any]:
    prompt, output, cached = token_figures(turn, n)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion(body: dict[str, Any], turn: ScriptedTurn, n: int, usage: dict[str, Any]) -> dict[str, Any]:
    tool_calls = calls(turn, n, "call_")
    message: dict[str, Any] = {"role": "assistant", "content": turn.content or None, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for cid, name, args in tool_calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if tool_calls else "stop"}
        ],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def chunks(
    body: dict[str, Any], turn: ScriptedTurn, n: int, usage: dict[str, Any], include_usage: bool
) -> Iterator[tuple[str | None, str]]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_fake",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[None, str]:
        extra = {"usage": None} if include_usage else {}
        return None, json.dumps(
            {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
        )

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    text = turn.content
    for start in range(0, len(text), 7):
        yield chunk({"content": text[start : start + 7]})
    tool_calls = calls(turn, n, "call_")
    for index, (cid, name, args) in enumerate(tool_calls):
        yield chunk(
            {
                "tool_calls": [
                    {"index": index, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
                ]
            }
        )
        arguments = json.dumps(args)
        for start in range(0, len(arguments), 5):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[start : start + 5]}}]})
    yield chunk({}, "tool_calls" if tool_calls else "stop")
    if include_usage:
        yield None, json.dumps({**base, "choices": [], "usage": usage})
    yield None, "[DONE]"
