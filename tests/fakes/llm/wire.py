"""What the fake model server's protocols share: the script's items, what it records, the
invalid-request error of either provider, made-up token figures and tool call ids."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from lancer.models.scripted import ScriptedTurn


@dataclass
class ApiError:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    # Streaming requests get it as an ``error`` event after the stream began (status 200),
    # as Anthropic reports overload mid-reply.
    mid_stream: bool = False


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class ServedUsage:
    protocol: str  # "openai" | "anthropic"
    # The wire fields exactly as sent.
    fields: dict[str, Any]


Item = ScriptedTurn | ApiError


def invalid_request(protocol: str, message: str) -> ApiError:
    if protocol == "openai":
        error = {"message": message, "type": "invalid_request_error", "param": "messages", "code": None}
        return ApiError(400, {"error": error})
    return ApiError(400, {"type": "error", "error": {"type": "invalid_request_error", "message": message}})


def token_figures(turn: ScriptedTurn, n: int) -> tuple[int, int, int]:
    """(prompt, output, cached) tokens: the turn's usage if the script gives one, else
    distinct made-up figures per turn."""
    given = turn.usage.input_tokens or turn.usage.output_tokens
    prompt = turn.usage.input_tokens if given else 1000 + 137 * n
    output = turn.usage.output_tokens if given else 40 + 7 * n
    cached = 0 if n == 1 else prompt // 2
    return prompt, output, cached


def calls(turn: ScriptedTurn, n: int, prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(f"{prefix}{n:03d}{i}{uuid.uuid4().hex[:8]}", c.name, c.arguments) for i, c in enumerate(turn.tool_calls)]
