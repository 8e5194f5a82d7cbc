"""The agent loop: query the model, run its tool calls, append the observations, repeat.

It ends when the model submits, a limit is reached, or the model is stuck in a loop (told
once, then stopped: see lancer/agent/stuck.py); every finished step is appended to the trajectory
before the next begins. Errors that end the run are turned into an exit status here and
nowhere else, with their traceback in the run's log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from lancer.agent.stuck import LoopDetector, fingerprint
from lancer.core.config import LimitsConfig
from lancer.core.errors import ModelError
from lancer.core.logs import get_logger
from lancer.core.model import Message, Model, ToolCall, Usage
from lancer.core.templates import render
from lancer.core.tool import FormatError, Toolbox, ToolResult
from lancer.core.trajectory import TrajectoryWriter

NO_TOOL_CALL = "Your reply called no tool. Use a tool to continue, or call `submit` when you are done."
log = get_logger("loop")


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
    # Seconds waiting on the model's replies, and on the shared rate limit before sending.
    model_wait_s: float = 0.0
    limiter_wait_s: float = 0.0


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
        self.loops = LoopDetector(limits.stuck_repeats, limits.stuck_alternations)
        self.warned_stuck = False

    def run(self, messages: list[Message]) -> Outcome:
        self.messages = messages
        try:
            while True:
                self.step()
        except RunEnded as end:
            self.outcome.exit_status, self.outcome.detail = end.status, str(end)
        except ModelError as e:
            log.error("the model call failed for good: %s", e, exc_info=True)
            self.outcome.exit_status, self.outcome.detail = "model_error", str(e)
            self.outcome.events = list(getattr(e, "events", []))
        except KeyboardInterrupt:
            self.outcome.exit_status, self.outcome.detail = "interrupted", "interrupted by the user"
        except Exception as e:  # the steps taken so far still count, and are reported
            log.error("the run ended with an error after %d steps", self.outcome.steps, exc_info=True)
            self.outcome.exit_status, self.outcome.detail = "error", f"{type(e).__name__}: {e}"
        log.info("run ended: %s after %d steps (%s)", self.outcome.exit_status, self.outcome.steps, self.outcome.detail)
        return self.outcome

    def step(self) -> None:
        self.check_limits()
        step_started = time.monotonic()
        response = self.model.query(self.messages, self.toolbox.specs())
        # Waiting for the eval's shared rate limit is not the model's time: recorded apart.
        model_seconds = time.monotonic() - step_started - response.limiter_wait_s
        self.outcome.model_wait_s += model_seconds
        self.outcome.limiter_wait_s += response.limiter_wait_s
        log.debug(
            "step %d: model answered in %.3f s (%d tokens in, %d out, %d tool calls)",
            self.outcome.steps + 1,
            model_seconds,
            response.usage.input_tokens,
            response.usage.output_tokens,
            len(response.tool_calls),
        )
        self.outcome.usage += response.usage
        self.messages.append(Message("assistant", response.content, response.tool_calls))
        observations = [self.execute(call) for call in response.tool_calls]
        if not response.tool_calls:
            self.format_errors += 1
            self.messages.append(Message("user", NO_TOOL_CALL))
        self.outcome.steps += 1
        stuck = self.check_loop(response.tool_calls, observations)
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
            "limiter_wait_s": response.limiter_wait_s,
            "duration_s": round(time.monotonic() - step_started, 3),
        }
        if stuck:
            record["stuck"] = stuck
        self.trajectory.step(record)
        self.on_step(record)
        if any(r.submitted for r in observations):
            raise RunEnded("submitted")
        if stuck == "ended":
            raise RunEnded("stuck", "the model kept repeating the same tool calls with the same results")
        if self.format_errors >= self.limits.max_format_errors:
            raise RunEnded("format_errors", f"{self.format_errors} malformed replies in a row")

    def execute(self, call: ToolCall) -> ToolResult:
        if self.outcome.answer is not None:  # calls after a submit in the same reply do not run
            result = ToolResult("Not run: the task was already submitted.", is_error=True)
        else:
            try:
                started = time.monotonic()
                result = self.toolbox.run(call)
                log.debug("%s ran in %.3f s", call.name, time.monotonic() - started)
                self.format_errors = 0
            except FormatError as e:
                self.format_errors += 1
                result = ToolResult(f"Error: {e}", is_error=True)
            if result.submitted:
                self.outcome.answer = result.answer or {}
        self.messages.append(Message("tool", result.output, tool_call_id=call.id, name=call.name, images=result.images))
        return result

    def check_loop(self, calls: list[ToolCall], observations: list[ToolResult]) -> str | None:
        """None, "warned" (the model was told it is looping) or "ended" (it went on)."""
        for call, result in zip(calls, observations, strict=True):
            arguments = call.arguments if call.arguments is not None else call.raw_arguments
            self.loops.add(fingerprint(call.name, arguments, result.output))
        kind = self.loops.looping() if calls else None
        if kind is None:
            self.warned_stuck = False  # the loop was broken: a new one gets a new warning
            return None
        if self.warned_stuck:
            log.info("the model went on looping after the warning: ending the run")
            return "ended"
        self.warned_stuck = True
        times = self.limits.stuck_repeats if kind == "repeated" else self.limits.stuck_alternations
        log.info("the model is looping (%s %d times): telling it once", kind, times)
        self.messages.append(Message("user", render("stuck.j2", kind=kind, times=times)))
        return "warned"

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
