"""Small conversations and settings shared by the provider tests."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from lancer.core.config import ModelConfig
from lancer.core.model import Message, Model, ModelResponse, ToolSpec, Usage
from lancer.models.scripted import ScriptedCall, ScriptedTurn

# Shaped like a real key (the redactor knows the shape too); the tests check it is nowhere.
OPENAI_KEY = "sk-test-0penai0nly4tests0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-anthr0pic4tests0123456789ab"

BASH = ToolSpec(
    "bash",
    "Run a shell command in the repository.",
    {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
)
SUBMIT = ToolSpec("submit", "Submit the work.", {"type": "object", "properties": {}})
TOOLS = [BASH, SUBMIT]


def fast_config(**overrides: Any) -> ModelConfig:
    """Retries that wait milliseconds, so a burst of errors costs a test nothing."""
    settings: dict[str, Any] = {"retry_initial_wait_s": 0.01, "retry_max_wait_s": 0.05, "retry_max_total_s": 20}
    return ModelConfig(**{**settings, **overrides})


def turn(content: str = "", *calls: tuple[str, dict[str, Any]]) -> ScriptedTurn:
    return ScriptedTurn(content=content, tool_calls=[ScriptedCall(name=n, arguments=a) for n, a in calls])


def start() -> list[Message]:
    return [Message("system", "You are a careful engineer."), Message("user", "Fix the discount bug.")]


def answer(
    messages: list[Message], response: ModelResponse, outputs: list[str], images: list[str] | None = None
) -> None:
    """Appends the assistant turn and one tool result per call, as the loop does."""
    messages.append(Message("assistant", response.content, response.tool_calls))
    for call, output in zip(response.tool_calls, outputs, strict=True):
        messages.append(Message("tool", output, tool_call_id=call.id, name=call.name, images=images or []))


# Three replies with tool calls: enough turns for caching and usage sums to show.
THREE_TURNS = [
    turn("a", ("bash", {"command": "ls"})),
    turn("b", ("bash", {"command": "pwd"})),
    turn("c", ("submit", {})),
]


def play(model: Model, replies: int) -> list[Usage]:
    """Query ``model`` ``replies`` times as the loop does; each reply's usage."""
    messages, usages = start(), []
    for _ in range(replies):
        response = model.query(messages, TOOLS)
        usages.append(response.usage)
        answer(messages, response, ["ok"] * len(response.tool_calls))
    return usages


def tiny_png(path: Path) -> Path:
    """A real 2x2 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    path.write_bytes(png)
    return path
