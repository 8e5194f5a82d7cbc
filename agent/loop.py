"""The agent loop: query the model, run its tool calls, append the observations, repeat.

It ends when the model submits or a limit is reached; every finished step is appended to
the trajectory before the next begins. Errors that end the run are turned into an exit
status here and nowhere else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.config import LimitsConfig
from agent.errors import ModelError
from agent.models.base import Message, Model, ToolCall, Usage
from agent.trajectory import TrajectoryWriter
from tools.base import FormatError, Toolbox, ToolResult

NO_TOOL_CALL = "Your reply called no tool. Use a tool to continue, or call `submit` when you are done."


class RunEnded(Exception):
    def __init__(self, status: str, detail: str = "") -> None:
        super().__init__(detail or status)
        self.status = status


@dataclass
class Outcome:
    exit_status: str
    steps: int = 0
    usage: Usage = field(default_factory=Usage)
    answer: dict[str, Any] | None = None  # what ``submit`` carried (a manager's choice)
    detail: str = ""  # why the run ended, for people
    # Provider events of a call that never became a step (the retries before a model error).
    events: list[dict[str, Any]] = field(default_factory=list)


class Agent:
    def __init__(
        self,
        model: Model,
        toolbox: Toolbox,
        limits: LimitsConfig,
        trajectory: TrajectoryWriter,
        on_step: Callable[[dict[str, Any]], None] = lambda record: None,
    ) -> None:
        self.model, self.toolbox, self.limits = model, toolbox, limits
        self.trajectory, self.on_step = trajectory, on_step
        self.outcome = Outcome("running")
        self.format_errors = 0
        self.started = time.monotonic()

    def run(self, messages: list[Message]) -> Outcome:
        self.messages = messages
        try:
            while True:
                self.step()
        except RunEnded as end:
            self.outcome.exit_status, self.outcome.detail = end.status, str(end)
        except ModelError as e:
            self.outcome.exit_status, self.outcome.detail = "model_error", str(e)
            self.outcome.events = list(getattr(e, "events", []))
        except KeyboardInterrupt:
            self.outcome.exit_status, self.outcome.detail = "interrupted", "interrupted by the user"
        return self.outcome

    def step(self) -> None:
        self.check_limits()
        step_started = time.monotonic()
        response = self.model.query(self.messages, self.toolbox.specs())
        model_seconds = time.monotonic() - step_started
        self.outcome.usage += response.usage
        self.messages.append(Message("assistant", response.content, response.tool_calls))
        observations = [self.execute(call) for call in response.tool_calls]
        if not response.tool_calls:
            self.format_errors += 1
            self.messages.append(Message("user", NO_TOOL_CALL))
        self.outcome.steps += 1
        record = {
            "step": self.outcome.steps,
            "content": response.content,
            "tool_calls": [asdict(call) for call in response.tool_calls],
            "observations": [
                {"tool_call_id": c.id, "name": c.name, "output": r.output, "images": r.images, "is_error": r.is_error}
                for c, r in zip(response.tool_calls, observations, strict=True)
            ],
            "usage": asdict(response.usage),
            "events": response.events,
            "model_duration_s": round(model_seconds, 3),
            "duration_s": round(time.monotonic() - step_started, 3),
        }
        self.trajectory.step(record)
        self.on_step(record)
        if any(r.submitted for r in observations):
            raise RunEnded("submitted")
        if self.format_errors >= self.limits.max_format_errors:
            raise RunEnded("format_errors", f"{self.format_errors} malformed replies in a row")

    def execute(self, call: ToolCall) -> ToolResult:
        if self.outcome.answer is not None:  # calls after a submit in the same reply do not run
            result = ToolResult("Not run: the task was already submitted.", is_error=True)
        else:
            try:
                result = self.toolbox.run(call)
                self.format_errors = 0
            except FormatError as e:
                self.format_errors += 1
                result = ToolResult(f"Error: {e}", is_error=True)
            if result.submitted:
                self.outcome.answer = result.answer or {}
        self.messages.append(Message("tool", result.output, tool_call_id=call.id, name=call.name, images=result.images))
        return result

    def check_limits(self) -> None:
        limits, outcome = self.limits, self.outcome
        if outcome.steps >= limits.max_steps:
            raise RunEnded("step_limit", f"reached {limits.max_steps} steps")
        if time.monotonic() - self.started >= limits.time_limit_s:
            raise RunEnded("time_limit", f"ran past {limits.time_limit_s:g} s")
        spent = outcome.usage.cost_usd or 0.0
        estimate = getattr(self.model, "estimate_cost", None)
        upcoming = (estimate(self.messages, self.toolbox.specs()) or 0.0) if estimate else 0.0
        if limits.cost_limit_usd is not None and (
            spent >= limits.cost_limit_usd or spent + upcoming > limits.cost_limit_usd
        ):
            raise RunEnded(
                "cost_limit", f"spent ${spent:.4f}; the next call would pass the ${limits.cost_limit_usd:g} limit"
            )
