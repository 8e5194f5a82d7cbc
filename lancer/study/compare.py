"""``lancer compare RUN...``: runs side by side, per task and per model.

Repeated attempts of a task are one task: it earns its price times its pass rate (so three
attempts of a $250 task, two resolved, earn $166.67 of a possible $250, not $500 of $750).
A run that ended in a harness or API error is no failed fix: it is left out of pass rates and
dollars (as an eval leaves it out, README "Evaluations") and the count left out is said. A
run whose cost is unknown (a model without a price) is counted and said, never taken as
free; a run without result.json (unfinished) is named and left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.text import Text

from lancer.core.dollars import Prices, dollars_text
from lancer.core.records import read_run
from lancer.core.tables import Figures, print_figures
from lancer.core.text import percent, price_text
from lancer.study.tally import verdict


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
    price: float | None  # None: the task has no price, so it earns no dollars (not $0)
    passed: int = 0
    attempts: int = 0
    errors: int = 0  # attempts that ended in a harness or API error: not graded
    cost: Cost = field(default_factory=Cost)
    exits: Counter[str] = field(default_factory=Counter)

    @property
    def graded(self) -> int:
        return self.attempts - self.errors

    @property
    def pass_rate(self) -> float | None:
        """None when no attempt was graded: the task says nothing about the model."""
        return self.passed / self.graded if self.graded else None

    @property
    def earned(self) -> float | None:
        return None if self.price is None else self.price * (self.pass_rate or 0.0)


@dataclass
class Summary:
    """One model's runs of one variant (or of "all")."""

    model: str
    variant: str
    tasks: list[TaskRuns]

    @property
    def graded(self) -> list[TaskRuns]:
        return [t for t in self.tasks if t.graded]

    @property
    def pass_rate(self) -> float | None:
        """The mean of the graded tasks' pass rates: a task tried five times weighs as much as
        one tried once; one with only errors is not in it."""
        rates = [t.pass_rate for t in self.tasks if t.pass_rate is not None]
        return sum(rates) / len(rates) if rates else None

    @property
    def prices(self) -> Prices:
        return Prices.of((t.task_id, t.price) for t in self.tasks)

    @property
    def earned(self) -> float | None:
        return self.prices.total({t.task_id: t.pass_rate or 0.0 for t in self.tasks})

    @property
    def possible(self) -> float | None:
        """The prices of the graded tasks (an eval's ``possible``)."""
        return self.prices.total({t.task_id: 1.0 for t in self.graded})

    @property
    def errors(self) -> int:
        return sum(t.errors for t in self.tasks)

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
        price = None if result["price"] is None else float(result["price"])
        row = by_key.setdefault(key, TaskRuns(model, result["task_id"], result["variant"], price))
        row.attempts += 1
        error = verdict({**result, "grade_status": (result.get("grade") or {}).get("status")}) == "error"
        row.errors += error
        row.passed += bool(result["resolved"]) and not error
        row.cost.add(result.get("cost_usd"))
        row.exits[result["exit_status"]] += 1
    return Comparison(sorted(by_key.values(), key=lambda t: (t.model, t.task_id)), unfinished)


def print_comparison(run_dirs: list[Path]) -> int:
    console = Console(highlight=False)
    comparison = collect(run_dirs)
    print_figures(console, _task_figures(comparison.tasks))
    print_figures(console, _summary_figures(comparison))
    console.print(Text("\n".join(notes(comparison)), style="dim"), soft_wrap=True)  # a terminal wraps it itself
    return 0


def notes(comparison: Comparison) -> list[str]:
    lines = ["earned: each task's price times its pass rate, so repeated attempts never add up to more than its price"]
    unpriced = sorted({t.task_id for t in comparison.tasks if t.price is None})
    if unpriced:
        lines.append(
            f"{len(unpriced)} task(s) without a price left out of dollars (not counted as $0), "
            "though not of pass rates: " + ", ".join(unpriced)
        )
    errors = sum(t.errors for t in comparison.tasks)
    if errors:
        lines.append(
            f"{errors} error(s) left out of pass rates and dollars: runs that ended in a harness or API fault "
            "(exit error or model_error, or a grading error), not failed fixes"
        )
    if comparison.unfinished:
        names = ", ".join(str(p) for p in comparison.unfinished)
        lines.append(f"not counted: {len(comparison.unfinished)} unfinished run(s) without result.json: {names}")
    return lines


def _task_figures(tasks: list[TaskRuns]) -> Figures:
    fields = ("model", "task", "variant", "price", "attempts", "passed", "earned", "cost", "errors", "exits")
    figures = Figures("runs by task", fields, names=3)
    for t in tasks:
        figures.records.append(
            [
                t.model,
                t.task_id,
                t.variant,
                price_text(t.price, 0),
                str(t.attempts),
                f"{t.passed}/{t.graded} ({t.pass_rate:.0%})" if t.pass_rate is not None else "-",
                price_text(t.earned),
                str(t.cost),
                str(t.errors),
                ", ".join(f"{status} x{n}" if n > 1 else status for status, n in sorted(t.exits.items())),
            ]
        )
    return figures


def _summary_figures(comparison: Comparison) -> Figures:
    fields = ("model", "variant", "tasks", "attempts", "pass rate", "earned", "possible", "earn rate", "cost", "errors")
    figures = Figures("by model", fields, names=2)
    for row in comparison.summaries():
        figures.records.append(
            [
                row.model,
                row.variant,
                str(len(row.tasks)),
                str(sum(t.attempts for t in row.tasks)),
                percent(row.pass_rate),
                price_text(row.earned),
                dollars_text(row.possible, row.prices.unpriced),
                percent(row.earned / row.possible) if row.possible and row.earned is not None else "-",
                str(row.cost),
                str(row.errors),
            ]
        )
    return figures
