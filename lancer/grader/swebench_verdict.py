"""The verdict on a SWE-bench instance's test log, decided by the official `swebench`
package (the `[swebench]` extra), for every kind of instance (docs/swebench.md).

lancer does not reimplement SWE-bench's grading. One log, one ``TestSpec``:
``swebench.harness.grading.get_logs_eval`` reads the log between the Start/End Test Output
markers with the instance's log parser (and refuses a log that shows no run), and
``get_eval_tests_report`` / ``get_resolution_status`` decide (ids cut at a space matched
by prefix, a skipped PASS_TO_PASS test maintained, ``eval_type`` fail_only). The
``TestSpec`` is swebench's own ``make_test_spec`` for a row with an ``eval_script``, and
for an older row one with the parser swebench maps the repository to (``parse_log_pytest``
for a repository it does not know) around the test files its test patch touches.
"""

from __future__ import annotations

import re
import shlex
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lancer.core.tasks import Task
from lancer.formats.swebench_package import instance_parser, require_swebench
from lancer.grader.report import Outcome, TestOutcome

if TYPE_CHECKING:
    from lancer.grader.grade import Grade

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
# SWE-bench's pytest command for a repository it has no spec for (its TEST_PYTEST).
TEST_PYTEST = "pytest --no-header -rA --tb=no -p no:cacheprovider"
_DIFF_HEADER = re.compile(r"^diff --git a/.* b/(.*)$", re.M)


def test_spec(task: Task, eval_script: str | None = None) -> Any:
    """The instance as swebench's grader reads it: with ``eval_script`` (its text), what
    ``make_test_spec`` makes of the row; else the test-file run of an older row."""
    require_swebench()
    from swebench.harness.utils import make_test_spec
    from swebench.types import TestSpec

    spec = task.swebench
    assert spec is not None
    row = {
        "instance_id": spec.instance_id,
        "image": task.image or "",
        "repo": spec.repo,
        "version": spec.version or "",
        "FAIL_TO_PASS": spec.fail_to_pass,
        "PASS_TO_PASS": spec.pass_to_pass,
    }
    if eval_script is not None:
        return make_test_spec({**row, "eval_script": eval_script, "log_parser": spec.log_parser,
                               "eval_type": spec.eval_type})  # fmt: skip
    parser, eval_type = instance_parser(spec.repo)
    return TestSpec(**row, eval_script_list=test_file_script(task.test_patch or b""), log_parser=parser,
                    eval_type=eval_type)  # fmt: skip


def test_files(test_patch: bytes) -> list[str]:
    """What SWE-bench's test directives are for a pytest repository: the files the test
    patch touches, but for data files (its NON_TEST_EXTS) and the ones it deletes."""
    from swebench.harness.constants import NON_TEST_EXTS

    text = test_patch.decode(errors="replace")
    deleted = set(re.findall(r"^--- a/(.*)\n\+\+\+ /dev/null$", text, re.M))
    names = [n for n in _DIFF_HEADER.findall(text) if n not in deleted]
    return [n for n in dict.fromkeys(names) if not any(n.endswith(ext) for ext in NON_TEST_EXTS)]


def test_file_script(test_patch: bytes) -> list[str]:
    """An older row's test run, in the shape of an eval_script's: pytest on its test files
    between the markers, its exit code recorded after them (as make_test_spec does)."""
    from swebench.harness.constants import END_TEST_OUTPUT, START_TEST_OUTPUT, TEST_EXIT_CODE, TEST_EXIT_CODE_VAR

    files = " ".join(shlex.quote(f) for f in test_files(test_patch))
    return [
        f"echo {shlex.quote(START_TEST_OUTPUT)}",
        f"{TEST_PYTEST} {files}",
        f"{TEST_EXIT_CODE_VAR}=$?",
        f"echo {shlex.quote(END_TEST_OUTPUT)}",
        f'echo "{TEST_EXIT_CODE}: ${TEST_EXIT_CODE_VAR}"',
    ]


def verdict(spec: Any, log: str, attempt: int = 1) -> Grade:
    """swebench's verdict on the log of one test run, and each listed test's status."""
    from swebench.harness.constants import EvalType, ResolvedStatus
    from swebench.harness.grading import get_eval_tests_report, get_logs_eval, get_resolution_status

    from lancer.grader.grade import Grade

    version = require_swebench()
    tail = log[-_TAIL_CHARS:]
    with tempfile.TemporaryDirectory(prefix="lancer-swebench-log-") as folder:
        path = Path(folder) / "test_output.txt"
        path.write_text(log)
        status_map, found = get_logs_eval(spec, str(path))
    if not found:
        why = "the test output has no results swebench can read (its markers, or a run that errored)"
        return Grade("error", False, attempt, why, tail, basis="swebench log", swebench_version=version)
    listed = {"FAIL_TO_PASS": spec.FAIL_TO_PASS, "PASS_TO_PASS": spec.PASS_TO_PASS}
    report = get_eval_tests_report(status_map, listed, eval_type=EvalType(spec.eval_type))
    resolved = get_resolution_status(report) == ResolvedStatus.FULL.value
    tests = [_outcome(test_id, kind, status_map, report[kind]) for kind, ids in listed.items() for test_id in ids]
    if resolved:
        counts = f"{len(spec.FAIL_TO_PASS)} FAIL_TO_PASS and {len(spec.PASS_TO_PASS)} PASS_TO_PASS"
        detail = f"the listed tests passed: {counts}"
        return Grade("passed", True, attempt, detail, tail, tests, "swebench log", swebench_version=version)
    parts = []
    for kind, verb in (("FAIL_TO_PASS", "did not pass"), ("PASS_TO_PASS", "broke")):
        bad = report[kind]["failure"]
        if bad:
            shown = ", ".join(bad[:_SHOWN]) + (f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else "")
            parts.append(f"{len(bad)} of {len(listed[kind])} {kind} tests {verb}: {shown}")
    detail = "; ".join(parts)
    return Grade("failed", False, attempt, detail, tail, tests, "swebench log", swebench_version=version)


def _outcome(test_id: str, kind: str, status_map: dict[str, str], graded: dict[str, list[str]]) -> TestOutcome:
    """The test's status in the log (found as swebench finds it: a cut id by its prefix) and
    how swebench graded it: "success" (for PASS_TO_PASS a skipped test is maintained) or "failure"."""
    from swebench.harness.grading import _resolve_case

    judged = "success" if test_id in graded["success"] else "failure" if test_id in graded["failure"] else None
    key = _resolve_case(test_id, status_map)
    if key is None:  # swebench counts a test missing from the log as failed
        return TestOutcome(test_id, "failed", "not in the test log", kind=kind, graded=judged)
    status = status_map[key]
    return TestOutcome(test_id, _OUTCOMES.get(status, "failed"), status, kind=kind, status=status, graded=judged)
