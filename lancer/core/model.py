"""The provider-neutral conversation types and the Model protocol every provider implements.

A provider turns ``Message`` lists into its own wire format and its reply back into a
``ModelResponse``. Nothing outside ``agent/models`` knows any provider's format.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from lancer.core.tasks import Task

Role = Literal["system", "user", "assistant", "tool"]


@dataclass
class ToolCall:
    """One tool call as the model made it.

    ``arguments`` is None when the model's arguments were not valid JSON; ``raw_arguments``
    then holds what it sent, so the loop can tell it what was wrong.
    """

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str | None = None


@dataclass
class Message:
    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    # role == "tool": which call this answers.
    tool_call_id: str | None = None
    name: str | None = None
    # PNG files (paths on the host) shown to the model along with ``content``.
    images: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Usage:
    # Every prompt token the model read, cache reads and writes included (as OpenAI counts;
    # Anthropic reports the three apart and its provider adds them up).
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    # None when the model's price is unknown: cost is then reported as unknown, not as 0.
    cost_usd: float | None = 0.0

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            cost,
        )


@dataclass
class ModelResponse:
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    # Provider events worth keeping in the trajectory (retries, warnings); JSON-able dicts.
    events: list[dict[str, Any]] = field(default_factory=list)
    # Seconds spent waiting for the shared rate limit (lancer.models.limiter), not on the model.
    limiter_wait_s: float = 0.0


@dataclass(frozen=True)
class ToolSpec:
    """What a model is told about a tool: its name, description and JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]


@runtime_checkable
class Model(Protocol):
    """A chat model with native tool calling.

    ``query`` raises ``lancer.core.errors.ModelError`` when the provider fails for good; it
    handles its own retries. ``supports_images`` says whether tool results may carry PNGs.
    """

    name: str
    supports_images: bool

    def query(self, messages: list[Message], tools: list[ToolSpec]) -> ModelResponse: ...


@runtime_checkable
class TaskBound(Protocol):
    """A model that plays something of the task's own (its reference solution, a per-task script).

    ``create_model`` calls ``bind_task`` once, before the run starts; it raises
    ``lancer.core.errors.ConfigError`` when the task lacks what the model needs.
    """

    def bind_task(self, task: Task) -> None: ...
