"""What a newcomer meets first: tables that never cut a figure, a keyless local server, the
example configs, and figures that leave errors out and never guess pass@k (issues 19, 16)."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from lancer.cli.main import _parser
from lancer.core.config import load_config
from lancer.core.tables import print_figures
from lancer.core.text import money, pass_at, percent
from lancer.eval.metrics import summarize
from lancer.eval.progress import summary_figures
from lancer.study.report import write_report
from tests.conftest import ROOT, lancer_argv, run_lancer
from tests.fakes.llm_server import FakeLLMServer
from tests.study_helpers import write_eval
from tests.test_eval import IC_TASK, MANAGER_TASK, make_task
from tests.test_eval_report import row

CONFIGS = ROOT / "examples" / "configs"

# Two evals whose names, models and figures are wide: 3 variants and sets, 4-figure dollars.
LONG_MODEL = "openai-compatible:qwen2.5-coder-32b-instruct-q4_k_m"
ROWS = [
    {**row("t1", 1, 1800, "ic_swe", "resolved", 0.123456), "set": "diamond"},
    {**row("t1", 2, 1800, "ic_swe", "failed", 0.2), "set": "diamond"},
    {**row("t2", 1, 12500, "swe_manager", "failed", 0.05), "set": "diamond"},
    {**row("t2", 2, 12500, "swe_manager", "resolved", 0.05), "set": "diamond"},
    {**row("t3", 1, 300, "ic_swe", "model_error", 0.01), "set": "nondiamond"},
    {**row("t3", 2, 300, "ic_swe", "resolved", 0.3), "set": "nondiamond"},
]


def _terminal(width: int = 80) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=True, color_system=None, highlight=False), out


def _piped(width: int = 80) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, highlight=False), out


def _report_figures(row: dict[str, str]) -> list[str]:
    """summary.csv's figures of one row as the report prints them."""
    value = {
        k: (float(v) if v not in ("", None) else None) for k, v in row.items() if k not in ("eval", "model", "scope")
    }
    return [
        row["eval"], row["model"], row["scope"],
        f"{row['graded']}/{row['attempts']}",
        percent(value["pass@1"]),
        f"{pass_at(value['pass@k'], int(row['short_of_k']))} (k={row['k']})",
        f"{money(value['earned'])} / {money(value['possible'])}",
        percent(value["earn_rate"]),
        money(value["cost_usd"], 4),
        "-" if value["roi"] is None else f"{value['roi']:,.1f}x",
    ]  # fmt: skip


def _assert_whole(text: str, figures: list[str]) -> None:
    assert "…" not in text, text
    lines = text.splitlines()
    for figure in figures:
        assert any(figure in line for line in lines), f"{figure!r} is not whole in:\n{text}"


def test_report_prints_every_figure_whole_at_80_columns_and_piped(tmp_path: Path) -> None:
    a = write_eval(tmp_path / "qwen-coder-32b-local-eval-2026-12-02", LONG_MODEL, ROWS, attempts=2)
    b = write_eval(tmp_path / "oracle-eval", "oracle", ROWS[:4], attempts=2)

    console, terminal = _terminal()
    write_report([a, b], tmp_path / "report", console=console)
    with (tmp_path / "report" / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9  # each eval: all, 2 variants, 2 sets or 1
    figures = [figure for r in rows for figure in _report_figures(r)]
    assert "$7,450.00 / $14,600.00" in figures  # 1800 x .5 + 12500 x .5 + 300 of 1800 + 12500 + 300
    narrow = terminal.getvalue()
    assert max(len(line) for line in narrow.splitlines()) <= 80
    _assert_whole(narrow, figures)

    piped = run_lancer("report", str(a), str(b), "-o", str(tmp_path / "again"), env={"COLUMNS": "80"})
    assert piped.returncode == 0, piped.stderr
    _assert_whole(piped.stdout, figures)
    assert max(len(line) for line in piped.stdout.splitlines()) > 80  # at its full width, one row a line


def test_the_eval_summary_prints_every_figure_whole_at_80_columns_and_piped() -> None:
    tasks = [{"id": r["task_id"], "variant": r["variant"], "price": r["price"], "set": r["set"]} for r in ROWS[::2]]
    summary = {"model": LONG_MODEL, "status": "finished", **summarize(ROWS, tasks, attempts=2)}
    groups = [summary["overall"], *summary["by_variant"].values(), *summary["by_set"].values()]
    assert len(groups) == 5
    figures = [
        figure
        for g in groups
        for figure in (
            f"{g['graded']} / {g['attempts']}",
            pass_at(g["pass_at"]["1"]),
            pass_at(g["pass_at"]["2"], g["pass_at_short"].get("2", 0)),
            money(g["earned"]),
            money(g["possible"]),
            percent(g["earn_rate"]),
            money(g["cost_usd"], 4),
        )
    ]
    assert "- (1 task short)" in figures  # t3 has one graded attempt: no pass@2 for its groups
    for console, out in (_terminal(), _piped()):
        print_figures(console, summary_figures(summary))
        _assert_whole(out.getvalue(), figures)
        narrow = console.is_terminal
        assert (max(len(line) for line in out.getvalue().splitlines()) <= 80) is narrow


# --- a keyless local server ----------------------------------------------------------------


def _keyless_eval(*args: str) -> subprocess.CompletedProcess[str]:
    """lancer eval with no key and no server in the environment, as on a fresh machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    return subprocess.run(lancer_argv("eval", *args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_an_eval_against_a_keyless_openai_compatible_server_needs_no_key(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    with FakeLLMServer.from_turns_file(IC_TASK / "solution.yaml") as server:
        proc = _keyless_eval(
            str(IC_TASK), "--model", "openai-compatible:local-coder", "--base-url", server.openai_base_url,
            "--out", str(out),
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "is not set" not in proc.stderr
    overall = json.loads((out / "summary.json").read_text())["overall"]
    assert (overall["graded"], overall["resolved"], overall["errors"]) == (1, 1, 0)
    assert len(server.requests) >= 2  # the model really answered every turn
    # The summary went to a pipe: printed at full width, nothing cut.
    _assert_whole(proc.stderr, ["$250.00", "100.0%", "1 / 1"])


@pytest.mark.parametrize("base_url", [False, True])
def test_a_budget_with_an_unknown_price_is_the_first_refusal(tmp_path: Path, base_url: bool) -> None:
    server = ["--base-url", "http://127.0.0.1:9/v1"] if base_url else []
    # No key, maybe no server, no --cost-limit: of all that is missing, the price comes first.
    proc = _keyless_eval(str(IC_TASK), "--model", "openai-compatible:foo", *server, "--budget", "5",
                         "--out", str(tmp_path / "e"))  # fmt: skip
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("lancer: error:")]
    assert errors == [
        "lancer: error: --budget needs known prices and openai-compatible:foo's are unknown: "
        "set model.price in --config, or drop --budget"
    ]
    assert not (tmp_path / "e").exists()


def test_openai_compatible_without_a_server_says_how_to_give_one(tmp_path: Path) -> None:
    proc = _keyless_eval(str(IC_TASK), "--model", "openai-compatible:foo", "--out", str(tmp_path / "e"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "lancer: error: openai-compatible:foo needs its server's base URL: pass --base-url http://HOST:PORT/v1, "
        "or set OPENAI_BASE_URL (or model.base_url in --config)"
    )


# --- the example configs ---------------------------------------------------------------------


def test_every_example_config_loads_and_its_commands_parse() -> None:
    paths = sorted(CONFIGS.glob("*"))
    assert [p.name for p in paths] == [
        "docker-limits.yaml",
        "hosted-api-budget.yaml",
        "local-openai-compatible.yaml",
        "ray.yaml",
    ]
    kinds = {}
    for path in paths:
        config = load_config(path)
        kinds[path.stem] = config.sandbox.kind
        # The command in its comment is one lancer accepts, with this file as its --config.
        text = "".join(
            line.removeprefix("#").strip().removesuffix("\\") + " "
            for line in path.read_text().splitlines()
            if line.startswith("#  ") and ("lancer eval" in line or line.startswith("#       "))
        )
        command = shlex.split(text[text.index("lancer eval") :])[1:]
        args = _parser().parse_args(command)
        assert args.config == Path("examples/configs") / path.name, path
    assert kinds == {"docker-limits": "docker", "hosted-api-budget": "local",
                     "local-openai-compatible": "local", "ray": "docker"}  # fmt: skip
    local = load_config(CONFIGS / "local-openai-compatible.yaml")
    assert local.model.base_url and local.model.price and local.limits.cost_limit_usd is None
    assert load_config(CONFIGS / "hosted-api-budget.yaml").limits.cost_limit_usd == 2.0


# --- honest figures ---------------------------------------------------------------------------


def test_compare_leaves_an_errored_run_out_of_the_pass_rate_and_says_so(tmp_path: Path) -> None:
    script = f"scripted:{MANAGER_TASK / 'solution.yaml'}"
    good = run_lancer("run", str(MANAGER_TASK), "--model", script, "--out", str(tmp_path / "good"))
    assert good.returncode == 0, good.stderr
    # The same task whose setup fails: a harness fault, no verdict on the model.
    broken = make_task(tmp_path / "tasks", "manager-date-format", setup=["exit 3"])
    bad = run_lancer("run", str(broken), "--model", script, "--out", str(tmp_path / "bad"))
    assert json.loads((tmp_path / "bad" / "result.json").read_text())["exit_status"] == "error", bad.stderr

    proc = run_lancer("compare", str(tmp_path / "good"), str(tmp_path / "bad"))
    assert proc.returncode == 0, proc.stderr
    by_task, by_model = proc.stdout.split("by model")
    task_row = next(line.split() for line in by_task.splitlines() if "manager-date-format" in line)
    # 2 attempts, 1 graded and passed: 100%, $500 earned of $500; 1 error.
    assert task_row[3:9] == ["$500", "2", "1/1", "(100%)", "$500.00", "$0.0000"] and task_row[9] == "1"
    model_row = next(line.split() for line in by_model.splitlines() if script in line)
    assert model_row[1:] == ["swe_manager", "1", "2", "100.0%", "$500.00", "$500.00", "100.0%", "$0.0000", "1"]
    assert "1 error(s) left out of pass rates and dollars" in proc.stdout


def test_pass_at_k_is_null_where_a_task_has_fewer_graded_attempts(tmp_path: Path) -> None:
    # attempts=4: t1 graded 4 times; t2 graded twice (two model errors).
    outcomes = {
        "t1": ["resolved", "failed", "failed", "failed"],
        "t2": ["failed", "model_error", "resolved", "model_error"],
    }
    rows = [row(t, i, 100, "ic_swe", o, 0.1) for t, os_ in outcomes.items() for i, o in enumerate(os_, start=1)]
    overall = summarize(rows, attempts=4)["overall"]
    # t1 (n=4, c=1): pass@1 .25, pass@2 .5; t2 (n=2, c=1): .5, 1.
    assert overall["pass_at"] == pytest.approx({"1": 0.375, "2": 0.75, "3": None, "4": None})
    assert overall["pass_at_short"] == {"3": 1, "4": 1}
    assert overall["earned_at_k"] is None and overall["earned"] == pytest.approx(75)

    ev = write_eval(tmp_path / "eval", "oracle", rows, attempts=4)
    report = run_lancer("report", str(ev), "-o", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    with (tmp_path / "report" / "summary.csv").open() as f:
        overall_row = next(r for r in csv.DictReader(f) if r["scope"] == "all")
    assert (overall_row["pass@k"], overall_row["k"], overall_row["short_of_k"]) == ("", "4", "1")
    assert "- (1 task short) (k=4)" in report.stdout
    console, out = _piped()
    print_figures(console, summary_figures({"model": "oracle", "status": "budget", **summarize(rows, attempts=4)}))
    lines = out.getvalue().splitlines()
    assert next(line for line in lines if "pass@4" in line).split()[1:] == ["-", "(1", "task", "short)"] * 2
    assert "pass@3" not in out.getvalue()  # the summary shows pass@1 and pass@K only
