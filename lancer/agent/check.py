"""`lancer check`: is a task valid? Validated as SWE-bench validates its instances and
Harbor runs its oracle: the hidden tests must fail (``failed``, not ``error``) on the
untouched repo and pass with the task's reference solution: ``solution.patch`` applied
as is, or ``solution.yaml`` played by the scripted model through a real run.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lancer.core.config import RunConfig
from lancer.core.errors import TaskError
from lancer.core.tasks import Task, task_folders
from lancer.formats import load_task_folder

SOLUTION_PATCH = "solution.patch"
SOLUTION_TURNS = "solution.yaml"
EXIT_CODE_WARNING = (
    "warning: this verdict rests on the test command's exit code alone (no per-test outcomes): "
    "run the tests with pytest, print go test -json, or name a JUnit XML report with test_report:"
)
SOLVE_SCRIPT = "solution/solve.sh"  # a Harbor task's
# The lines of a grading error's output that `lancer check` shows (a failed setup's, pip's reason last).
_ERROR_TAIL_LINES = 12


@dataclass
class Check:
    """A task's validation: each grading it took (label, grade dict), if invalid why, and
    warnings that do not make it invalid."""

    task_id: str
    gradings: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    problem: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.problem is None


def all_task_folders(paths: list[Path]) -> list[Path]:
    """Each path is a task folder, or a folder of task folders (lancer.core.tasks.task_folders)."""
    folders: list[Path] = []
    for path in paths:
        inside = task_folders(path)
        if not inside:
            raise TaskError(f"{path} holds no task.yaml (nor Harbor's task.toml), nor task folders that do")
        folders.extend(inside)
    return folders


def check_task(task: Task, config: RunConfig) -> Check:
    check = Check(task.id)
    if task.variant == "swe_manager":
        assert task.correct_proposal is not None
        wrong = next(p.id for p in task.proposals if p.id != task.correct_proposal) if len(task.proposals) > 1 else None
        verdict = _grade(task, config, b"", {"proposal_id": task.correct_proposal})
        check.gradings.append((f"correct proposal {task.correct_proposal}", verdict))
        if verdict["status"] != "passed":
            check.problem = f"choosing correct_proposal does not pass: {verdict['detail']}"
        elif wrong is not None:
            verdict = _grade(task, config, b"", {"proposal_id": wrong})
            check.gradings.append((f"another proposal ({wrong})", verdict))
            if verdict["status"] != "failed":
                check.problem = f"choosing proposal {wrong}, not the correct one, does not fail"
        return check

    original = _grade(task, config, b"")
    check.gradings.append(("original code", original))
    if original.get("basis") == "exit code":
        check.warnings.append(EXIT_CODE_WARNING)
    if original["status"] == "passed":
        check.problem = "the hidden tests already pass on the original code"
        return check
    if original["status"] == "error":
        check.problem = f"the hidden tests cannot run on the original code (a harness error): {original['detail']}"
        return check

    label, solved = _play_solution(task, config)
    if solved is None:
        add = SOLVE_SCRIPT if task.reward_dir else f"{SOLUTION_PATCH} or {SOLUTION_TURNS}"  # Harbor's, or lancer's
        check.problem = f"no reference solution: add {add} to the task folder"
        return check
    check.gradings.append((label, solved))
    if solved["status"] != "passed":
        check.problem = f"the reference solution does not pass: {solved['detail']}"
    return check


def _grade(task: Task, config: RunConfig, patch: bytes, answer: dict[str, Any] | None = None) -> dict[str, Any]:
    from lancer.grader import grade

    return grade(task, patch, config, answer).to_dict()


def _play_solution(task: Task, config: RunConfig) -> tuple[str, dict[str, Any] | None]:
    """The grade of the task's reference solution; None when it has none."""
    assert task.folder is not None
    patch, turns, script = task.folder / SOLUTION_PATCH, task.folder / SOLUTION_TURNS, task.folder / SOLVE_SCRIPT
    if patch.is_file():
        return f"reference solution ({SOLUTION_PATCH})", _grade(task, config, patch.read_bytes())
    played = next((path for path in (turns, script) if path.is_file()), None)
    if played is None:
        return "", None
    from lancer.agent.runner import run_task
    from lancer.models import create_model

    label = f"reference solution ({played.relative_to(task.folder)})"
    with tempfile.TemporaryDirectory(prefix="lancer-check-") as out:
        result = run_task(task, create_model("oracle", config.model, task), config, Path(out))
    if result["grade"] is None:  # the run ended before grading
        return label, {"status": "error", "detail": f"the run ended with {result['exit_status']}: {result['detail']}"}
    return label, dict(result["grade"])


def check_folder(folder: Path, config: RunConfig) -> Check:
    try:
        task = load_task_folder(folder)
    except TaskError as e:  # one bad task is an invalid task, not the end of the check
        return Check(folder.name, problem=str(e))
    return check_task(task, config)


def render_check(check: Check, every_test: bool = False) -> str:
    """The verdict and each grading; per test, those that did not pass in some grading
    (so the tests the solution fixes show twice), the rest counted unless ``every_test``."""
    lines = [f"{check.task_id}: {'valid' if check.valid else 'INVALID: ' + (check.problem or '')}"]
    lines.extend(f"  {warning}" for warning in check.warnings)
    notable = {t["name"] for _, verdict in check.gradings for t in verdict.get("tests", []) if t["outcome"] != "passed"}
    for label, verdict in check.gradings:
        lines.append(f"  {label}: {verdict['status']} ({verdict['detail']})")
        tests = verdict.get("tests", [])
        if verdict["status"] == "error" and not tests and verdict.get("output_tail"):
            # Why it could not run (a failed setup: pip says why last), not only that it exited 1.
            tail = verdict["output_tail"].rstrip().splitlines()[-_ERROR_TAIL_LINES:]
            lines.extend(f"    | {line}" for line in tail)
        shown = [t for t in tests if every_test or t["name"] in notable]
        lines.extend(f"    {t['outcome']:<8} {t['name']}" for t in shown)
        if not shown and tests:
            lines.append(f"    all {len(tests)} passed")
        elif len(shown) < len(tests):
            lines.append(f"    ... and {len(tests) - len(shown)} more passed")
    return "\n".join(lines)
