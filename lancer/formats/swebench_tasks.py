"""A SWE-bench task repo (swebench 5's ``tasks/<instance_id>/`` folders: task.yaml,
tests.json, gold.patch, test.patch, eval.sh, Dockerfile) as instance rows, read by the
official reader (swebench.task.repo.load_task). Each instance's image is built from its
Dockerfile, its folder the build context (docs/swebench.md#task-repos)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lancer.core.errors import TaskError

TASKS = "tasks"
# Each task folder's files (swebench.task.checks.REQUIRED_FILES, less problem_statement.md).
_FILES = ("task.yaml", "tests.json", "eval.sh", "Dockerfile")


def is_task_repo(path: Path) -> bool:
    return path.is_dir() and (path / TASKS).is_dir()


def read_task_repo(path: Path) -> list[tuple[dict[str, Any], Path]]:
    """Each task's row (the instance as the harness reads it) and its folder."""
    try:
        from swebench.task.repo import load_task, task_dirs
    except ImportError:
        raise TaskError(f"reading the task repo {path} needs swebench: pip install 'lancer-bench[swebench]'") from None
    rows = []
    for folder in task_dirs(path):
        missing = [name for name in _FILES if not (folder / name).is_file()]
        if missing:
            raise TaskError(f"{folder} is not a swebench task folder: it has no {', '.join(missing)}")
        try:
            row = load_task(folder)
        except (OSError, ValueError) as e:  # a missing prose file, a tests.json that is not JSON
            raise TaskError(f"{folder}: {e}") from None
        rows.append((row, folder))
    return rows
