"""Grading: a fresh sandbox, the patch, the hidden tests, a verdict; up to N runs, any
pass counts (as SWE-Lancer). The verdict comes from per-test outcomes
(lancer.grader.report) wherever the test command leaves them: the JUnit XML report the
task names (``test_report``, or ``$LANCER_TEST_REPORT``), else the reports of every pytest
run in the command (lancer.grader.pytest_reports: the default command is one), else
``go test -json`` output; only a command that leaves none is judged by its exit code (0
passed, 1 failed, anything else an error), and the grade's ``basis`` says so. A manager
task with a
``reward_dir`` (Harbor's) is judged by the reward its test command writes there
(lancer.grader.reward). A manager task is resolved when the chosen proposal is the
correct one.
"""

from __future__ import annotations

import contextlib
import posixpath
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lancer.core.config import RunConfig
from lancer.core.errors import SetupError
from lancer.core.sandbox import close_even_if_interrupted, owned_temp_dir
from lancer.core.tasks import REPORT_ENV, Task
from lancer.grader import pytest_reports
from lancer.grader.ctrf import CTRF_JSON, parse_ctrf
from lancer.grader.harbor_logs import keep_harbor_logs
from lancer.grader.report import (
    Basis,
    ReportError,
    Status,
    TestOutcome,
    decide,
    parse_go_test_json,
    parse_junit,
    parse_junit_reports,
)
from lancer.grader.reward import REWARD_JSON, REWARD_TXT, RewardError, parse_reward
from lancer.sandbox import Sandbox, create_sandbox
from lancer.sandbox.git import PatchError, apply_patch

_REPORT_NAME = ".lancer-test-report.xml"
_PYTEST_REPORTS = ".lancer-pytest-reports"
_TAIL_CHARS = 4000
# pytest's exit codes for outcomes its report shows: passed, failed, interrupted by
# collection errors, no tests collected. Others (3 internal error, 4 usage) are named.
_EXITS_THE_REPORT_EXPLAINS = (0, 1, 2, 5)


@dataclass
class Grade:
    status: Status
    resolved: bool
    attempts: int = 0
    detail: str = ""
    output_tail: str = ""
    tests: list[TestOutcome] = field(default_factory=list)
    # What the verdict rests on; None when no test run decided it (a patch that does not
    # apply, a failing setup, a timeout).
    basis: Basis | None = None
    # A reward-file verdict's reward (1: resolved; less: a partial score) and its metrics.
    reward: float | None = None
    reward_metrics: dict[str, float] = field(default_factory=dict)
    reward_source: str | None = None  # which reward file (and metric) the verdict rests on
    swebench_version: str | None = None  # the swebench package that decided it (a SWE-bench instance)

    def to_dict(self) -> dict[str, Any]:
        rewarded = (
            {"reward": self.reward, "reward_metrics": self.reward_metrics, "reward_source": self.reward_source}
            if self.reward is not None
            else {}
        )
        return {
            "status": self.status,
            "attempts": self.attempts,
            "detail": self.detail,
            "basis": self.basis,
            "tests": [t.to_dict() for t in self.tests],
            "output_tail": self.output_tail,
            **rewarded,
            **({"swebench_version": self.swebench_version} if self.swebench_version else {}),
        }


@dataclass
class _TestRun:
    """What one run of the hidden tests left: its exit code (None: timed out), the tail
    of its output, the report the task names (if written), its pytest runs' reports, and
    its standard output (where ``go test -json`` writes)."""

    exit_code: int | None
    tail: str
    named_report: bytes | None = None
    pytest_reports: list[bytes] = field(default_factory=list)
    stdout: str = ""


def grade(
    task: Task, patch: bytes, config: RunConfig, answer: dict[str, Any] | None = None, logs_dir: Path | None = None
) -> Grade:
    """The verdict on ``patch``. A task graded by a reward file leaves what its verifier
    wrote (Harbor's /logs/verifier and /logs/artifacts) in ``logs_dir`` when given, a
    SWE-bench instance the test log swebench read (test_output.txt)."""
    config = task.limited(config)
    if task.variant == "swe_manager":
        return _grade_manager(task, answer)
    return _grade_ic(task, patch, config, logs_dir)


def _grade_manager(task: Task, answer: dict[str, Any] | None) -> Grade:
    chosen = (answer or {}).get("proposal_id")
    if chosen is None:
        return Grade("failed", False, detail="no proposal was chosen")
    resolved = chosen == task.correct_proposal
    return Grade("passed" if resolved else "failed", resolved, detail=f"chose proposal {chosen}", basis="proposal")


def _grade_ic(task: Task, patch: bytes, config: RunConfig, logs_dir: Path | None) -> Grade:
    # SWE-Lancer's images carry their tests; the agent's container had them removed (container.hide).
    tests_in_image = task.test_command is not None and task.container is not None and bool(task.container.hide)
    if task.tests_dir is None and not tests_in_image and task.swebench is None:
        return Grade("error", False, detail=f"task {task.id} has no tests/ folder to grade with")
    try:  # the task's setup is done in (or, cached, copied into) the fresh sandbox
        sandbox = create_sandbox(config.sandbox.kind, task.sandbox_spec(for_agent=False, config=config.sandbox))
    except SetupError as e:  # the task's environment, not the patch, is at fault
        detail = f"task setup command {e.command!r} {e.why}"
        return Grade("error", False, detail=detail, output_tail=e.output[-_TAIL_CHARS:])
    try:
        if task.runs_eval_script:  # the current SWE-bench datasets: as the official harness runs them
            from lancer.grader.swebench_eval import grade_by_eval_script

            return grade_by_eval_script(task, sandbox, patch, config, logs_dir)
        try:
            apply_patch(sandbox, patch)
        except PatchError as e:
            return Grade("failed", False, detail=f"the patch does not apply: {e}")
        # Only now, after the patch, do the hidden tests enter the working tree.
        if task.tests_dir is not None:
            sandbox.copy_in(task.tests_dir, task.tests_at or f"{sandbox.workdir}/tests")
        if task.app is not None and task.tests_dir is not None:
            return _grade_web(task, sandbox, config)
        if task.swebench is not None:  # an older SWE-bench row: pytest on its test files, as SWE-bench runs it
            try:
                apply_test_patch(sandbox, task)
            except PatchError as e:
                return Grade("error", False, detail=f"the test patch of {task.id} does not apply: {e}")
            from lancer.grader.swebench_eval import grade_by_test_files

            return grade_by_test_files(task, sandbox, config, logs_dir)
        command = task.test_command or task.default_test_command()
        if task.reward_dir is not None:
            verdict, output = _grade_by_reward(task, sandbox, command, task.reward_dir, config)
            if logs_dir is not None:
                keep_harbor_logs(sandbox, task.reward_dir, output, logs_dir)
            return verdict
        pytest_reports.install_in_sandbox(sandbox)
        named = posixpath.join(sandbox.workdir, task.test_report or _REPORT_NAME)
        reports = f"{sandbox.workdir}/{_PYTEST_REPORTS}"
        env = {REPORT_ENV: named, pytest_reports.REPORTS_ENV: reports}
        last = Grade("error", False)
        for attempt in range(1, config.grader.attempts + 1):
            # Reports of an earlier attempt must not count; a runner may not make the report's folder.
            # One exec: in docker each costs a round trip to the engine.
            clear = 'rm -rf "$1" "$2"; mkdir -p "${1%/*}"; exec bash -c "$3"'
            argv = ["sh", "-c", clear, "clear", named, reports, command]
            result = sandbox.exec(argv, timeout=config.grader.timeout_s, env=env)
            run = _TestRun(None if result.timed_out else result.exit_code, result.text[-_TAIL_CHARS:])
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                run.named_report = sandbox.read_file(named)
            run.pytest_reports = pytest_reports.read_from_sandbox(sandbox, reports)
            run.stdout = result.stdout.decode("utf-8", errors="replace")
            last = _verdict(run, attempt, task, config)
            if last.resolved:
                return last
        return last
    finally:
        close_even_if_interrupted(sandbox)


def _grade_by_reward(
    task: Task, sandbox: Sandbox, command: str, reward_dir: str, config: RunConfig
) -> tuple[Grade, str]:
    """Run the test command; the verdict is the reward it wrote (the best of the attempts),
    with the last attempt's whole output."""
    best, output = Grade("error", False), ""
    for attempt in range(1, config.grader.attempts + 1):
        # A reward left by an earlier attempt must not count; Harbor's other log folders are there too.
        reset = 'rm -rf -- "$1" && mkdir -p -- "$1" "$(dirname "$1")/agent" "$(dirname "$1")/artifacts"'
        sandbox.exec(["sh", "-c", reset, "reset", reward_dir])
        result = sandbox.exec(["bash", "-c", command], timeout=config.grader.timeout_s)
        output = result.text
        tail = output[-_TAIL_CHARS:]
        if result.timed_out:
            why = f"task {task.id}: the test command ({command}) timed out after {config.grader.timeout_s:g} s"
            verdict = Grade("error", False, attempt, why, tail)
        else:
            verdict = _reward_verdict(task, sandbox, command, reward_dir, attempt, tail)
        if verdict.resolved:
            return verdict, output
        if best.reward is None or (verdict.reward is not None and verdict.reward >= best.reward):
            best = verdict
    return best, output


def _reward_verdict(task: Task, sandbox: Sandbox, command: str, reward_dir: str, attempt: int, tail: str) -> Grade:
    for name in (REWARD_TXT, REWARD_JSON):
        try:
            data = sandbox.read_file(f"{reward_dir}/{name}")
        except (FileNotFoundError, IsADirectoryError):
            continue
        try:
            reward = parse_reward(name, data)
        except RewardError as e:
            return Grade("error", False, attempt, f"task {task.id}: {reward_dir}/{e}", tail)
        status: Status = "passed" if reward.resolved else "failed"
        verdict = Grade(status, reward.resolved, attempt, reward.describe(), tail, [], "reward file")
        verdict.reward, verdict.reward_metrics, verdict.reward_source = reward.value, reward.metrics, reward.source
        verdict.tests = _ctrf_tests(sandbox, reward_dir)
        return verdict
    why = f"task {task.id}: the test command ({command}) wrote no reward ({reward_dir}/{REWARD_TXT} or {REWARD_JSON})"
    return Grade("error", False, attempt, why, tail)


def _ctrf_tests(sandbox: Sandbox, reward_dir: str) -> list[TestOutcome]:
    """The per-test outcomes of the verifier's CTRF report, if it wrote one (they inform; the reward decides)."""
    try:
        return parse_ctrf(sandbox.read_file(f"{reward_dir}/{CTRF_JSON}"))
    except (FileNotFoundError, IsADirectoryError, ReportError):
        return []


def apply_test_patch(sandbox: Sandbox, task: Task) -> None:
    """As SWE-bench does: the files the test patch touches back as they were (whatever the
    agent did to them), then the test patch; PatchError if it does not apply."""
    patch = task.test_patch or b""
    names = [
        line.split(" b/", 1)[-1]
        for line in patch.decode(errors="replace").splitlines()
        if line.startswith("diff --git ")
    ]
    script = 'for f in "$@"; do git checkout -q HEAD -- "$f" 2>/dev/null || rm -f -- "$f"; done'
    sandbox.exec(["bash", "-c", script, "restore", *names])
    apply_patch(sandbox, patch)


def _grade_web(task: Task, sandbox: Sandbox, config: RunConfig) -> Grade:
    """A task with an app: the app runs in the sandbox (restarted for every attempt), its
    hidden browser tests on the host against APP_URL (lancer.browser.webtests: Playwright and
    Chromium are on the host, not in the task's image). Nothing either started survives."""
    from lancer.browser.webtests import run_browser_tests
    from lancer.sandbox.app import App, AppError  # imported here: only web tasks need Playwright

    assert task.app is not None and task.tests_dir is not None
    app = App(sandbox, task.app)
    last = Grade("error", False)
    try:
        for attempt in range(1, config.grader.attempts + 1):
            try:
                url = app.restart()
            except AppError as e:  # the patched code no longer serves: a failed fix
                last = Grade("failed", False, attempt, "the app did not start", str(e)[-_TAIL_CHARS:])
                continue
            scratch = owned_temp_dir("lancer-report-")  # owned: a killed lancer's is pruned
            try:
                where = scratch / "run"  # the tests' working folder: a relative test_report is in it
                named, reports = where / (task.test_report or _REPORT_NAME), scratch / "reports"
                named.parent.mkdir(parents=True, exist_ok=True)
                env = {REPORT_ENV: str(named), pytest_reports.REPORTS_ENV: str(reports)}
                env.update(pytest_reports.install_on_host(scratch / "plugin"))
                result = run_browser_tests(
                    task.tests_dir,
                    url,
                    test_command=task.test_command,
                    timeout=config.grader.timeout_s,
                    env=env,
                    workdir=where,
                )
                run = _TestRun(result.exit_code, result.output[-_TAIL_CHARS:], stdout=result.output)
                run.named_report = named.read_bytes() if named.is_file() else None
                run.pytest_reports = pytest_reports.read_from_host(reports)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            last = _verdict(run, attempt, task, config)
            if last.resolved:
                return last
        return last
    finally:
        app.stop()


def _verdict(run: _TestRun, attempt: int, task: Task, config: RunConfig) -> Grade:
    """One test run's verdict, from the best evidence it left: the report the task names,
    else the reports of its pytest runs, else ``go test -json`` output, else its exit code.
    The default command and a named report must leave a report: their absence is a fault."""
    tail = run.tail
    if run.exit_code is None:
        return Grade("error", False, attempt, f"the tests timed out after {config.grader.timeout_s:g} s", tail)
    basis: Basis = "junit"
    try:
        if run.named_report is not None:
            tests = parse_junit(run.named_report)
        elif task.test_report is not None:
            why = f"the test command exited {run.exit_code} without writing its report {task.test_report} (test_report)"
            return Grade("error", False, attempt, why, tail, basis="junit")
        elif run.pytest_reports:
            tests = parse_junit_reports(run.pytest_reports)
        elif task.test_command is None:
            why = f"the test runner exited {run.exit_code} without writing a test report"
            return Grade("error", False, attempt, why + _missing_runner(tail), tail, basis="junit")
        elif go_tests := parse_go_test_json(run.stdout):
            tests, basis = go_tests, "go test -json"
        else:
            return _exit_code_verdict(run, attempt)
    except ReportError as e:
        return Grade("error", False, attempt, str(e), tail, basis=basis)
    decision = decide(tests)
    status, detail = decision.status, decision.detail
    if status == "error" and run.exit_code not in _EXITS_THE_REPORT_EXPLAINS:
        detail += f" (the test runner exited {run.exit_code})"  # e.g. 3: a fixture's harness fault
    elif status == "passed" and run.exit_code != 0:  # a part of the command the reports do not show failed
        status = "failed" if run.exit_code == 1 else "error"
        detail += f", but the test command exited {run.exit_code}"
    return Grade(status, status == "passed", attempt, detail, tail, tests, basis)


def _exit_code_verdict(run: _TestRun, attempt: int) -> Grade:
    """A command that left no per-test evidence: 0 passed, 1 failed, anything else an error."""
    if run.exit_code == 0:
        return Grade("passed", True, attempt, "the hidden tests passed", run.tail, basis="exit code")
    if run.exit_code == 1 and not _missing_runner(run.tail):
        return Grade("failed", False, attempt, "the hidden tests failed", run.tail, basis="exit code")
    detail = f"the test command exited {run.exit_code}" + _missing_runner(run.tail)
    return Grade("error", False, attempt, detail, run.tail, basis="exit code")


def _missing_runner(output: str) -> str:
    return " (pytest is not installed where the tests run)" if "No module named pytest" in output else ""
