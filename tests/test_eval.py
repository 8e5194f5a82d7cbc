"""lancer eval: the summary math, whole evals through the CLI, budget, Ctrl-C, kill -9 and resume."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from lancer.agent.outdirs import fresh_dir
from lancer.core.errors import LancerError
from lancer.eval.attempt import ROW_FIELDS
from lancer.eval.metrics import pass_at_k, summarize
from lancer.eval.store import EvalStore
from tests.conftest import EXAMPLES, ROOT, SWELANCER_LITE_CSV, lancer_argv, run_lancer

IC_TASK = EXAMPLES / "invoice-discount"
MANAGER_TASK = EXAMPLES / "manager-date-format"
PICK_2 = {"tool_calls": [{"name": "submit", "arguments": {"proposal_id": 2}}]}
SUBMIT = {"tool_calls": [{"name": "submit", "arguments": {}}]}


def bash(command: str, cost: float = 0.0) -> dict[str, Any]:
    return {"tool_calls": [{"name": "bash", "arguments": {"command": command}}], "usage": {"cost_usd": cost}}


def make_task(root: Path, task_id: str, source: Path = MANAGER_TASK, **fields: Any) -> Path:
    """A copy of a bundled task under another id (and other fields)."""
    dest = root / task_id
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("solution.yaml"))
    data = yaml.safe_load((dest / "task.yaml").read_text())
    data.update(id=task_id, **fields)
    (dest / "task.yaml").write_text(yaml.safe_dump(data))
    return dest


def write_scripts(root: Path, scripts: dict[str, list[dict[str, Any]]]) -> Path:
    """A scripted:DIR folder: DIR/<task_id>.yaml per task."""
    root.mkdir(parents=True, exist_ok=True)
    for task_id, turns in scripts.items():
        (root / f"{task_id}.yaml").write_text(yaml.safe_dump({"turns": turns}))
    return root


def results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())  # type: ignore[no-any-return]


def processes(pattern: str) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if line.startswith(pattern)]


def wait_for(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def sandbox_owners() -> list[str]:
    """The lancer processes owning the local sandboxes on this machine."""
    owners = []
    for owner in Path("/tmp").glob("lancer-*/lancer.pid"):
        with contextlib.suppress(OSError):  # another process's sandbox going away meanwhile
            owners.append(owner.read_text().strip())
    return owners


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()  # a zombie has ended
    except (ProcessLookupError, FileNotFoundError):
        return False


# --- the summary math --------------------------------------------------------------------


def test_pass_at_k_matches_counting_every_draw() -> None:
    for n, c in [(1, 0), (1, 1), (3, 1), (4, 2), (5, 5), (6, 1)]:
        outcomes = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            draws = list(itertools.combinations(outcomes, k))
            assert pass_at_k(n, c, k) == pytest.approx(sum(any(d) for d in draws) / len(draws))
    with pytest.raises(ValueError, match="1 <= k <= n"):  # k past n is undefined, never a guess
        pass_at_k(2, 1, 5)


def _row(task: str, attempt: int, price: float, variant: str, outcome: str, cost: float | None) -> dict[str, Any]:
    exit_status = {"model_error": "model_error", "interrupted": "interrupted"}.get(outcome, "submitted")
    return {
        "task_id": task,
        "attempt": attempt,
        "variant": variant,
        "set": None,
        "price": price,
        "resolved": outcome == "resolved",
        "earned": price if outcome == "resolved" else 0.0,
        "exit_status": exit_status,
        "grade_status": {"resolved": "passed", "failed": "failed", "grade_error": "error"}.get(outcome),
        "detail": "the API refused the key" if outcome == "model_error" else "",
        "cost_usd": cost,
    }


MIXED = [
    # A: 2 of 3 resolved.  B: 0 of 2 graded (one model error).  C: 1 of 3.  D: only errors.
    _row("A", 1, 100, "ic_swe", "resolved", 0.1),
    _row("A", 2, 100, "ic_swe", "failed", 0.2),
    _row("A", 3, 100, "ic_swe", "resolved", 0.3),
    _row("B", 1, 300, "swe_manager", "failed", 0.5),
    _row("B", 2, 300, "swe_manager", "model_error", 0.1),
    _row("B", 3, 300, "swe_manager", "failed", 0.3),
    _row("C", 1, 50, "ic_swe", "resolved", 0.05),
    _row("C", 2, 50, "ic_swe", "failed", 0.05),
    _row("C", 3, 50, "ic_swe", "failed", 0.05),
    _row("D", 1, 1000, "ic_swe", "grade_error", 0.2),
    _row("D", 2, 1000, "ic_swe", "grade_error", 0.2),
    _row("D", 3, 1000, "ic_swe", "grade_error", 0.2),
]


def test_summary_figures_against_hand_computed_values() -> None:
    s = summarize(MIXED)
    overall = s["overall"]
    assert s["attempts_per_task"] == 3
    assert (overall["tasks"], overall["attempts"], overall["graded"], overall["resolved"]) == (4, 12, 8, 3)
    # pass@k per graded task: A (n=3, c=2): 2/3, 1, 1.  B (n=2, c=0): 0, 0.  C (n=3, c=1): 1/3, 2/3, 1.
    assert overall["pass_at"]["1"] == pytest.approx((2 / 3 + 0 + 1 / 3) / 3, abs=1e-6)
    assert overall["pass_at"]["2"] == pytest.approx((1 + 0 + 2 / 3) / 3, abs=1e-6)
    # B has 2 graded attempts: pass@3 is not defined for it, so not for the set either.
    assert overall["pass_at"]["3"] is None and overall["pass_at_short"] == {"3": 1}
    assert overall["earned"] == pytest.approx(100 * 2 / 3 + 50 / 3, abs=1e-5)  # 83.33
    assert overall["earned_at_k"] is None
    assert overall["possible"] == pytest.approx(450)  # D never graded: neither earned nor possible
    assert overall["earn_rate"] == pytest.approx(83.333333 / 450, abs=1e-6)
    assert overall["cost_usd"] == pytest.approx(2.25)  # errors cost money too
    assert overall["cost_per_resolved"] == pytest.approx(0.75)
    # One attempt per task costs on average 0.2 (A) + 0.3 (B) + 0.05 (C) + 0.2 (D) = 0.75.
    assert overall["roi"] == pytest.approx(83.333333 / 0.75, abs=1e-4)
    assert overall["errors"] == 4
    assert [(e["task_id"], e["attempt"], e["exit_status"]) for e in overall["error_details"]] == [
        ("B", 2, "model_error"),
        ("D", 1, "submitted"),
        ("D", 2, "submitted"),
        ("D", 3, "submitted"),
    ]
    assert overall["error_details"][0]["reason"] == "the API refused the key"
    assert overall["not_run"] == 0
    manager = s["by_variant"]["swe_manager"]
    assert (manager["tasks"], manager["graded"], manager["pass_at"]["1"], manager["earned"]) == (1, 2, 0.0, 0.0)
    assert manager["roi"] == 0.0
    assert s["by_variant"]["ic_swe"]["earned"] == pytest.approx(83.333333, abs=1e-5)
    assert "by_set" not in s


def test_unknown_costs_make_roi_null_and_missing_attempts_not_run() -> None:
    rows = [_row("A", 1, 100, "ic_swe", "resolved", None), _row("A", 2, 100, "ic_swe", "interrupted", 0.1)]
    tasks = [
        {"id": "A", "variant": "ic_swe", "price": 100, "set": "diamond"},
        {"id": "B", "variant": "ic_swe", "price": 5, "set": None},
    ]
    s = summarize(rows, tasks, attempts=3)
    overall = s["overall"]
    assert (overall["cost_usd"], overall["roi"], overall["cost_per_resolved"]) == (None, None, None)
    assert (overall["attempts"], overall["interrupted"], overall["not_run"]) == (1, 1, 4)
    assert overall["pass_at"] == {"1": 1.0, "2": None, "3": None}  # one graded attempt: no pass@2
    assert overall["pass_at_short"] == {"2": 1, "3": 1}
    assert s["by_set"]["diamond"]["tasks"] == 1


# --- whole evals through the CLI ---------------------------------------------------------

FIX_ONCE = (  # the first attempt to get here fixes the bug; later ones leave it
    "mkdir {mark} 2>/dev/null && python3 -c \"import pathlib; p = pathlib.Path('invoice.py'); "
    "p.write_text(p.read_text().replace('taxed - discount', "
    "'max(subtotal(items) - discount, 0.0) * (1 + tax_rate)'))\"; true"
)


def test_an_eval_of_mixed_outcomes_writes_every_output(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    make_task(tasks, "flaky", IC_TASK, price=200)
    make_task(tasks, "wrong", IC_TASK, price=100)
    make_task(tasks, "right", MANAGER_TASK, price=500)
    make_task(tasks, "broken", MANAGER_TASK, price=1000, setup=["exit 3"])
    view = {"tool_calls": [{"name": "editor", "arguments": {"command": "view", "path": "receipts/format.py"}}]}
    scripts = write_scripts(
        tmp_path / "scripts",
        {
            "flaky": [bash(FIX_ONCE.format(mark=tmp_path / "fixed-once"), cost=0.1), SUBMIT],
            "wrong": [bash("true", cost=0.05), SUBMIT],
            "right": [{**view, "usage": {"cost_usd": 0.2}}, PICK_2],
            "broken": [PICK_2],
        },
    )
    out = tmp_path / "eval"
    # The flaky task's attempts share a mark on the host, which an isolated sandbox cannot see.
    config = tmp_path / "shared-host.yaml"
    config.write_text("sandbox:\n  isolation: none\n")
    proc = run_lancer(
        "eval", str(tasks), "--model", f"scripted:{scripts}", "--attempts", "2", "--workers", "3", "--out", str(out),
        "--config", str(config),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    plan = json.loads((out / "eval.json").read_text())
    assert plan["model"] == f"scripted:{scripts}" and plan["attempts"] == 2
    assert [(t["id"], t["price"], t["variant"]) for t in plan["tasks"]] == [
        ("broken", 1000, "swe_manager"),
        ("flaky", 200, "ic_swe"),
        ("right", 500, "swe_manager"),
        ("wrong", 100, "ic_swe"),
    ]
    rows = results(out)
    assert sorted((r["task_id"], r["attempt"]) for r in rows) == sorted(
        itertools.product(["broken", "flaky", "right", "wrong"], [1, 2])
    )
    for row in rows:
        assert list(row) == list(ROW_FIELDS)
        assert row["node"] == socket.gethostname()
        assert row["run_dir"] == f"runs/{row['task_id']}/{row['attempt']}"
        if row["task_id"] == "broken":  # its environment could not be built: its attempts never ran
            assert not (out / row["run_dir"]).exists()
            continue
        result = json.loads((out / row["run_dir"] / "result.json").read_text())
        assert (result["task_id"], result["exit_status"], result["resolved"]) == (
            row["task_id"],
            row["exit_status"],
            row["resolved"],
        )
    by_task = {(r["task_id"], r["attempt"]): r for r in rows}
    assert sorted(by_task[("flaky", a)]["resolved"] for a in (1, 2)) == [False, True]
    assert by_task[("broken", 1)]["exit_status"] == "error" and by_task[("broken", 1)]["grade_status"] is None
    assert by_task[("wrong", 1)]["grade_status"] == "failed"

    s = summary(out)
    overall = s["overall"]
    assert s["status"] == "finished"
    # graded: flaky (1 of 2), wrong (0 of 2), right (2 of 2); broken: 2 errors, never graded.
    assert (overall["tasks"], overall["attempts"], overall["graded"], overall["errors"]) == (4, 8, 6, 2)
    assert overall["pass_at"] == pytest.approx({"1": 0.5, "2": 2 / 3})
    assert (overall["earned"], overall["earned_at_k"], overall["possible"]) == (600, 700, 800)
    assert overall["cost_usd"] == pytest.approx(0.7)
    assert overall["roi"] == pytest.approx(600 / 0.35, abs=1e-3)
    assert "task setup command 'exit 3' exited 3" in overall["error_details"][0]["reason"]
    assert s["by_variant"]["swe_manager"]["errors"] == 2 and s["by_variant"]["ic_swe"]["errors"] == 0
    # What the user sees: a line per attempt run, one for the task whose setup failed, the
    # summary table, where the files are.
    assert proc.stderr.count("broken: ERROR its environment could not be built, 2 attempt(s) not run") == 1
    assert proc.stderr.count(" on ") >= 6 and "pass@2" in proc.stderr and "earned@2" in proc.stderr
    assert f"eval directory: {out}" in proc.stderr


def test_the_budget_stops_new_attempts(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    for i in range(1, 6):
        make_task(tasks, f"m{i}")
    turns = tmp_path / "turns.yaml"
    turns.write_text(yaml.safe_dump({"turns": [bash("echo thinking", cost=0.4), PICK_2]}))
    out = tmp_path / "eval"
    proc = run_lancer(
        "eval", str(tasks), "--model", f"scripted:{turns}", "--workers", "4",
        "--budget", "1.2", "--cost-limit", "0.5", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # Two attempts may be in flight at 0 spent (2 x 0.5 <= 1.2); after both, 0.8 + 0.5 > 1.2.
    assert len(results(out)) == 2
    s = summary(out)
    assert s["status"] == "budget"
    assert (s["overall"]["attempts"], s["overall"]["not_run"]) == (2, 3)
    assert s["overall"]["cost_usd"] == pytest.approx(0.8)
    assert "stopped by the budget: 3 attempt(s) not run" in proc.stderr


def test_a_crashing_attempt_never_stops_the_others(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    make_task(tasks, "ok-1")
    make_task(tasks, "crash", title="CRASH when the date is formatted")
    make_task(tasks, "ok-2")
    out = tmp_path / "eval"
    proc = run_lancer(
        "eval", str(tasks), "--model", "tests.fakes.crashing_model:CrashingModel", "--workers", "2", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    rows = {r["task_id"]: r for r in results(out)}
    assert rows["ok-1"]["resolved"] and rows["ok-2"]["resolved"]
    assert rows["crash"]["exit_status"] == "error"
    assert "process ended (exit code -9) without a result" in rows["crash"]["detail"]
    assert summary(out)["overall"]["errors"] == 1


def test_ctrl_c_interrupts_the_running_attempts_and_starts_no_more(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    for name in ("c1", "c2", "c3"):
        make_task(tasks, name)
    turns = tmp_path / "turns.yaml"
    turns.write_text(yaml.safe_dump({"turns": [bash("sleep 61.5"), PICK_2]}))
    out = tmp_path / "eval"
    argv = lancer_argv("eval", str(tasks), "--model", f"scripted:{turns}", "--workers", "2", "--out", str(out))
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(
            lambda: len(list(out.glob("runs/*/*/worker.pid"))) == 2 and len(processes("sleep 61.5")) >= 2, "2 runs"
        )
        workers = [int(p.read_text()) for p in out.glob("runs/*/*/worker.pid")]
        assert summary(out)["status"] == "running"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted: run the same command with --out" in stderr
    s = summary(out)
    assert s["status"] == "interrupted"
    assert (s["overall"]["attempts"], s["overall"]["interrupted"], s["overall"]["not_run"]) == (0, 2, 1)
    assert (out / "results.jsonl").read_text() == ""  # interrupted attempts are not results
    for run_dir in (out / "runs").glob("*/*"):
        assert json.loads((run_dir / "result.json").read_text())["exit_status"] == "interrupted"
    assert processes("sleep 61.5") == [] and not any(pid_alive(pid) for pid in workers)


def test_resume_after_kill_9_counts_each_attempt_once(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    for name in ("fast-1", "fast-2", "slow"):
        make_task(tasks, name)
    go = tmp_path / "go"
    scripts = write_scripts(
        tmp_path / "scripts",
        {"fast-1": [PICK_2], "fast-2": [PICK_2], "slow": [bash(f"[ -f {go} ] || sleep 62.5"), PICK_2]},
    )
    out = tmp_path / "eval"
    args = ["eval", str(tasks), "--model", f"scripted:{scripts}", "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(lancer_argv(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: processes("sleep 62.5") and len(results(out)) == 2, "the fast attempts and the slow one")
        worker = int((out / "runs" / "slow" / "1" / "worker.pid").read_text())
        fork_server = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])  # its parent
    finally:
        proc.kill()  # kill -9 of the eval
        proc.communicate()
    # The attempt in flight is stopped with the eval: its shell, its process, its sandbox,
    # and the process its worker was forked from.
    gone = lambda: not processes("sleep 62.5") and not pid_alive(worker) and not pid_alive(fork_server)  # noqa: E731
    wait_for(gone, "the orphaned attempt to end", 30)
    assert str(worker) not in sandbox_owners()
    assert sorted(r["task_id"] for r in results(out)) == ["fast-1", "fast-2"]

    # Another model or config is refused, and changes nothing.
    other_model = run_lancer("eval", str(tasks), "--model", "oracle", "--out", str(out))
    assert other_model.returncode == 2 and "holds an eval with another model" in other_model.stderr
    other_config = run_lancer(*args, "--max-steps", "9")
    assert other_config.returncode == 2 and "another config (limits.max_steps=50" in other_config.stderr

    go.touch()
    resumed = run_lancer(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "continuing: 1 unfinished attempt(s) will run again" in resumed.stderr
    discarded = [json.loads(line) for line in (out / "discarded.jsonl").read_text().splitlines()]
    assert discarded == [{"task_id": "slow", "attempt": 1, "cost_usd": 0.0}]  # killed before its first step ended
    rows = results(out)
    assert sorted((r["task_id"], r["attempt"]) for r in rows) == [("fast-1", 1), ("fast-2", 1), ("slow", 1)]
    s = summary(out)["overall"]
    assert (s["attempts"], s["resolved"], s["not_run"], s["earned"]) == (3, 3, 0, 1500)
    # Continuing a finished eval runs nothing and counts nothing twice.
    again = run_lancer(*args)
    assert again.returncode == 0 and len(results(out)) == 3


def test_a_row_torn_by_a_crash_loses_no_row_written_after_it(tmp_path: Path) -> None:
    """A crash mid-write leaves a torn last line; the resumed eval's rows must not be glued
    onto it, and the study tools read every row the eval counts."""
    from lancer.core.records import read_eval

    out = tmp_path / "eval"
    store = EvalStore(out)
    store.open({"model": "oracle"})
    store.append(_row("A", 1, 100, "ic_swe", "resolved", 0.1))
    store.close()
    with (out / "results.jsonl").open("a") as results:
        results.write('{"task_id": "A", "attempt": 2, "pri')  # the crash
    store.open({"model": "oracle"})
    store.append(_row("A", 2, 100, "ic_swe", "failed", 0.2))
    store.close()
    assert [(r["attempt"], r["resolved"]) for r in store.finished_rows()] == [(1, True), (2, False)]
    assert [(r["attempt"], r["resolved"]) for r in read_eval(out).rows] == [(1, True), (2, False)]


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda t: None, ["no/such/task"], "task folder no/such/task does not exist"),
        (
            lambda t: (make_task(t, "bad") / "task.yaml").write_text(
                "id: bad\nvariant: ic_swe\ntitle: x\ndescription: y\n"
            ),
            [],
            "bad/task.yaml: price: Field required",
        ),
        (lambda t: make_task(t, "dup", title="another"), ["{examples}/manager-date-format"], "two tasks have the id"),
        (
            lambda t: (t / "empty").mkdir(),
            ["{tasks}/empty"],
            "is neither a task folder (no task.yaml, nor Harbor's task.toml) nor a folder",
        ),
        (lambda t: None, ["--variant", "ic_swe"], "--variant, --set and --ids filter a --dataset"),
        (lambda t: None, ["--attempts", "0"], "--attempts must be at least 1"),
        (lambda t: None, ["--executor", "nope"], "unknown executor 'nope'"),
        (lambda t: None, ["--budget", "1", "--cost-limit", "2"], "less than one attempt's cost limit ($2)"),
        (
            lambda t: None,
            ["--dataset", "{lite}", "--ids", "18641_837"],  # an IC task: its code is only in its image
            "task 18641_837's code is in its image",
        ),
    ],
)
def test_a_bad_task_set_or_option_is_one_line_before_anything_starts(
    tmp_path: Path, make: Any, extra: list[str], message: str
) -> None:
    tasks = tmp_path / "tasks"
    make_task(tasks, "good")
    make_task(tasks, "dup-src")
    make(tasks)
    if "two tasks" in message:  # a second task with the id of the bundled one
        data = yaml.safe_load((tasks / "dup" / "task.yaml").read_text())
        (tasks / "dup" / "task.yaml").write_text(yaml.safe_dump({**data, "id": "manager-date-format"}))
    extra = [e.format(examples=EXAMPLES, tasks=tasks, lite=SWELANCER_LITE_CSV) for e in extra]
    out = tmp_path / "eval"
    proc = run_lancer(
        "eval", str(tasks), *extra, "--model", f"scripted:{MANAGER_TASK / 'solution.yaml'}", "--out", str(out)
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_budget_with_an_unknown_price_is_refused(tmp_path: Path) -> None:
    proc = run_lancer(
        "eval", str(MANAGER_TASK), "--model", "openai:no-such-model-7", "--budget", "5", "--out", str(tmp_path / "e"),
        env={"OPENAI_API_KEY": "sk-test"},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--budget needs known prices and openai:no-such-model-7's are unknown" in proc.stderr


def test_out_refuses_a_folder_holding_something_else(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    proc = run_lancer("eval", str(MANAGER_TASK), "--model", "oracle", "--out", str(tmp_path))
    assert proc.returncode == 2 and "is not empty and holds no eval.json" in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_fresh_folders_never_collide(tmp_path: Path) -> None:
    made = {fresh_dir(tmp_path, "task") for _ in range(50)}  # all within the same second or two
    assert len(made) == 50 and all(p.is_dir() for p in made)


def test_an_eval_folder_is_continued_only_by_the_same_question(tmp_path: Path) -> None:
    plan = {"model": "m", "attempts": 2, "tasks": [{"id": "a", "variant": "ic_swe", "price": 1}], "config": {}}
    store = EvalStore(tmp_path)
    assert store.open(plan) is False
    with pytest.raises(LancerError, match="another lancer eval is writing to"):
        EvalStore(tmp_path).open(plan)
    store.close()
    refusals = {
        "another number of attempts (2; this command: 3)": {"attempts": 3},
        "another task set (1 task(s), with a; this command: 1 task(s), with b)": {
            "tasks": [{"id": "b", "variant": "ic_swe", "price": 1}]
        },
        "another task set (the same ids; this command: another price or variant for a)": {
            "tasks": [{"id": "a", "variant": "ic_swe", "price": 2}]
        },
    }
    for message, change in refusals.items():
        with pytest.raises(LancerError, match=re.escape(message)):
            EvalStore(tmp_path).open({**plan, **change})
    again = EvalStore(tmp_path)
    assert again.open({**plan, "command": "another command line", "workers": 9}) is True
    again.close()


def test_the_live_step_count_reads_what_was_appended(tmp_path: Path) -> None:
    from lancer.eval.progress import StepCounter

    trajectory, count = tmp_path / "trajectory.jsonl", StepCounter()
    assert count(trajectory) == 0  # not written yet
    step = '{"type": "step", "n": 1}\n'
    trajectory.write_text('{"type": "header"}\n' + step + '{"type": "st')  # a line half written
    assert count(trajectory) == 1
    with trajectory.open("a") as f:
        f.write('ep", "n": 2}\n' + step)
    assert count(trajectory) == 3
    trajectory.write_text(step)  # the attempt started again
    assert count(trajectory) == 1
