"""One attempt of one task: its job description, and running it.

``AttemptJob`` holds plain data only (strings, numbers, dicts), so it pickles for a Ray task
and serializes as JSON for a child process. ``run_attempt`` rebuilds the task, config and
model from it, runs the ordinary runner into ``job.run_dir`` and returns the attempt's
results.jsonl row. It never raises for a failed attempt: whatever goes wrong becomes a row
with ``exit_status`` ``error`` (or ``interrupted`` after Ctrl-C/SIGTERM).
"""

from __future__ import annotations

import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lancer.core.config import RunConfig
from lancer.core.tasks import Task
from lancer.core.trajectory import read_trajectory

# Exit statuses and grade statuses of an attempt that says nothing about the model's fix:
# a harness fault or a model (API) failure. Such attempts are errors, never graded failures.
ERROR_EXIT_STATUSES = frozenset({"error", "model_error"})
ERROR_GRADE_STATUSES = frozenset({"error"})

# Where an attempt's time went (result.json's ``timing``): the sandbox with the task's setup,
# the agent, the grading.
TIME_PARTS = ("setup_s", "agent_s", "grading_s")

# The results.jsonl fields, in order (README "Evaluations").
ROW_FIELDS = (
    "task_id",
    "attempt",
    "variant",
    "set",
    "price",
    "resolved",
    "earned",
    "reward",
    "exit_status",
    "grade_status",
    "grade_basis",
    "detail",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "steps",
    "duration_s",
    "setup_s",
    "agent_s",
    "grading_s",
    "run_dir",
    "node",
)


@dataclass(frozen=True)
class AttemptJob:
    """Everything needed to run attempt ``attempt`` (1..K) of task ``task_id`` anywhere."""

    task_id: str
    attempt: int
    # The task's fields as in task.yaml (``Task.model_dump(mode="json")``), validated again
    # where the attempt runs.
    task: dict[str, Any]
    # The task folder (repo/, hidden tests/, solution.yaml), or None for a dataset row.
    task_folder: str | None
    # What the agent must never see: the task folder, or the dataset CSV.
    task_source: str | None
    # The task's SWE-Lancer set (e.g. "diamond"), when it has one.
    task_set: str | None
    model: str  # the --model spec
    config: dict[str, Any]  # RunConfig.model_dump(mode="json")
    # Absolute path of the attempt's run directory on the driver: DIR/runs/<task_id>/<attempt>.
    run_dir: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptJob:
        return cls(**data)

    def load_task(self) -> Task:
        task = Task.model_validate(self.task)
        task.folder = Path(self.task_folder) if self.task_folder else None
        task.source = Path(self.task_source) if self.task_source else None
        return task


def run_attempt(job: AttemptJob) -> dict[str, Any]:
    """Run the attempt into ``job.run_dir``; its results.jsonl row (never raises for a failed run)."""
    from lancer.agent.runner import run_task
    from lancer.eval.task_models import model_for_task

    started = time.monotonic()
    try:
        task = job.load_task()
        config = RunConfig.model_validate(job.config)
        model = model_for_task(job.model, task, config)
        result = run_task(task, model, config, Path(job.run_dir))
    except KeyboardInterrupt:
        return error_row(job, "interrupted before the run began", time.monotonic() - started, "interrupted")
    except Exception as e:  # one attempt's failure is its own row, never the eval's end
        return error_row(job, f"{type(e).__name__}: {e}", time.monotonic() - started)
    return row_from_result(job, result)


def row_from_result(job: AttemptJob, result: dict[str, Any]) -> dict[str, Any]:
    """The results.jsonl row of a finished run (its result.json content)."""
    grade = result.get("grade") or {}
    return {
        "task_id": job.task_id,
        "attempt": job.attempt,
        "variant": result["variant"],
        "set": job.task_set,
        "price": result["price"],
        "resolved": bool(result["resolved"]),
        "earned": result["earned"],
        "reward": grade.get("reward"),  # a reward-file verdict's (Harbor's), partial or whole
        "exit_status": result["exit_status"],
        "grade_status": grade.get("status"),
        "grade_basis": grade.get("basis"),
        # A grading error's reason is the grader's, not the run's ("submitted").
        "detail": (grade.get("status") == "error" and grade.get("detail"))
        or result.get("detail")
        or grade.get("detail")
        or "",
        "cost_usd": result["cost_usd"],
        "input_tokens": result["input_tokens"],
        "output_tokens": result["output_tokens"],
        "steps": result["steps"],
        "duration_s": result["duration_s"],
        **{part: (result.get("timing") or {}).get(part) for part in TIME_PARTS},
        "run_dir": job.run_dir,
        "node": node_name(),
    }


def error_row(job: AttemptJob, reason: str, seconds: float = 0.0, exit_status: str = "error") -> dict[str, Any]:
    """The row of an attempt that produced no result (its process crashed, its setup failed ...).

    What its finished steps spent is read back from its trajectory, if it wrote one.
    """
    usage = usage_so_far(Path(job.run_dir) / "trajectory.jsonl")
    return {
        "task_id": job.task_id,
        "attempt": job.attempt,
        "variant": job.task.get("variant"),
        "set": job.task_set,
        "price": job.task.get("price"),
        "resolved": False,
        "earned": None if job.task.get("price") is None else 0.0,
        "reward": None,
        "exit_status": exit_status,
        "grade_status": None,
        "grade_basis": None,
        "detail": reason,
        **usage,
        "duration_s": round(seconds, 2),
        "run_dir": job.run_dir,
        "node": node_name(),
    }


def usage_so_far(trajectory: Path) -> dict[str, Any]:
    """Cost, tokens and steps of the finished steps in a (possibly cut short) trajectory."""
    steps = [r for r in read_trajectory(trajectory) if r.get("type") == "step"] if trajectory.is_file() else []
    costs = [(r.get("usage") or {}).get("cost_usd") for r in steps]
    return {
        "cost_usd": None if None in costs else round(sum(c for c in costs if c is not None), 6),
        "input_tokens": sum((r.get("usage") or {}).get("input_tokens", 0) for r in steps),
        "output_tokens": sum((r.get("usage") or {}).get("output_tokens", 0) for r in steps),
        "steps": len(steps),
    }


def is_error(row: dict[str, Any]) -> bool:
    """An attempt that ended in a harness or model error: not the model's failed fix."""
    return row["exit_status"] in ERROR_EXIT_STATUSES or row.get("grade_status") in ERROR_GRADE_STATUSES


def node_name() -> str:
    return socket.gethostname()
