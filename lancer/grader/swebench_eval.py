"""A SWE-bench instance of the current datasets graded as the official harness grades it
(swebench.harness.run_evaluation, docs/swebench.md): in the instance's image, its tree
with the image's own history, the patch applied by the harness's chain of commands
(``git apply``, its ``--3way`` and ``--reject``, then ``patch --fuzz``), the instance's
``eval_script`` run as ``/eval.sh``, and its output between the Start/End Test Output
markers read by its ``log_parser`` under swebench's rules (swebench.harness.grading).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lancer.core.config import RunConfig
from lancer.core.tasks import Task
from lancer.grader.report import Outcome, TestOutcome
from lancer.sandbox import Sandbox

if TYPE_CHECKING:
    from lancer.grader.grade import Grade

_PATCH_FILE = "/tmp/patch.diff"  # swebench.harness.constants.CONTAINER_PATCH_FILE
_EVAL_FILE = "/eval.sh"
_TAIL_CHARS = 4000
_SHOWN = 5
# swebench's TestStatus values as lancer's outcomes.
_OUTCOMES: dict[str, Outcome] = {
    "PASSED": "passed",
    "XFAIL": "passed",
    "FAILED": "failed",
    "ERROR": "error",
    "SKIPPED": "skipped",
}


def instance_row(task: Task) -> dict[str, Any]:
    """The instance as swebench's harness reads it (what make_test_spec needs)."""
    spec = task.swebench
    assert spec is not None and spec.eval_script is not None and task.folder is not None
    return {
        "instance_id": spec.instance_id,
        "image": task.image,
        "repo": spec.repo,
        "version": spec.version or "",
        "FAIL_TO_PASS": spec.fail_to_pass,
        "PASS_TO_PASS": spec.pass_to_pass,
        "eval_script": (task.folder / spec.eval_script).read_text(),
        "log_parser": spec.log_parser,
        "eval_type": spec.eval_type,
    }


def grade_by_eval_script(task: Task, sandbox: Sandbox, patch: bytes, config: RunConfig) -> Grade:
    from swebench.harness.utils import make_test_spec

    from lancer.grader.grade import Grade

    test_spec = make_test_spec(instance_row(task))
    if patch.strip() and not _apply(sandbox, patch):
        return Grade("failed", False, detail="the patch does not apply (git apply, --3way, --reject, patch --fuzz)")
    sandbox.write_file(_EVAL_FILE, test_spec.eval_script.encode())
    last = Grade("error", False)
    for attempt in range(1, config.grader.attempts + 1):
        # Interleaved as the harness reads a docker exec's output: the markers are set -x
        # traces on stderr, the test runner's report on either stream.
        result = sandbox.exec(["bash", "-c", f"exec /bin/bash {_EVAL_FILE} 2>&1"], timeout=config.grader.timeout_s)
        log = result.text
        if result.timed_out:
            why = f"the eval_script timed out after {config.grader.timeout_s:g} s"
            last = Grade("error", False, attempt, why, log[-_TAIL_CHARS:])
        else:
            last = verdict(test_spec, log, attempt)
        if last.resolved:
            break
    return last


def _apply(sandbox: Sandbox, patch: bytes) -> bool:
    """The patch applied as the harness applies it: each command in turn on a clean tree."""
    from swebench.harness.run_evaluation import GIT_APPLY_CMDS

    sandbox.write_file(_PATCH_FILE, patch)
    for attempt, command in enumerate(GIT_APPLY_CMDS):
        if attempt:  # what a failed command left (--reject's partial state) goes first
            sandbox.exec(["bash", "-c", "git checkout -- . ; git clean -fd"], timeout=300)
        if sandbox.exec(["bash", "-c", f"{command} {_PATCH_FILE}"], timeout=300).exit_code == 0:
            return True
    # The chain can leave it applied while every command exited non-zero (as the harness checks).
    return sandbox.exec(["bash", "-c", f"git apply --check --reverse {_PATCH_FILE}"], timeout=300).exit_code == 0


def verdict(test_spec: Any, log: str, attempt: int = 1) -> Grade:
    """swebench's verdict on the log of one eval_script run, and each listed test's status."""
    from swebench.harness.constants import EvalType, ResolvedStatus
    from swebench.harness.grading import (
        get_eval_tests_report,
        get_logs_eval,
        get_resolution_status,
    )

    from lancer.grader.grade import Grade

    tail = log[-_TAIL_CHARS:]
    with tempfile.TemporaryDirectory(prefix="lancer-swebench-log-") as folder:
        path = Path(folder) / "test_output.txt"
        path.write_text(log)
        status_map, found = get_logs_eval(test_spec, str(path))
    if not found:
        why = "the eval_script's output has no test results swebench can read (its markers, or a run that errored)"
        return Grade("error", False, attempt, why, tail, basis="swebench log")
    listed = {"FAIL_TO_PASS": test_spec.FAIL_TO_PASS, "PASS_TO_PASS": test_spec.PASS_TO_PASS}
    report = get_eval_tests_report(status_map, listed, eval_type=EvalType(test_spec.eval_type))
    resolved = get_resolution_status(report) == ResolvedStatus.FULL.value
    tests = [_outcome(test_id, status_map) for test_id in [*test_spec.FAIL_TO_PASS, *test_spec.PASS_TO_PASS]]
    if resolved:
        counts = f"{len(test_spec.FAIL_TO_PASS)} FAIL_TO_PASS and {len(test_spec.PASS_TO_PASS)} PASS_TO_PASS"
        detail = f"the listed tests passed: {counts}"
        return Grade("passed", True, attempt, detail, tail, tests, "swebench log")
    parts = []
    for kind, verb in (("FAIL_TO_PASS", "did not pass"), ("PASS_TO_PASS", "broke")):
        bad = report[kind]["failure"]
        if bad:
            shown = ", ".join(bad[:_SHOWN]) + (f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else "")
            parts.append(f"{len(bad)} of {len(listed[kind])} {kind} tests {verb}: {shown}")
    return Grade("failed", False, attempt, "; ".join(parts), tail, tests, "swebench log")


def _outcome(test_id: str, status_map: dict[str, str]) -> TestOutcome:
    from swebench.harness.grading import _resolve_case

    key = _resolve_case(test_id, status_map)
    if key is None:  # swebench counts a test missing from the log as failed
        return TestOutcome(test_id, "failed", "not in the test log")
    return TestOutcome(test_id, _OUTCOMES.get(status_map[key], "failed"), status_map[key])
