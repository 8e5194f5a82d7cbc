"""`lancer report` and lancer.study.frames against figures computed by hand.

The evals here are results.jsonl files with chosen outcomes (the report reads nothing else
of an eval's runs), so every pass rate and dollar can be worked out on paper below.
"""

from __future__ import annotations

import csv
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lancer.study.frames import attempts_df, evals_df
from tests.conftest import EXAMPLES, ROOT, run_lancer
from tests.study_helpers import write_eval
from tests.test_eval import _row


def row(task: str, attempt: int, price: float, variant: str, outcome: str, cost: float | None) -> dict[str, Any]:
    """A results.jsonl line: test_eval's, with the fields a finished run adds."""
    line = _row(task, attempt, price, variant, outcome, cost)
    return {**line, "input_tokens": 100, "output_tokens": 10, "steps": 3, "duration_s": 1.0,
            "run_dir": f"runs/{task}/{attempt}", "node": "localhost"}  # fmt: skip


# Eval A, 2 attempts of 3 tasks (the definitions: lancer/eval/metrics.py):
#   t1 $100 ic_swe:       resolved ($0.10), failed ($0.20)                 -> n=2 c=1: pass@1 .5, pass@2 1
#   t2 $1000 swe_manager: failed ($0.05), failed ($0.05)                   -> n=2 c=0: pass@1 0,  pass@2 0
#   t3 $300 ic_swe:       model error ($0.01, not graded), resolved ($0.30) -> n=1 c=1: pass@1 1,  no pass@2
# pass@1 = (.5 + 0 + 1) / 3 = .5; pass@2 undefined (t3 has 1 graded attempt: 1 task short), so earned@2 too
# earned = 100 x .5 + 1000 x 0 + 300 x 1 = 350 of 1400 possible: earn rate .25
# cost = .71, .355 per resolved attempt; roi = 350 / (one attempt per task: .15 + .05 + .155) = 350 / .355
# dollars earned by all attempts = 100 + 300 = 400
# by price: t1 "< $250" .5, t3 "$250-$500" 1.0, t2 "$1k-$2k" 0
ROWS_A = [
    row("t1", 1, 100, "ic_swe", "resolved", 0.10),
    row("t1", 2, 100, "ic_swe", "failed", 0.20),
    row("t2", 1, 1000, "swe_manager", "failed", 0.05),
    row("t2", 2, 1000, "swe_manager", "failed", 0.05),
    row("t3", 1, 300, "ic_swe", "model_error", 0.01),
    row("t3", 2, 300, "ic_swe", "resolved", 0.30),
]
# Eval B wrote its summary.json (as lancer eval does): the report takes its figures from it.
ROWS_B = [row("t1", 1, 100, "ic_swe", "resolved", None), row("t2", 1, 1000, "swe_manager", "failed", None)]
SUMMARY_B = {
    "model": "anthropic:claude-sonnet-4-5",
    "status": "budget",
    "attempts_per_task": 1,
    "overall": {
        "tasks": 2, "attempts": 2, "graded": 2, "pass_at": {"1": 0.5}, "earned": 100.0, "earned_at_k": 100.0,
        "possible": 1100.0, "earn_rate": 100 / 1100, "cost_usd": None, "cost_per_resolved": None, "roi": None,
        "errors": 0, "error_details": [], "not_run": 1,
    },
    "by_variant": {"ic_swe": {"tasks": 1, "attempts": 1, "pass_at": {"1": 1.0}, "earned": 100.0}},
}  # fmt: skip


@pytest.fixture
def evals(tmp_path: Path) -> tuple[Path, Path]:
    a = write_eval(tmp_path / "model-a", "openai:gpt-4o", ROWS_A, attempts=2)
    b = write_eval(tmp_path / "model-b", "anthropic:claude-sonnet-4-5", ROWS_B, attempts=1, summary=SUMMARY_B)
    return a, b


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_report_matches_the_hand_computation(evals: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = run_lancer("report", *map(str, evals), "-o", str(out), env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    with (out / "summary.csv").open() as f:
        rows = {(r["eval"], r["scope"]): r for r in csv.DictReader(f)}
    assert set(rows) == {("model-a", "all"), ("model-a", "variant ic_swe"), ("model-a", "variant swe_manager"),
                         ("model-b", "all"), ("model-b", "variant ic_swe")}  # fmt: skip
    a = rows[("model-a", "all")]
    assert (a["tasks"], a["attempts"], a["graded"], a["errors"], a["k"]) == ("3", "6", "5", "1", "2")
    assert float(a["pass@1"]) == pytest.approx(0.5) and (a["pass@k"], a["short_of_k"]) == ("", "1")
    assert float(a["earned"]) == pytest.approx(350) and float(a["possible"]) == pytest.approx(1400)
    assert float(a["earn_rate"]) == pytest.approx(0.25) and a["earned_at_k"] == ""
    assert float(a["cost_usd"]) == pytest.approx(0.71) and float(a["roi"]) == pytest.approx(350 / 0.355)
    assert float(a["cost_per_resolved"]) == pytest.approx(0.355)
    assert float(a["earned_all_attempts"]) == pytest.approx(400)
    ic = rows[("model-a", "variant ic_swe")]
    assert float(ic["pass@1"]) == pytest.approx(0.75) and float(ic["earned"]) == pytest.approx(350)
    manager = rows[("model-a", "variant swe_manager")]
    assert float(manager["pass@1"]) == 0 and float(manager["possible"]) == pytest.approx(1000)
    b = rows[("model-b", "all")]
    assert (b["earned"], b["cost_usd"], b["roi"], b["not_run"]) == ("100.0", "", "", "1")

    report = (out / "report.md").read_text()
    assert "| model-a | openai:gpt-4o | all | 3 | 6 | 5 | 50.0% | - (1 task short) (k=2) | $350.00 |" in report
    assert "| model-b | anthropic:claude-sonnet-4-5 | all | 2 | 2 | 2 | 50.0% | 50.0% (k=1) | $100.00 |" in report
    assert "| model-a | < $250 | 1 | 50.0% |" in report
    assert "| model-a | $250-$500 | 1 | 100.0% |" in report
    assert "| model-a | $1k-$2k | 1 | 0.0% |" in report
    for name in ("roi.png", "pass_rate_by_price.png", "pass_at_k.png", "cost_per_attempt.png"):
        assert png_size(out / name) == (800, 500)
        assert f"]({name})" in report
    assert "model-a" in proc.stdout and "$350.00 / $1,400.00" in proc.stdout and "985.9x" in proc.stdout


def test_report_of_a_folder_that_is_no_eval_is_one_clear_line(tmp_path: Path) -> None:
    proc = run_lancer("report", str(tmp_path), "-o", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"lancer: error: {tmp_path} holds no eval.json (give eval directories written by lancer eval)"
    )


def lancer_without_matplotlib(*args: str) -> subprocess.CompletedProcess[str]:
    blocked = (
        "import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.figure'] = None; "
        "from lancer.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run([sys.executable, "-c", blocked, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_without_matplotlib_report_says_how_to_get_it_and_view_leaves_the_plots_out(
    evals: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = lancer_without_matplotlib("report", str(evals[0]), "-o", str(out))
    assert proc.returncode == 2
    message = "plots need matplotlib, which is not installed: pip install 'lancer-bench[study]'"
    assert proc.stderr.strip() == f"lancer: error: {message}"
    assert not (out / "summary.csv").exists()

    proc = lancer_without_matplotlib("view", str(evals[0]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == f"note: {message}"
    html = (evals[0] / "view.html").read_text()
    assert "<h2>Plots</h2>" not in html and 'id="task-t3"' in html


def test_attempts_df_has_one_row_per_attempt_with_the_evals_model_and_config(
    evals: tuple[Path, Path], tmp_path: Path
) -> None:
    task = EXAMPLES / "invoice-discount"
    run = tmp_path / "runs" / "one"
    proc = run_lancer("run", str(task), "--model", f"scripted:{task / 'solution.yaml'}", "--out", str(run))
    assert proc.returncode == 0, proc.stderr

    df = attempts_df([*evals, tmp_path / "runs"])  # a folder of runs counts as its runs
    assert len(df) == 6 + 2 + 1
    a = df[df["eval"] == "model-a"]
    assert a["verdict"].tolist() == ["resolved", "failed", "failed", "failed", "error", "resolved"]
    assert set(a["model"]) == {"openai:gpt-4o"} and set(a["config.limits.max_steps"]) == {50}
    assert a[a["verdict"] != "error"].groupby("task_id")["resolved"].mean().to_dict() == {
        "t1": 0.5,
        "t2": 0.0,
        "t3": 1.0,
    }
    lone = df[df["eval"].isna()].iloc[0]
    assert (lone["task_id"], lone["verdict"], lone["earned"]) == ("invoice-discount", "resolved", 250.0)
    assert lone["model"].startswith("scripted:") and lone["config.sandbox.kind"] == "local"
    assert lone["run_dir"] == str(run)

    figures = evals_df(evals)
    overall = figures[figures["scope"] == "all"].set_index("eval")
    assert overall.loc["model-a", "earned"] == pytest.approx(350)
    assert overall.loc["model-b", "not_run"] == 1


def test_attempts_df_without_pandas_says_how_to_get_it(evals: tuple[Path, Path]) -> None:
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "from lancer.study.frames import attempts_df\n"
        "try:\n    attempts_df([sys.argv[1]])\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(evals[0])], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.stdout.strip() == (
        "PandasMissing lancer.study.frames needs pandas, which is not installed: pip install 'lancer-bench[study]'"
    )


def test_view_and_report_read_what_lancer_eval_writes(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    tasks = [str(EXAMPLES / "invoice-discount"), str(EXAMPLES / "manager-date-format")]
    proc = run_lancer("eval", *tasks, "--model", "oracle", "--attempts", "2", "--workers", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr

    proc = run_lancer("view", str(out))
    assert proc.returncode == 0, proc.stderr
    html = (out / "view.html").read_text()
    assert "4 finished, 0 running · eval finished" in html
    assert html.count('<span class="badge">resolved</span>') == 4
    for task in ("invoice-discount", "manager-date-format"):
        for attempt in (1, 2):
            assert f'href="view_runs/{task}/{attempt}.html"' in html
            assert (out / "view_runs" / task / f"{attempt}.html").is_file()

    proc = run_lancer("report", str(out), "-o", str(tmp_path / "report"))
    assert proc.returncode == 0, proc.stderr
    with (tmp_path / "report" / "summary.csv").open() as f:
        overall = next(r for r in csv.DictReader(f) if r["scope"] == "all")
    assert (overall["tasks"], overall["graded"], overall["pass@1"], overall["earned"]) == ("2", "4", "1.0", "750.0")
    assert overall["earned_all_attempts"] == "1500.0"
