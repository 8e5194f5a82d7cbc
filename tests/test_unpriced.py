"""Tasks without a price claim no dollars, not $0, in every place that shows money.

One eval of three manager tasks through the CLI: "paid" ($500, the right proposal),
"cheap" ($300, a wrong one) and "unpaid" (no price, the right one). By hand: pass@1 is
2/3 (every task counts); dollars cover the two priced tasks only: $500 earned of $800
possible, an earn rate of 62.5%, and every total says 1 task was unpriced.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from lancer.eval.metrics import summarize
from tests.conftest import run_lancer
from tests.test_eval import PICK_2, make_task, summary, write_scripts

PICK_1 = {"tool_calls": [{"name": "submit", "arguments": {"proposal_id": 1}}]}
WIDE = {"COLUMNS": "250"}


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("unpriced")
    tasks = root / "tasks"
    make_task(tasks, "paid", price=500)
    make_task(tasks, "cheap", price=300)
    make_task(tasks, "unpaid", price=None)
    scripts = write_scripts(root / "scripts", {"paid": [PICK_2], "cheap": [PICK_1], "unpaid": [PICK_2]})
    out = root / "eval"
    proc = run_lancer("eval", str(tasks), "--model", f"scripted:{scripts}", "--out", str(out), env=WIDE)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout + proc.stderr


def test_the_eval_summary_counts_dollars_of_the_priced_tasks_only(eval_dir: tuple[Path, str]) -> None:
    out, printed = eval_dir
    overall = summary(out)["overall"]
    assert overall["pass_at"]["1"] == pytest.approx(2 / 3)  # the unpriced task counts in pass rates
    assert (overall["earned"], overall["possible"], overall["unpriced_tasks"]) == (500, 800, 1)
    assert overall["earn_rate"] == pytest.approx(0.625)
    assert re.search(r"possible\s.*\$800\.00 \(1 task unpriced\)", printed), printed
    assert "unpaid #1  RESOLVED  earned no price" in printed, printed


def test_report_and_its_csv_say_the_unpriced_task(eval_dir: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = eval_dir
    proc = run_lancer("report", str(out), "-o", str(tmp_path / "report"), env=WIDE)
    assert proc.returncode == 0, proc.stderr
    assert "$500.00 / $800.00 (1 task unpriced)" in proc.stdout, proc.stdout
    with (tmp_path / "report" / "summary.csv").open() as f:
        overall = next(r for r in csv.DictReader(f) if r["scope"] == "all")
    assert (float(overall["earned"]), float(overall["possible"]), overall["unpriced_tasks"]) == (500, 800, "1")
    assert float(overall["earned_all_attempts"]) == 500  # the unpriced task's resolved attempt adds nothing
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| $500.00 | $800.00 (1 task unpriced) |" in markdown, markdown
    assert "< $250" not in markdown  # the unpriced task is in no price bucket, not the cheapest one


def test_compare_shows_no_price_rather_than_zero(eval_dir: tuple[Path, str]) -> None:
    out, _ = eval_dir
    runs = sorted(str(p) for p in (out / "runs").glob("*/*"))
    proc = run_lancer("compare", *runs, env=WIDE)
    assert proc.returncode == 0, proc.stderr
    unpaid = next(line for line in proc.stdout.splitlines() if " unpaid " in line)
    assert unpaid.count("no price") == 2 and "$0.00 " not in unpaid, unpaid  # its price and earned
    by_model = next(line for line in proc.stdout.splitlines() if "66.7%" in line)  # pass rate: all three tasks
    assert "$500.00" in by_model and "$800.00 (1 task unpriced)" in by_model and "62.5%" in by_model, by_model
    assert "1 task(s) without a price left out of dollars (not counted as $0), though not of pass rates: unpaid" in (
        " ".join(proc.stdout.split())
    )


def test_show_says_no_price(eval_dir: tuple[Path, str]) -> None:
    out, _ = eval_dir
    proc = run_lancer("show", str(out / "runs" / "unpaid" / "1"))
    assert proc.returncode == 0, proc.stderr
    assert "resolved: True  earned: no price" in proc.stdout, proc.stdout
    paid = run_lancer("show", str(out / "runs" / "paid" / "1"))
    assert "resolved: True  earned: $500.00 of $500.00" in paid.stdout, paid.stdout


def test_with_no_priced_task_no_dollars_are_claimed() -> None:
    rows = [
        {"task_id": t, "attempt": 1, "price": None, "resolved": r, "earned": None, "exit_status": "submitted",
         "grade_status": "passed" if r else "failed", "cost_usd": 0.1}
        for t, r in (("a", True), ("b", False))
    ]  # fmt: skip
    overall = summarize(rows)["overall"]
    assert overall["pass_at"]["1"] == 0.5
    assert (overall["earned"], overall["possible"], overall["earn_rate"], overall["roi"]) == (None, None, None, None)
    assert overall["unpriced_tasks"] == 2
