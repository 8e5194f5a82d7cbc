"""The Tool protocol, the result and error types, and the Toolbox that dispatches calls.

Each tool declares its arguments once, as a pydantic model: that model is both the JSON
schema the model is shown and the validator of what the model sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from lancer.core.model import ToolCall, ToolSpec


class ToolError(Exception):
    """A failure the model should read and react to (bad path, no match, timeout)."""


class ToolArgs(BaseModel):
    """Base for tool arguments: unknown fields are errors the model is told about."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class ToolResult:
    output: str
    images: list[str] = field(default_factory=list)  # PNG paths on the host
    is_error: bool = False
    # Set by ``submit``: the run ends after this step. ``answer`` carries a manager's choice.
    submitted: bool = False
    answer: dict[str, Any] | None = None


class Tool(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[ToolArgs]]

    def run(self, args: Any) -> ToolResult:
        """Raises ToolError for what the model should see; anything else ends the run."""

    def close(self) -> None: ...


class FormatError(Exception):
    """The model's call does not fit any tool (unknown name, invalid arguments)."""


class Toolbox:
    def __init__(self, tools: list[Tool]) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self._specs: list[ToolSpec] | None = None

    def specs(self) -> list[ToolSpec]:
        """What the model is told about the tools (the same every step: computed once)."""
        if self._specs is None:
            self._specs = [ToolSpec(t.name, t.description, _schema(t.Args)) for t in self.tools.values()]
        return self._specs

    def run(self, call: ToolCall) -> ToolResult:
        """Run one call. Raises FormatError for a call that names no tool or has bad arguments."""
        tool = self.tools.get(call.name)
        if tool is None:
            raise FormatError(f"unknown tool {call.name!r}; the tools are: {', '.join(self.tools)}")
        if call.arguments is None:
            raise FormatError(f"the arguments of {call.name} are not valid JSON: {call.raw_arguments!r}")
        try:
            args = tool.Args.model_validate(call.arguments)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'arguments'}: {err['msg']}" for err in e.errors())
            raise FormatError(f"invalid arguments for {call.name}: {problems}") from None
        try:
            return tool.run(args)
        except ToolError as e:
            return ToolResult(f"Error: {e}", is_error=True)

    def close(self) -> None:
        for tool in self.tools.values():
            tool.close()


def function_schema(tool: type[Tool] | Tool) -> dict[str, Any]:
    """A tool as OpenAI's function-calling schema (what ATIF and fine-tuning files list)."""
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": _schema(tool.Args)},
    }


def _schema(args: type[ToolArgs]) -> dict[str, Any]:
    schema = args.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema
