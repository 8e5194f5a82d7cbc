"""One run: sandbox -> agent loop -> patch -> grade -> result.json.

Whatever happens (a limit, a model error, Ctrl-C, a crash), the run directory ends up
with trajectory.jsonl, patch.diff and result.json, and the sandbox is removed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lancer import __version__
from lancer.agent.loop import Agent, Outcome
from lancer.agent.prompting import RunPrompts, run_prompts
from lancer.agent.provenance import header_fields
from lancer.core.config import RunConfig
from lancer.core.logs import attach_run_log, detach_run_log, get_logger
from lancer.core.model import Model
from lancer.core.sandbox import close_even_if_interrupted
from lancer.core.secrets import redact
from lancer.core.tasks import Task
from lancer.core.trajectory import TrajectoryWriter
from lancer.grader import Grade, grade
from lancer.grader.harbor_logs import HARBOR_LOGS, copy_logs
from lancer.sandbox import Sandbox, create_sandbox
from lancer.sandbox.git import diff
from lancer.tools import Toolbox, build_toolbox

log = get_logger("runner")


def run_task(
    task: Task,
    model: Model,
    config: RunConfig,
    out_dir: Path,
    on_step: Callable[[dict[str, Any]], None] = lambda record: None,
) -> dict[str, Any]:
    """Run ``model`` on ``task``; writes and returns result.json's content (and lancer.log)."""
    config = task.limited(config)  # a Harbor task's own time limit, cpus and memory
    prompts = run_prompts(config.prompts, task)  # a bad template stops here, before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    run_log = attach_run_log(out_dir / "lancer.log")
    try:
        log.info("run of %s with %s in a %s sandbox, into %s", task.id, model.name, config.sandbox.kind, out_dir)
        return _run_task(task, model, config, prompts, out_dir, on_step)
    finally:
        detach_run_log(run_log)


def _run_task(
    task: Task,
    model: Model,
    config: RunConfig,
    prompts: RunPrompts,
    out_dir: Path,
    on_step: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    started_at, started = datetime.now(UTC).isoformat(timespec="seconds"), time.monotonic()
    trajectory = TrajectoryWriter(
        out_dir / "trajectory.jsonl",
        {
            "lancer_version": __version__,
            "task": task.public_summary(),
            "model": model.name,
            # Which prices its costs were counted with ("config", "genai-prices 0.2.3 (...)"); null: unknown.
            "price_source": getattr(model, "price_source", None),
            "config": config.model_dump(mode="json"),
            # Each phase's network, and whether sandbox.network overrode what the task asks.
            "network": task.network_summary(config.sandbox),
            "started_at": started_at,
            "prompts": prompts.describe(),
            **header_fields(task, model, out_dir),
        },
    )
    outcome, patch = Outcome("error"), b""
    sandbox: Sandbox | None = None
    toolbox: Toolbox | None = None
    isolation: str | None = None
    timing = Timing()
    try:
        with timing.measure("setup_s"):  # the sandbox with the task's setup done (or copied from its cache)
            sandbox = create_sandbox(config.sandbox.kind, task.sandbox_spec(for_agent=True, config=config.sandbox))
        if task.reward_dir is not None:  # Harbor's log folders, there before the agent starts
            sandbox.exec(["mkdir", "-p", *(f"/logs/{name}" for name in HARBOR_LOGS)])
        isolation = getattr(sandbox, "summary", None)  # the local sandbox: isolation and limits applied
        timing.environment = getattr(sandbox, "environment", None)
        with timing.measure("agent_s"):
            toolbox = build_toolbox(task, sandbox, config, out_dir, model.supports_images)
            messages = prompts.messages(task, sandbox.workdir, toolbox.specs())
            trajectory.prompt(
                [{"role": m.role, "content": m.content} for m in messages],
                workdir=sandbox.workdir,
                timing=timing.so_far(),
            )
            outcome = Agent(model, toolbox, config.limits, trajectory, on_step).run(messages)
            patch = diff(sandbox)
            if task.reward_dir is not None:
                copy_logs(sandbox, "/logs", ("agent", "artifacts"), out_dir / "logs")
    except KeyboardInterrupt:
        outcome.exit_status, outcome.detail = "interrupted", "interrupted by the user"
    except Exception as e:  # the run ends, but its outputs are still written below
        log.error("the run ended with an error", exc_info=True)
        if not (outcome.exit_status == "error" and outcome.detail):  # the first error is the one to report
            outcome.exit_status, outcome.detail = "error", f"{type(e).__name__}: {e}"
    finally:
        for part in (toolbox, sandbox):
            if part is not None:
                _close(part, outcome)
    (out_dir / "patch.diff").write_bytes(patch)

    verdict: Grade | None = None
    # A run the harness or the model's API broke says nothing about the model's fix: not graded.
    if outcome.exit_status not in ("interrupted", "error", "model_error"):
        try:
            with timing.measure("grading_s"):
                verdict = grade(task, patch, config, outcome.answer, out_dir / "logs")
        except KeyboardInterrupt:
            outcome.exit_status, outcome.detail = "interrupted", "interrupted while grading"
        except Exception as e:  # the grader's sandbox broke (its Docker engine restarted ...): not a failed fix
            log.error("grading ended with an error", exc_info=True)
            verdict = Grade("error", False, detail=f"grading failed: {type(e).__name__}: {e}")
    result = build_result(task, model, config, outcome, verdict, time.monotonic() - started, started_at)
    if isolation is not None:
        result["sandbox_isolation"] = isolation
    result["timing"] = timing.so_far()
    totals = (
        "exit_status",
        "detail",
        "steps",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "resolved",
        "earned",
        "timing",
    )
    waits = {"model_wait_s": round(outcome.model_wait_s, 3), "limiter_wait_s": round(outcome.limiter_wait_s, 3)}
    trajectory.final({**{k: result[k] for k in totals}, **waits, "events": outcome.events})
    trajectory.close()
    (out_dir / "result.json").write_text(redact(json.dumps(result, indent=2)) + "\n")
    return result


class Timing:
    """Where a run's time went: the sandbox and the task's setup, the agent, the grading
    (result.json's and the trajectory's ``timing``), and whether the task's environment was
    built or reused from its cache."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.environment: str | None = None

    @contextlib.contextmanager
    def measure(self, part: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[part] = round(time.monotonic() - started, 3)

    def so_far(self) -> dict[str, Any]:
        parts = {part: self.seconds.get(part) for part in ("setup_s", "agent_s", "grading_s")}
        return {**parts, "environment": self.environment}


def _close(part: Toolbox | Sandbox, outcome: Outcome) -> None:
    """Close ``part``; a failure (its Docker engine gone, say) is logged and noted in the
    trajectory's final record, so it never costs the run its result.json."""
    try:
        close_even_if_interrupted(part)
    except Exception as e:
        log.error("closing the %s failed", type(part).__name__, exc_info=True)
        outcome.events.append({"type": "cleanup_error", "detail": f"{type(e).__name__}: {e}"})


def build_result(
    task: Task,
    model: Model,
    config: RunConfig,
    outcome: Outcome,
    verdict: Grade | None,
    seconds: float,
    started_at: str,
) -> dict[str, Any]:
    resolved = verdict.resolved if verdict else False
    usage = outcome.usage
    return {
        "task_id": task.id,
        "variant": task.variant,
        "price": task.price,
        "resolved": resolved,
        "earned": None if task.price is None else task.price if resolved else 0.0,
        "exit_status": outcome.exit_status,
        "detail": outcome.detail,
        "steps": outcome.steps,
        "cost_usd": None if usage.cost_usd is None else round(usage.cost_usd, 6),
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "model": model.name,
        "sandbox": config.sandbox.kind,
        "network": task.network_summary(config.sandbox),
        "answer": outcome.answer,
        "grade": verdict.to_dict() if verdict else None,
        "duration_s": round(seconds, 2),
        "started_at": started_at,
        "lancer_version": __version__,
    }
