"""``lancer compare RUN...``: runs side by side, per task and per model.

Repeated attempts of a task are one task: it earns its price times its pass rate (so three
attempts of a $250 task, two resolved, earn $166.67 of a possible $250, not $500 of $750).
A run whose cost is unknown (a model without a price) is counted and said, never taken
as free; a run without result.json (unfinished) is named and left out.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from lancer.core.records import read_run
from lancer.core.text import money


@dataclass
class Cost:
    known_usd: float = 0.0
    unknown: int = 0  # runs whose cost is unknown
    runs: int = 0

    def add(self, cost_usd: float | None) -> None:
        self.runs += 1
        if cost_usd is None:
            self.unknown += 1
        else:
            self.known_usd += cost_usd

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.known_usd + other.known_usd, self.unknown + other.unknown, self.runs + other.runs)

    def __str__(self) -> str:
        if self.runs and self.unknown == self.runs:
            return "unknown"
        text = f"${self.known_usd:.4f}"
        return f"≥ {text} ({self.unknown} unknown)" if self.unknown else text


@dataclass
class TaskRuns:
    """One model's attempts at one task."""

    model: str
    task_id: str
    variant: str
    price: float
    passed: int = 0
    attempts: int = 0
    cost: Cost = field(default_factory=Cost)
    exits: Counter[str] = field(default_factory=Counter)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.attempts if self.attempts else 0.0

    @property
    def earned(self) -> float:
        return self.price * self.pass_rate


@dataclass
class Summary:
    """One model's runs of one variant (or of "all")."""

    model: str
    variant: str
    tasks: list[TaskRuns]

    @property
    def pass_rate(self) -> float:
        """The mean of the tasks' pass rates: a task tried five times weighs as much as one tried once."""
        return sum(t.pass_rate for t in self.tasks) / len(self.tasks)

    @property
    def earned(self) -> float:
        return sum(t.earned for t in self.tasks)

    @property
    def possible(self) -> float:
        return sum(t.price for t in self.tasks)

    @property
    def cost(self) -> Cost:
        return sum((t.cost for t in self.tasks), Cost())


@dataclass
class Comparison:
    tasks: list[TaskRuns]
    unfinished: list[Path]

    def summaries(self) -> list[Summary]:
        """Each model's runs per variant, and over all variants when it ran more than one."""
        rows = []
        for model in sorted({t.model for t in self.tasks}):
            mine = [t for t in self.tasks if t.model == model]
            variants = sorted({t.variant for t in mine})
            rows += [Summary(model, v, [t for t in mine if t.variant == v]) for v in variants]
            if len(variants) > 1:
                rows.append(Summary(model, "all", mine))
        return rows


def collect(run_dirs: list[Path]) -> Comparison:
    by_key: dict[tuple[str, str], TaskRuns] = {}
    unfinished = []
    for run_dir in run_dirs:
        run = read_run(run_dir)
        result = run.result
        if result is None:
            unfinished.append(run_dir)
            continue
        model = str(result.get("model") or run.header.get("model", "?"))
        key = (model, result["task_id"])
        row = by_key.setdefault(key, TaskRuns(model, result["task_id"], result["variant"], float(result["price"])))
        row.attempts += 1
        row.passed += bool(result["resolved"])
        row.cost.add(result.get("cost_usd"))
        row.exits[result["exit_status"]] += 1
    return Comparison(sorted(by_key.values(), key=lambda t: (t.model, t.task_id)), unfinished)


def render(comparison: Comparison) -> RenderableType:
    parts: list[RenderableType] = [_task_table(comparison.tasks), _summary_table(comparison)]
    notes = ["earned: each task's price times its pass rate, so repeated attempts never add up to more than its price"]
    if comparison.unfinished:
        names = ", ".join(str(p) for p in comparison.unfinished)
        notes.append(f"not counted: {len(comparison.unfinished)} unfinished run(s) without result.json: {names}")
    parts.append(Text("\n".join(notes), style="dim"))
    return Group(*parts)


def print_comparison(run_dirs: list[Path]) -> int:
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)  # piped: no wrap at 80
    console.print(render(collect(run_dirs)))
    return 0


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name in columns:
        right = name not in ("model", "task", "variant", "exits")
        table.add_column(name, justify="right" if right else "left", no_wrap=right)
    return table


def _task_table(tasks: list[TaskRuns]) -> Table:
    table = _table("runs by task", "model", "task", "variant", "price", "attempts", "passed", "earned", "cost", "exits")
    for t in tasks:
        table.add_row(
            t.model,
            t.task_id,
            t.variant,
            money(t.price, 0),
            str(t.attempts),
            f"{t.passed}/{t.attempts} ({t.pass_rate:.0%})",
            money(t.earned),
            str(t.cost),
            ", ".join(f"{status} x{n}" if n > 1 else status for status, n in sorted(t.exits.items())),
        )
    return table


def _summary_table(comparison: Comparison) -> Table:
    columns = ("model", "variant", "tasks", "attempts", "pass rate", "earned", "possible", "earn rate", "cost")
    table = _table("by model", *columns)
    for row in comparison.summaries():
        table.add_row(
            row.model,
            row.variant,
            str(len(row.tasks)),
            str(sum(t.attempts for t in row.tasks)),
            f"{row.pass_rate:.1%}",
            money(row.earned),
            money(row.possible),
            f"{row.earned / row.possible:.1%}" if row.possible else "-",
            str(row.cost),
        )
    return table
