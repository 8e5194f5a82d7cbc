"""The eval loop: hand attempts to an executor, record what finishes, respect budget and Ctrl-C.

Attempts go out attempt-major (attempt 1 of every task, then attempt 2 ...), so a budget
or an interrupt that stops the eval early leaves a broad sample rather than a few tasks
run K times. The budget is checked before each start: no attempt starts while the money
spent plus the cost limit of every attempt in flight, this one included, could pass it.
Ctrl-C (or SIGTERM) stops new starts and interrupts the attempts in flight, whose rows
still come back; a second one changes nothing.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol

from lancer.core.config import RunConfig
from lancer.eval.attempt import AttemptJob, error_row
from lancer.eval.envs import EnvBuild, EnvBuilds, needs_env
from lancer.eval.executor import Executor
from lancer.eval.metrics import summarize
from lancer.eval.store import EvalStore
from lancer.eval.taskset import EvalTask

# summary.json is rewritten at most this often while attempts finish (and at the end).
SUMMARY_EVERY_S = 1.0


class Progress(Protocol):
    def start(self, total: int, finished: list[dict[str, Any]]) -> None: ...

    def started(self, job: AttemptJob) -> None: ...

    def finished(self, row: dict[str, Any]) -> None: ...

    def notice(self, text: str) -> None: ...

    def refresh(self, placement: dict[tuple[str, int], str]) -> None: ...

    def stop(self) -> None: ...

    def env_building(self, task_ids: list[str]) -> None: ...

    def env_built(self, build: EnvBuild, rows: list[dict[str, Any]]) -> None:
        """A task's environment is ready, or could not be built: then ``rows`` are its
        attempts, recorded as errors and not run."""


@dataclass
class EvalPlan:
    tasks: list[EvalTask]
    model: str
    config: RunConfig
    attempts: int
    budget: float | None = None
    # Build each task's environment once before its attempts (the local executor: the
    # attempts run on this machine, where the cache is).
    prepare_envs: bool = False

    def jobs(self, store: EvalStore) -> list[AttemptJob]:
        config = self.config.model_dump(mode="json")
        return [
            AttemptJob(
                task_id=item.task.id,
                attempt=attempt,
                task=item.task.model_dump(mode="json"),
                task_folder=str(item.task.folder) if item.task.folder else None,
                task_source=str(item.task.source) if item.task.source else None,
                task_set=item.set,
                model=self.model,
                config=config,
                run_dir=str(store.run_dir(item.task.id, attempt).resolve()),
            )
            for attempt in range(1, self.attempts + 1)
            for item in self.tasks
        ]


@dataclass
class EvalOutcome:
    status: str  # finished | interrupted | budget (summary.json says running until then)
    rows: list[dict[str, Any]] = field(default_factory=list)  # finished and interrupted attempts
    summary: dict[str, Any] = field(default_factory=dict)


def run_eval(plan: EvalPlan, store: EvalStore, executor: Executor, progress: Progress) -> EvalOutcome:
    """Run every attempt of ``plan`` that ``store`` has no result for; write results and summary."""
    rows = store.finished_rows()
    done = {(r["task_id"], r["attempt"]) for r in rows}
    pending = [job for job in plan.jobs(store) if (job.task_id, job.attempt) not in done]
    in_flight: dict[tuple[str, int], AttemptJob] = {}
    # Money spent so far, including attempts interrupted or killed before (and run again).
    spent = sum(r.get("cost_usd") or 0.0 for r in rows) + store.discarded_cost()
    limit = plan.config.limits.cost_limit_usd or 0.0
    status = "running"
    stop = threading.Event()

    def summary() -> dict[str, Any]:
        tasks = [item.describe() for item in plan.tasks]
        return {"model": plan.model, "status": status, **summarize(rows, tasks, plan.attempts)}

    progress.start(len(plan.tasks) * plan.attempts, list(rows))
    store.write_summary(summary())
    to_build = {job.task_id for job in pending}
    building = [item.task for item in plan.tasks if item.task.id in to_build and needs_env(item.task, plan.config)]
    envs = EnvBuilds(building, plan.config, executor.slots) if plan.prepare_envs and building else None
    if envs is not None:
        progress.env_building([task.id for task in building])
    unsaved, saved_at = False, time.monotonic()
    with _stop_on_signals(stop.set), _stopping(progress):
        while pending or in_flight:
            for build in envs.finished(0.0 if in_flight else 0.5) if envs is not None else []:
                failed = [job for job in pending if build.error is not None and job.task_id == build.task_id]
                pending = [job for job in pending if job not in failed]
                not_run = [_env_error_row(job, build, store) for job in failed]
                for row in not_run:
                    store.append(row)
                rows.extend(not_run)
                progress.env_built(build, not_run)
                store.write_summary(summary())
            while not stop.is_set() and len(in_flight) < executor.slots:
                ready = [job for job in pending if envs is None or not envs.waiting(job.task_id)]
                if not ready:
                    break
                if plan.budget is not None and spent + limit * (len(in_flight) + 1) > plan.budget:
                    break
                job = ready[0]
                pending.remove(job)
                in_flight[(job.task_id, job.attempt)] = job
                executor.submit(job)
                progress.started(job)
            if not in_flight:
                if not pending:  # the last ones were a task whose environment could not be built
                    break
                if stop.is_set() or envs is None or not envs.busy():
                    # nothing runs and nothing may start: stopped, or the budget is spent
                    status = "interrupted" if stop.is_set() else "budget"
                    break
                progress.refresh(executor.placement())
                continue  # the environments still being built are waited for above
            if stop.is_set() and status != "interrupted":
                status = "interrupted"
                executor.interrupt()
            for row in executor.wait(timeout=0.5):
                job = in_flight.pop((row["task_id"], row["attempt"]))
                row["run_dir"] = str(store.run_dir(job.task_id, job.attempt).relative_to(store.root))
                for run in row.pop("discarded", []):  # run again after its worker process crashed
                    store.discard(run)
                    spent += run.get("cost_usd") or 0.0
                if row["exit_status"] != "interrupted":
                    store.append(row)
                rows.append(row)
                spent += row.get("cost_usd") or 0.0
                progress.finished(row)
                unsaved = True
            # At most once a second: recomputing the summary per row costs more than the
            # attempts themselves in an eval of hundreds of quick ones.
            if unsaved and time.monotonic() - saved_at >= SUMMARY_EVERY_S:
                store.write_summary(summary())
                unsaved, saved_at = False, time.monotonic()
            for text in executor.notices():
                progress.notice(text)
            progress.refresh(executor.placement())
    if stop.is_set():  # also when the last attempts finished on their own after Ctrl-C
        status = "interrupted"
    elif status == "running":
        status = "finished"
    result = summary()
    store.write_summary(result)
    return EvalOutcome(status, rows, result)


def _env_error_row(job: AttemptJob, build: EnvBuild, store: EvalStore) -> dict[str, Any]:
    row = error_row(job, f"the task's environment could not be built: {build.error}")
    row["run_dir"] = str(store.run_dir(job.task_id, job.attempt).relative_to(store.root))
    return row


@contextmanager
def _stopping(progress: Progress) -> Iterator[None]:
    """The progress display ends however the loop does (a live display must give the terminal back)."""
    try:
        yield
    finally:
        progress.stop()


@contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call ``stop`` instead of raising, so no write is ever cut in half."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
