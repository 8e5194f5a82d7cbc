"""Grading per DESIGN.md: test exit 0 passed, 1 failed, anything else an error (a harness
fault told apart from a wrong fix); up to N runs, any pass counts. A manager task is
resolved when the chosen proposal is the correct one.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Literal

from agent.config import RunConfig
from agent.tasks import Task
from sandbox import Sandbox, create_sandbox, run_setup
from sandbox.base import close_even_if_interrupted
from sandbox.git import PatchError, apply_patch

Status = Literal["passed", "failed", "error"]
_TAIL_CHARS = 4000


@dataclass
class Grade:
    status: Status
    resolved: bool
    attempts: int = 0
    detail: str = ""
    output_tail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "attempts": self.attempts,
            "detail": self.detail,
            "output_tail": self.output_tail,
        }


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
    sandbox = create_sandbox(config.sandbox.kind, task.sandbox_spec(for_agent=False, config=config.sandbox))
    try:
        run_setup(sandbox, task.setup)
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
        last = Grade("error", False)
        for attempt in range(1, config.grader.attempts + 1):
            result = sandbox.exec(["bash", "-c", command], timeout=config.grader.timeout_s)
            exit_code = None if result.timed_out else result.exit_code
            last = _verdict(exit_code, attempt, result.text[-_TAIL_CHARS:], config)
            if last.resolved:
                return last
        return last
    finally:
        close_even_if_interrupted(sandbox)


def _grade_web(task: Task, sandbox: Sandbox, config: RunConfig) -> Grade:
    """A task with an app: the app runs in the sandbox (restarted for every attempt), its
    hidden browser tests on the host against APP_URL (tools.webtests: Playwright and
    Chromium are on the host, not in the task's image). Nothing either started survives."""
    from sandbox.app import App, AppError  # imported here: only web tasks need Playwright
    from tools.webtests import run_browser_tests

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
            result = run_browser_tests(
                task.tests_dir, url, test_command=task.test_command, timeout=config.grader.timeout_s
            )
            last = _verdict(result.exit_code, attempt, result.output[-_TAIL_CHARS:], config)
            if last.resolved:
                return last
        return last
    finally:
        app.stop()


def _verdict(exit_code: int | None, attempt: int, tail: str, config: RunConfig) -> Grade:
    """One test run's outcome per DESIGN.md; ``exit_code`` None: it timed out."""
    if exit_code is None:
        return Grade("error", False, attempt, f"the tests timed out after {config.grader.timeout_s:g} s", tail)
    if exit_code == 0:
        return Grade("passed", True, attempt, "the hidden tests passed", tail)
    if exit_code == 1:
        return Grade("failed", False, attempt, "the hidden tests failed", tail)
    return Grade("error", False, attempt, f"the test command exited {exit_code}", tail)


def default_test_command(task: Task) -> str:
    """pytest on the hidden test files alone (not on tests the repo itself carries)."""
    assert task.tests_dir is not None
    files = sorted(p.relative_to(task.tests_dir).as_posix() for p in task.tests_dir.rglob("test_*.py"))
    targets = " ".join(shlex.quote(f"tests/{f}") for f in files) or "tests"
    return f"python3 -m pytest -q -p no:cacheprovider {targets}"
