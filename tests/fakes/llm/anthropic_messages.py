"""Anthropic Messages (``POST /v1/messages``) as the fake server speaks it: the real error
bodies, the request rules the API enforces, replies whole or as server-sent events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from lancer.models.scripted import ScriptedTurn
from tests.fakes.llm.wire import ApiError, calls, token_figures


def anthropic_error(status: int, retry_after: float | None = None) -> ApiError:
    bodies = {
        400: ("invalid_request_error", "prompt is too long: 215304 tokens > 200000 maximum"),
        401: ("authentication_error", "invalid x-api-key"),
        429: (
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 30,000 input "
            "tokens per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
        ),
        500: ("api_error", "Internal server error"),
        529: ("overloaded_error", "Overloaded"),
    }
    err_type, message = bodies[status]
    headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    return ApiError(status, {"type": "error", "error": {"type": err_type, "message": message}}, headers)


def problem(body: dict[str, Any]) -> str | None:
    if not body.get("model") or not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    system = body.get("system")
    top_blocks: list[dict[str, Any]] = [*(body.get("tools") or []), *(system if isinstance(system, list) else [])]
    breakpoints = sum(1 for block in top_blocks if "cache_control" in block)
    thinking = (body.get("thinking") or {}).get("type") == "enabled"
    if thinking and body["thinking"].get("budget_tokens", 0) >= body["max_tokens"]:
        return "`max_tokens` must be greater than `thinking.budget_tokens`"
    expected_results: set[str] = set()
    for i, m in enumerate(body.get("messages") or []):
        want = "user" if i % 2 == 0 else "assistant"
        if m.get("role") != want:
            return f'messages: roles must alternate between "user" and "assistant" (messages.{i})'
        blocks = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
        if not blocks:
            return f"messages.{i}: all messages must have non-empty content"
        breakpoints += sum(1 for block in blocks if "cache_control" in block)
        for j, block in enumerate(blocks):
            if block.get("type") == "text" and not block.get("text"):
                return f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
        results = [b for b in blocks if b.get("type") == "tool_result"]
        if expected_results:
            got = {b.get("tool_use_id") for b in results}
            if got != expected_results or blocks[: len(results)] != results:
                return (
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{sorted(expected_results - got)}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message."
                )
        elif results:
            return f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` blocks"
        expected_results = {b["id"] for b in blocks if b.get("type") == "tool_use"}
        latest_call = m["role"] == "assistant" and i == len(body["messages"]) - 2 and expected_results
        if thinking and latest_call and blocks[0].get("type") not in ("thinking", "redacted_thinking"):
            return (
                f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                f"`{blocks[0].get('type')}`. When `thinking` is enabled, a final `assistant` message must "
                "start with a thinking block."
            )
    if breakpoints > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
    return None


def usage(turn: ScriptedTurn, n: int) -> dict[str, Any]:
    prompt, output, cached = token_figures(turn, n)
    written = 300 + n
    return {
        "input_tokens": prompt - cached - written,
        "output_tokens": output,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def _blocks(turn: ScriptedTurn, n: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if turn.content:
        blocks.append({"type": "text", "text": turn.content})
    for cid, name, args in calls(turn, n, "toolu_01"):
        blocks.append({"type": "tool_use", "id": cid, "name": name, "input": args})
    return blocks


def _thinking_block(body: dict[str, Any], n: int) -> list[dict[str, Any]]:
    if (body.get("thinking") or {}).get("type") != "enabled":
        return []
    signature = f"sig-{n}-{uuid.uuid4().hex}"
    return [{"type": "thinking", "thinking": f"Turn {n}: thinking it over.", "signature": signature}]


def message(body: dict[str, Any], turn: ScriptedTurn, n: int, usage: dict[str, Any]) -> dict[str, Any]:
    blocks = _thinking_block(body, n) + _blocks(turn, n)
    return {
        "id": f"msg_01{uuid.uuid4().hex[:22]}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": blocks,
        "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn",
        "stop_sequence": None,
        "usage": {
            **usage,
            "cache_creation": {
                "ephemeral_5m_input_tokens": usage["cache_creation_input_tokens"],
                "ephemeral_1h_input_tokens": 0,
            },
            "service_tier": "standard",
        },
    }


def events(body: dict[str, Any], turn: ScriptedTurn, n: int, usage: dict[str, Any]) -> Iterator[tuple[str | None, str]]:
    reply = message(body, turn, n, usage)
    blocks = reply.pop("content")
    start_usage = {**reply["usage"], "output_tokens": 1}

    def event(name: str, data: dict[str, Any]) -> tuple[str, str]:
        return name, json.dumps({"type": name, **data})

    def start(index: int, block: dict[str, Any]) -> tuple[str, str]:
        return event("content_block_start", {"index": index, "content_block": block})

    def delta(index: int, kind: str, **fields: Any) -> tuple[str, str]:
        return event("content_block_delta", {"index": index, "delta": {"type": kind, **fields}})

    yield event("message_start", {"message": {**reply, "content": [], "stop_reason": None, "usage": start_usage}})
    yield "ping", json.dumps({"type": "ping"})
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            yield start(index, {"type": "text", "text": ""})
            for i in range(0, len(block["text"]), 9):
                yield delta(index, "text_delta", text=block["text"][i : i + 9])
        elif block["type"] == "thinking":
            yield start(index, {"type": "thinking", "thinking": "", "signature": ""})
            yield delta(index, "thinking_delta", thinking=block["thinking"])
            yield delta(index, "signature_delta", signature=block["signature"])
        else:
            yield start(index, {**block, "input": {}})
            arguments = json.dumps(block["input"])
            for i in range(0, len(arguments), 6):
                yield delta(index, "input_json_delta", partial_json=arguments[i : i + 6])
        yield event("content_block_stop", {"index": index})
    yield event(
        "message_delta",
        {
            "delta": {"stop_reason": reply["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield event("message_stop", {})


def broken_stream(body: dict[str, Any], error: ApiError) -> Iterator[tuple[str | None, str]]:
    """A stream that began (message_start) and then reports ``error``, as an overload mid-reply."""
    reply = message(body, ScriptedTurn(), 0, usage(ScriptedTurn(), 1))
    yield "message_start", json.dumps({"type": "message_start", "message": {**reply, "content": []}})
    yield "error", json.dumps(error.body)
