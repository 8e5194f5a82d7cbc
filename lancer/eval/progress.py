"""What an eval shows while it runs, and its final summary table.

On a terminal: a rich progress bar (attempts done / total, resolved, dollars earned and
spent, errors, ETA), the load of each node (attempts running there, and done), and one
line per attempt in flight. Off a terminal (a log, CI): one plain line per finished
attempt (naming its node), and at the end the attempts done per node when there were
several. Either way, a line for what happened that is no result (an attempt lost with
its node and run again).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lancer.core.dollars import Prices, dollars_text
from lancer.core.tables import Figures
from lancer.core.text import money, pass_at, percent, price_text
from lancer.eval.attempt import TIME_PARTS, AttemptJob, is_error
from lancer.eval.envs import EnvBuild
from lancer.eval.metrics import BREAKDOWNS


@dataclass
class Tally:
    done: int = 0
    resolved: int = 0
    earned: float = 0.0
    spent: float = 0.0
    errors: int = 0
    # The tasks of the attempts done, with their prices: dollars cover the priced ones.
    prices: dict[str, float | None] = field(default_factory=dict)
    by_node: Counter[str] = field(default_factory=Counter)  # attempts done per node

    def add(self, row: dict[str, Any]) -> None:
        self.spent += row.get("cost_usd") or 0.0
        if row["exit_status"] == "interrupted":
            return
        self.done += 1
        self.by_node[str(row.get("node"))] += 1
        self.resolved += bool(row["resolved"])
        self.earned += row["earned"] or 0.0
        self.prices[str(row["task_id"])] = row.get("price")
        self.errors += is_error(row)

    def fields(self) -> dict[str, Any]:
        prices = Prices.of(self.prices.items())
        earned = dollars_text(self.earned if prices.priced else None, prices.unpriced)
        return {"resolved": self.resolved, "earned": earned, "spent": self.spent, "errors": self.errors}


def make_progress(console: Console) -> LiveProgress | LineProgress:
    return LiveProgress(console) if console.is_terminal else LineProgress(console)


class LineProgress:
    def __init__(self, console: Console) -> None:
        self.console, self.tally, self.total = console, Tally(), 0

    def start(self, total: int, finished: list[dict[str, Any]]) -> None:
        self.total = total
        for row in finished:
            self.tally.add(row)
        if finished:
            self.console.print(f"continuing: {len(finished)} of {total} attempts already finished", markup=False)

    def started(self, job: AttemptJob) -> None:
        pass

    def finished(self, row: dict[str, Any]) -> None:
        self.tally.add(row)
        self.console.print(f"[{self.tally.done}/{self.total}] {attempt_line(row)}", markup=False, highlight=False)

    def notice(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def refresh(self, placement: dict[tuple[str, int], str]) -> None:
        pass

    def stop(self) -> None:
        if len(self.tally.by_node) > 1:
            done = ", ".join(f"{node} {n}" for node, n in sorted(self.tally.by_node.items()))
            self.console.print(f"attempts done by node: {done}", markup=False, highlight=False)

    def env_building(self, task_ids: list[str]) -> None:
        self.console.print(f"building the environments of {len(task_ids)} task(s) first", markup=False)

    def env_built(self, build: EnvBuild, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.tally.add(row)
        self.console.print(env_line(build, len(rows)), markup=False, highlight=False)


class LiveProgress:
    def __init__(self, console: Console) -> None:
        self.console, self.tally = console, Tally()
        self.bar = Progress(
            TextColumn("[bold]eval"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "resolved {task.fields[resolved]}  earned {task.fields[earned]}  "
                "spent ${task.fields[spent]:.4f}  errors {task.fields[errors]}"
            ),
            TimeRemainingColumn(),
            console=console,
        )
        self.running: dict[tuple[str, int], tuple[AttemptJob, float]] = {}
        self.placement: dict[tuple[str, int], str] = {}
        self.building: dict[str, float] = {}  # task id -> when its environment's build started
        self._steps = StepCounter()
        self.live = Live(console=console, refresh_per_second=4, transient=True, get_renderable=self._render)

    def start(self, total: int, finished: list[dict[str, Any]]) -> None:
        for row in finished:
            self.tally.add(row)
        self.task = self.bar.add_task("eval", total=total, completed=self.tally.done, **self.tally.fields())
        self.live.start()

    def started(self, job: AttemptJob) -> None:
        self.running[(job.task_id, job.attempt)] = (job, time.monotonic())

    def finished(self, row: dict[str, Any]) -> None:
        job, _ = self.running.pop((row["task_id"], row["attempt"]), (None, 0.0))
        if job is not None:
            self._steps.forget(Path(job.run_dir) / "trajectory.jsonl")
        self.tally.add(row)
        self.bar.update(self.task, completed=self.tally.done, **self.tally.fields())
        self.live.console.print(attempt_line(row), markup=False, highlight=False)

    def notice(self, text: str) -> None:
        self.live.console.print(text, markup=False, highlight=False)

    def refresh(self, placement: dict[tuple[str, int], str]) -> None:
        self.placement = placement  # the Live display redraws itself from _render

    def env_building(self, task_ids: list[str]) -> None:
        started = time.monotonic()
        self.building.update((task_id, started) for task_id in task_ids)

    def env_built(self, build: EnvBuild, rows: list[dict[str, Any]]) -> None:
        self.building.pop(build.task_id, None)
        for row in rows:
            self.tally.add(row)
        self.bar.update(self.task, completed=self.tally.done, **self.tally.fields())
        self.live.console.print(env_line(build, len(rows)), markup=False, highlight=False)

    def stop(self) -> None:
        self.live.stop()

    def _render(self) -> Group:
        workers = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for task_id, started in list(self.building.items()):
            workers.add_row(f"  {task_id}", "building its environment", f"{now - started:.0f}s")
        for key, (job, started) in list(self.running.items()):
            steps = self._steps(Path(job.run_dir) / "trajectory.jsonl")
            where = self.placement.get(key, "waiting for a node")
            workers.add_row(f"  {job.task_id} #{job.attempt}", f"step {steps}", f"{now - started:.0f}s", where)
        return Group(self.bar, node_load(self.placement, self.tally.by_node), workers)


def node_load(placement: dict[tuple[str, int], str], done: Counter[str]) -> Table:
    """One line per node: attempts running there now, and done there so far."""
    running = Counter(placement.values())
    table = Table.grid(padding=(0, 2))
    for node in sorted(set(running) | set(done)):
        table.add_row(f"  {node}", f"running {running[node]}", f"done {done[node]}")
    return table


def _earned_at_k(g: dict[str, Any]) -> str:
    # None: short of k attempts ("-"), or tasks without a price ("no price").
    return "-" if g["earned_at_k"] is None and g["possible"] is not None else price_text(g["earned_at_k"])


def env_line(build: EnvBuild, not_run: int) -> str:
    """One line per task whose environment was built (or found) before its attempts."""
    if build.error is None:
        return f"{build.task_id}: environment {build.outcome} ({build.seconds:.1f}s)"
    return (
        f"{build.task_id}: ERROR its environment could not be built, {not_run} attempt(s) not run "
        f"and counted as errors ({build.error})"
    )


def attempt_line(row: dict[str, Any]) -> str:
    if row["exit_status"] == "interrupted":
        verdict = "INTERRUPTED"
    elif is_error(row):
        verdict = "ERROR"
    else:
        verdict = "RESOLVED" if row["resolved"] else "not resolved"
        if not row["resolved"] and row.get("reward") is not None:
            verdict += f" (reward {row['reward']:g})"
    cost = "cost unknown" if row.get("cost_usd") is None else f"${row['cost_usd']:.4f}"
    line = (
        f"{row['task_id']} #{row['attempt']}  {verdict}  earned {price_text(row['earned'])}  "
        f"exit: {row['exit_status']}  steps: {row['steps']}  {cost}  {row['duration_s']:.1f}s  on {row['node']}"
    )
    if is_error(row) and row.get("detail"):
        line += f"  ({row['detail'][:200]})"
    return line


class StepCounter:
    """Steps in growing trajectories. The display asks 4 times a second per running attempt:
    only what was appended since the last look is read."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[int, int, bytes]] = {}  # bytes read, steps, an unfinished line

    def __call__(self, trajectory: Path) -> int:
        offset, steps, partial = self._seen.get(trajectory, (0, 0, b""))
        try:
            with trajectory.open("rb") as f:
                if os.fstat(f.fileno()).st_size < offset:  # started again (a resumed attempt)
                    offset, steps, partial = 0, 0, b""
                f.seek(offset)
                appended = f.read()
        except OSError:
            return steps
        *lines, partial = (partial + appended).split(b"\n")
        steps += sum(line.startswith(b'{"type": "step"') for line in lines)
        self._seen[trajectory] = (offset + len(appended), steps, partial)
        return steps

    def forget(self, trajectory: Path) -> None:
        self._seen.pop(trajectory, None)


def seconds_triple(times: dict[str, float | None] | None) -> str:
    """ "0.3 / 12.0 / 1.6 s": an attempt's setup, agent and grading time ("-" where unknown)."""
    times = times or {}
    return " / ".join("-" if times.get(p) is None else f"{times[p]:.1f}" for p in TIME_PARTS) + " s"


def summary_figures(summary: dict[str, Any]) -> Figures:
    """The final summary: one column overall, one per group of each breakdown (variant, set,
    difficulty ...); one row per figure."""
    k = str(summary["attempts_per_task"])
    groups = [("overall", summary["overall"])]
    for key, _, label in BREAKDOWNS[:-1]:  # tags: too many columns; summary.json and the report have them
        groups += [
            (name if key in ("by_variant", "by_set") else f"{label} {name}", figures)
            for name, figures in summary.get(key, {}).items()
        ]
    figures: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("tasks", lambda g: str(g["tasks"])),
        ("attempts graded / finished", lambda g: f"{g['graded']} / {g['attempts']}"),
        ("resolved", lambda g: str(g["resolved"])),
        *(
            [("mean reward", lambda g: "-" if g.get("mean_reward") is None else f"{g['mean_reward']:.3f}")]
            if summary["overall"].get("mean_reward") is not None
            else []
        ),
        ("pass@1", lambda g: _pass_at(g, "1")),
        *([(f"pass@{k}", lambda g: _pass_at(g, k))] if k != "1" else []),
        ("earned (one attempt)", lambda g: price_text(g["earned"])),
        *([(f"earned@{k}", _earned_at_k)] if k != "1" else []),
        ("possible", lambda g: dollars_text(g["possible"], g.get("unpriced_tasks", 0))),
        ("earn rate", lambda g: percent(g["earn_rate"])),
        ("cost", lambda g: money(g["cost_usd"], 4)),
        ("cost per resolved", lambda g: "-" if g["cost_per_resolved"] is None else money(g["cost_per_resolved"], 4)),
        ("ROI", lambda g: "-" if g["roi"] is None else f"{g['roi']:,.1f}x"),
        ("mean time: setup / agent / grading", lambda g: seconds_triple(g.get("mean_time_s"))),
        ("errors", lambda g: str(g["errors"])),
        ("verdicts on exit codes alone", lambda g: str(g.get("exit_code_verdicts", 0))),
        ("interrupted", lambda g: str(g["interrupted"])),
        ("not run", lambda g: str(g["not_run"])),
    ]
    return Figures(
        f"{summary.get('model', '')}: {summary.get('status', '')}",
        ["", *(label for label, _ in figures)],
        [[name, *(show(group) for _, show in figures)] for name, group in groups],
        across=True,
    )


def _pass_at(group: dict[str, Any], k: str) -> str:
    return pass_at(group["pass_at"].get(k), (group.get("pass_at_short") or {}).get(k, 0))
