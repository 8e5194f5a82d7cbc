"""``lancer report EVAL_DIR... -o DIR``: evals side by side.

Prints a table, and writes DIR/summary.csv (one row per eval and per variant or set),
DIR/report.md (the same table, pass rate by price bucket, the plots) and the plots as PNG.
The figures are the eval's own summary.json when it wrote one (README: "Evaluations").
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from rich.console import Console

from lancer.core.dollars import dollars_text
from lancer.core.errors import LancerError
from lancer.core.records import EvalRecord, is_eval_dir, read_eval
from lancer.core.tables import Figures, print_figures
from lancer.core.text import money, pass_at, percent, price_text
from lancer.eval.metrics import BREAKDOWNS, mean_times, task_groups
from lancer.eval.progress import seconds_triple
from lancer.study import tally
from lancer.study.plots import PLOT_FILES, write_plots

COLUMNS = (
    "eval", "model", "scope", "tasks", "attempts", "graded", "pass@1", "pass@k", "k", "short_of_k", "earned",
    "earned_at_k", "possible", "unpriced_tasks", "earn_rate", "cost_usd", "cost_per_resolved", "roi",
    "earned_all_attempts", "errors", "not_run", "setup_s", "agent_s", "grading_s", "exit_code_verdicts",
)  # fmt: skip


def load_evals(paths: list[Path]) -> list[EvalRecord]:
    for path in paths:
        if not is_eval_dir(path):
            raise LancerError(f"{path} holds no eval.json (give eval directories written by lancer eval)")
    return [read_eval(path) for path in paths]


def metric_rows(evals: list[EvalRecord]) -> list[dict[str, Any]]:
    """One row per eval (scope "all") and per group of its breakdowns (variant, set, difficulty ...)."""
    out = []
    for ev in evals:
        summary = tally.eval_summary(ev)
        scopes: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [("all", summary["overall"], ev.rows)]
        for group, field, label in BREAKDOWNS:
            ids = task_groups(ev.tasks(), field)
            for name, figures in (summary.get(group) or {}).items():
                rows = [r for r in ev.rows if r["task_id"] in ids.get(name, set())]
                scopes.append((f"{label} {name}", figures, rows))
        for scope, figures, rows in scopes:
            pass_at = {int(k): v for k, v in (figures.get("pass_at") or {}).items()}
            k = max(pass_at, default=1)
            out.append(
                {
                    "eval": ev.name,
                    "model": ev.model,
                    "scope": scope,
                    "tasks": figures.get("tasks"),
                    "attempts": figures.get("attempts"),
                    "graded": figures.get("graded"),
                    "pass@1": pass_at.get(1),
                    "pass@k": pass_at.get(k),
                    "k": k,
                    "short_of_k": (figures.get("pass_at_short") or {}).get(str(k), 0),
                    "earned": figures.get("earned"),
                    "earned_at_k": figures.get("earned_at_k"),
                    "possible": figures.get("possible"),
                    "unpriced_tasks": figures.get("unpriced_tasks", 0),
                    "earn_rate": figures.get("earn_rate"),
                    "cost_usd": figures.get("cost_usd"),
                    "cost_per_resolved": figures.get("cost_per_resolved"),
                    "roi": figures.get("roi"),
                    "earned_all_attempts": tally.dollars(rows)["earned"],
                    "errors": figures.get("errors", 0),
                    "not_run": figures.get("not_run", 0),
                    "exit_code_verdicts": figures.get("exit_code_verdicts"),
                    # From the rows: evals written before timing was recorded have none.
                    **mean_times(r for r in rows if r.get("exit_status") != "interrupted"),
                }
            )
    return out


def write_report(paths: list[Path], out_dir: Path, console: Console | None = None) -> list[Path]:
    """Prints the table and writes the files; returns the paths written."""
    evals = load_evals(paths)
    rows = metric_rows(evals)
    if out_dir.exists() and not out_dir.is_dir():
        raise LancerError(f"-o {out_dir} is a file: give the directory to write the report in")
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = write_plots(evals, out_dir)  # first: without matplotlib, nothing is half-written
    csv_path = out_dir / "summary.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    md_path = out_dir / "report.md"
    md_path.write_text(_markdown(evals, rows), encoding="utf-8")
    console = console or Console()
    print_figures(console, _figures(rows))
    console.print(f"wrote {md_path}, {csv_path} and {len(plots)} plots in {out_dir}", markup=False, highlight=False)
    return [md_path, csv_path, *plots]


def _cells(row: dict[str, Any]) -> list[str]:
    return [
        row["eval"],
        row["model"],
        row["scope"],
        _int(row["tasks"]),
        _int(row["attempts"]),
        _int(row["graded"]),
        percent(row["pass@1"]),
        f"{pass_at(row['pass@k'], row['short_of_k'])} (k={row['k']})",
        price_text(row["earned"]),
        dollars_text(row["possible"], row["unpriced_tasks"]),
        percent(row["earn_rate"]),
        money(row["cost_usd"], 4),
        "-" if row["roi"] is None else f"{row['roi']:,.1f}x",
        price_text(row["earned_all_attempts"]),
        _int(row["errors"]),
        _int(row["not_run"]),
        seconds_triple(row),
        _int(row["exit_code_verdicts"]),
    ]


_HEADERS = ["eval", "model", "scope", "tasks", "attempts", "graded", "pass@1", "pass@k", "earned", "possible",
            "earn rate", "cost", "ROI", "earned (all attempts)", "errors", "not run",
            "mean setup / agent / grading", "exit-code verdicts"]  # fmt: skip


def _figures(rows: list[dict[str, Any]]) -> Figures:
    """The terminal's table: the markdown's columns, a few merged to fit a terminal."""
    fields = ("eval", "model", "scope", "graded", "pass@1", "pass@k", "earned / possible", "earn rate", "cost",
              "ROI", "errors", "setup / agent / grading", "exit-code verdicts")  # fmt: skip
    figures = Figures("lancer report", fields, names=3)
    for row in rows:
        c = dict(zip(_HEADERS, _cells(row), strict=True))
        figures.records.append(
            [
                c["eval"],
                c["model"],
                c["scope"],
                f"{c['graded']}/{c['attempts']}",
                c["pass@1"],
                c["pass@k"],
                f"{c['earned']} / {c['possible']}",
                c["earn rate"],
                c["cost"],
                c["ROI"],
                c["errors"] + (f" (+{c['not run']} not run)" if row["not_run"] else ""),
                c["mean setup / agent / grading"],
                c["exit-code verdicts"],
            ]
        )
    return figures


def _markdown(evals: list[EvalRecord], rows: list[dict[str, Any]]) -> str:
    lines = ["# lancer report", "", f"{len(evals)} eval(s): " + ", ".join(f"`{ev.dir}`" for ev in evals), ""]
    lines += [
        "`earned` is the expected dollars of one attempt per task (price x pass@1); `earned (all attempts)` "
        "adds up what every attempt earned. ROI is earned / cost. Errors (harness or model) are not graded. "
        "pass@k is `-` when some task has fewer than k graded attempts (how many: `short`). "
        "`exit-code verdicts`: attempts whose grade rests on the test command's exit code, with no per-test outcomes.",
        "",
        "| " + " | ".join(_HEADERS) + " |",
        "|" + "|".join("---" if i < 3 else "--:" for i in range(len(_HEADERS))) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |" for row in rows]
    lines += ["", "## Pass rate by task price", "", "| eval | price | tasks | pass rate |", "|---|---|--:|--:|"]
    for ev in evals:
        lines += [f"| {ev.name} | {b} | {n} | {percent(rate)} |" for b, n, rate in tally.pass_rate_by_bucket(ev.rows)]
    lines += ["", "## Plots", ""]
    lines += [f"![{title}]({name})" for name, title in PLOT_FILES.items()]
    return "\n".join(lines) + "\n"


def _int(value: Any) -> str:
    return "-" if value is None else str(value)
