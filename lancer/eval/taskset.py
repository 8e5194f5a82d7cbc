"""The task set of an eval: task folders, folders of task folders, and SWE-Lancer CSV rows.

Everything is loaded and checked before any attempt starts, so a missing or invalid task
is one error naming it, not a failure halfway through a long eval.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lancer.core.errors import TaskError
from lancer.core.tasks import Task, task_folders
from lancer.formats import load_task_folder

# Task ids name folders (DIR/runs/<task_id>/): no separators, no leading dot.
SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+=-]*$")


@dataclass
class EvalTask:
    task: Task
    set: str | None = None  # SWE-Lancer's task set (e.g. "diamond"), when the CSV has one

    def describe(self) -> dict[str, Any]:
        """The task's entry in eval.json."""
        task = self.task
        where = {"dataset": str(task.source)} if task.folder is None else {"folder": str(task.folder)}
        labels = {"difficulty": task.difficulty, "category": task.category, "tags": task.tags or None}
        described = {"id": task.id, "variant": task.variant, "price": task.price, "set": self.set, **where}
        return described | {k: v for k, v in labels.items() if v is not None}


def load_task_set(
    paths: Sequence[str],
    dataset: Path | None = None,
    variant: str | None = None,
    set_name: str | None = None,
    ids: Sequence[str] | None = None,
) -> list[EvalTask]:
    """Every task named by ``paths`` and the matching ``dataset`` rows; raises TaskError."""
    if not paths and dataset is None:
        raise TaskError("no tasks: give task folders (or folders of them), or --dataset CSV")
    if dataset is None and (variant or set_name or ids):
        raise TaskError("--variant, --set and --ids filter a --dataset: give --dataset CSV too")
    tasks = [EvalTask(task, task.set) for path in paths for task in _tasks_under(Path(path))]
    if dataset is not None:
        from lancer.formats.swelancer import select_tasks

        tasks += [EvalTask(task, task.set) for task in select_tasks(dataset, variant, set_name, ids)]
    seen: dict[str, EvalTask] = {}
    for item in tasks:
        task_id = item.task.id
        if not SAFE_ID.match(task_id):
            raise TaskError(f"task id {task_id!r} cannot name a folder: use letters, digits and . _ - only")
        if task_id in seen:
            raise TaskError(f"two tasks have the id {task_id!r} ({_where(seen[task_id])} and {_where(item)})")
        seen[task_id] = item
    if not tasks:
        raise TaskError(f"no task in {dataset} matches the filters" if dataset else "no tasks found")
    return tasks


def _tasks_under(path: Path) -> list[Task]:
    folders = task_folders(path)
    if not folders:
        raise TaskError(
            f"{path} is neither a task folder (no task.yaml, nor Harbor's task.toml) nor a folder of task folders"
        )
    return [load_task_folder(folder) for folder in folders]


def _where(item: EvalTask) -> str:
    return str(item.task.folder or item.task.source)
