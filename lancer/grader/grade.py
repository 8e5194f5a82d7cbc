"""Grading: a fresh sandbox, the patch, the hidden tests, a verdict; up to N runs, any
pass counts (as SWE-Lancer). The verdict comes from the tests' JUnit XML report
(lancer.grader.report): the default pytest command always writes one, and a task's own
``test_command`` may write one at ``$LANCER_TEST_REPORT``; without it, a custom command's
exit code decides (0 passed, 1 failed, anything else an error). A manager task is
resolved when the chosen proposal is the correct one.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
from dataclasses import dataclass, field
from typing import Any

from lancer.core.config import RunConfig
from lancer.core.errors import SetupError
from lancer.core.sandbox import close_even_if_interrupted, owned_temp_dir
from lancer.core.tasks import Task
from lancer.grader.report import ReportError, Status, TestOutcome, decide, parse_junit
from lancer.sandbox import Sandbox, create_sandbox
from lancer.sandbox.git import PatchError, apply_patch

REPORT_ENV = "LANCER_TEST_REPORT"
_REPORT_NAME = ".lancer-test-report.xml"
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "attempts": self.attempts,
            "detail": self.detail,
            "tests": [t.to_dict() for t in self.tests],
            "output_tail": self.output_tail,
        }


@dataclass
class _TestRun:
    """What one run of the hidden tests left: its exit code (None: timed out), the tail
    of its output, and its JUnit XML report if it wrote one."""

    exit_code: int | None
    tail: str
    report: bytes | None


def grade(task: Task, patch: bytes, config: RunConfig, answer: dict[str, Any] | None = None) -> Grade:
    if task.variant == "swe_manager":
        return _grade_manager(task, answer)
    return _grade_ic(task, patch, config)


def _grade_manager(task: Task, answer: dict[str, Any] | None) -> Grade:
    chosen = (answer or {}).get("proposal_id")
    if chosen is None:
        return Grade("failed", False, detail="no proposal was chosen")
    resolved = chosen == task.correct_proposal
    return Grade("passed" if resolved else "failed", resolved, detail=f"chose proposal {chosen}")


def _grade_ic(task: Task, patch: bytes, config: RunConfig) -> Grade:
    # SWE-Lancer's images carry their tests; the agent's container had them removed (container.hide).
    tests_in_image = task.test_command is not None and task.container is not None and bool(task.container.hide)
    if task.tests_dir is None and not tests_in_image:
        return Grade("error", False, detail=f"task {task.id} has no tests/ folder to grade with")
    try:  # the task's setup is done in (or, cached, copied into) the fresh sandbox
        sandbox = create_sandbox(config.sandbox.kind, task.sandbox_spec(for_agent=False, config=config.sandbox))
    except SetupError as e:  # the task's environment, not the patch, is at fault
        detail = f"task setup command {e.command!r} {e.why}"
        return Grade("error", False, detail=detail, output_tail=e.output[-_TAIL_CHARS:])
    try:
        try:
            apply_patch(sandbox, patch)
        except PatchError as e:
            return Grade("failed", False, detail=f"the patch does not apply: {e}")
        # Only now, after the patch, do the hidden tests enter the working tree.
        if task.tests_dir is not None:
            sandbox.copy_in(task.tests_dir, f"{sandbox.workdir}/tests")
        if task.app is not None and task.tests_dir is not None:
            return _grade_web(task, sandbox, config)
        command = task.test_command or default_test_command(task)
        report = f"{sandbox.workdir}/{_REPORT_NAME}"
        last = Grade("error", False)
        for attempt in range(1, config.grader.attempts + 1):
            sandbox.exec(["rm", "-f", report])  # a report left by an earlier attempt must not count
            result = sandbox.exec(["bash", "-c", command], timeout=config.grader.timeout_s, env={REPORT_ENV: report})
            run = _TestRun(None if result.timed_out else result.exit_code, result.text[-_TAIL_CHARS:], None)
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                run.report = sandbox.read_file(report)
            last = _verdict(run, attempt, task.test_command is None, config)
            if last.resolved:
                return last
        return last
    finally:
        close_even_if_interrupted(sandbox)


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
                report = scratch / "report.xml"
                result = run_browser_tests(
                    task.tests_dir, url, test_command=task.test_command, timeout=config.grader.timeout_s, report=report
                )
                run = _TestRun(
                    result.exit_code, result.output[-_TAIL_CHARS:], report.read_bytes() if report.is_file() else None
                )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            last = _verdict(run, attempt, task.test_command is None, config)
            if last.resolved:
                return last
        return last
    finally:
        app.stop()


def _verdict(run: _TestRun, attempt: int, report_required: bool, config: RunConfig) -> Grade:
    """One test run's verdict: from its report when there is one (the default command
    always writes one, so its absence is a harness fault), else from the exit code."""
    tail = run.tail
    if run.exit_code is None:
        return Grade("error", False, attempt, f"the tests timed out after {config.grader.timeout_s:g} s", tail)
    if run.report is not None:
        try:
            tests = parse_junit(run.report)
        except ReportError as e:
            return Grade("error", False, attempt, str(e), tail)
        decision = decide(tests)
        detail = decision.detail
        if decision.status == "error" and run.exit_code not in _EXITS_THE_REPORT_EXPLAINS:
            detail += f" (the test runner exited {run.exit_code})"  # e.g. 3: a fixture's harness fault
        return Grade(decision.status, decision.status == "passed", attempt, detail, tail, tests)
    if report_required:
        why = f"the test runner exited {run.exit_code} without writing a test report"
        if "No module named pytest" in tail:
            why += " (pytest is not installed where the tests run)"
        return Grade("error", False, attempt, why, tail)
    if run.exit_code == 0:
        return Grade("passed", True, attempt, "the hidden tests passed", tail)
    if run.exit_code == 1:
        return Grade("failed", False, attempt, "the hidden tests failed", tail)
    return Grade("error", False, attempt, f"the test command exited {run.exit_code}", tail)


def default_test_command(task: Task) -> str:
    """pytest on the hidden test files alone (not on tests the repo itself carries),
    writing its JUnit XML report where the grader reads it."""
    assert task.tests_dir is not None
    files = sorted(p.relative_to(task.tests_dir).as_posix() for p in task.tests_dir.rglob("test_*.py"))
    targets = " ".join(shlex.quote(f"tests/{f}") for f in files) or "tests"
    return f'python3 -m pytest -q -p no:cacheprovider --junitxml="${REPORT_ENV}" {targets}'
