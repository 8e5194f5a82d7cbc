"""SWE-bench instances' test runs (docs/swebench.md); swebench's rules judge each log
(lancer.grader.swebench_verdict).

A row of the current datasets is graded as the official harness grades it
(swebench.harness.run_evaluation): in the instance's image, its tree with the image's own
history, the patch applied by the harness's chain of commands (``git apply``, its
``--3way`` and ``--reject``, then ``patch --fuzz``) and the instance's ``eval_script`` run
as ``/eval.sh``. An older row (no eval_script) runs pytest with ``-rA`` on the test files
its test patch touches, as SWE-bench's test directives do, after the grader applied the
patch and the test patch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lancer.core.config import RunConfig
from lancer.core.tasks import Task
from lancer.grader.swebench_verdict import test_spec, verdict
from lancer.sandbox import Sandbox

if TYPE_CHECKING:
    from lancer.grader.grade import Grade

_PATCH_FILE = "/tmp/patch.diff"  # swebench.harness.constants.CONTAINER_PATCH_FILE
_EVAL_FILE = "/eval.sh"
# An older row's run may be a user's (lancer's environment image), who cannot write to /.
_TEST_FILES_SCRIPT = "/tmp/lancer-eval.sh"
_TAIL_CHARS = 4000
TEST_OUTPUT = "test_output.txt"  # the harness's name for it (swebench.harness.constants.LOG_TEST_OUTPUT)


def grade_by_eval_script(
    task: Task, sandbox: Sandbox, patch: bytes, config: RunConfig, logs_dir: Path | None = None
) -> Grade:
    from lancer.grader.grade import Grade

    assert task.swebench is not None and task.swebench.eval_script is not None and task.folder is not None
    spec = test_spec(task, (task.folder / task.swebench.eval_script).read_text())
    if patch.strip() and not _apply(sandbox, patch):
        return Grade("failed", False, detail="the patch does not apply (git apply, --3way, --reject, patch --fuzz)")
    return _run(spec, sandbox, config, logs_dir, _EVAL_FILE)


def grade_by_test_files(task: Task, sandbox: Sandbox, config: RunConfig, logs_dir: Path | None = None) -> Grade:
    """An older row, its patch and test patch applied: pytest on the test patch's files."""
    return _run(test_spec(task), sandbox, config, logs_dir, _TEST_FILES_SCRIPT)


def _run(spec: Any, sandbox: Sandbox, config: RunConfig, logs_dir: Path | None, script: str) -> Grade:
    """``spec``'s script run as ``script`` (up to grader.attempts times, until resolved).
    The last run's whole log, what swebench read, is kept as ``logs_dir/test_output.txt``."""
    from lancer.grader.grade import Grade

    sandbox.write_file(script, spec.eval_script.encode())
    last = Grade("error", False)
    for attempt in range(1, config.grader.attempts + 1):
        # Interleaved as the harness reads a docker exec's output: the markers are set -x
        # traces on stderr, the test runner's report on either stream.
        result = sandbox.exec(["bash", "-c", f"exec /bin/bash {script} 2>&1"], timeout=config.grader.timeout_s)
        log = result.text
        if result.timed_out:
            why = f"the tests timed out after {config.grader.timeout_s:g} s"
            last = Grade("error", False, attempt, why, log[-_TAIL_CHARS:])
        else:
            last = verdict(spec, log, attempt)
        if logs_dir is not None:
            logs_dir.mkdir(parents=True, exist_ok=True)
            (logs_dir / TEST_OUTPUT).write_text(log)
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
