"""Where a run's task came from, and fingerprints to tell later whether it changed.

The trajectory header records ``task_source`` (a task folder, or a dataset CSV and the
task's id) so a run can be replayed without naming its task again, and ``task_hashes``
(sha256 of the task's fields, its repo/ and its hidden tests/) so a replay can warn that
the task it runs is not the one recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from lancer.core.errors import TaskError
from lancer.core.model import Model
from lancer.core.tasks import Task
from lancer.formats import load_task_folder

# Caches a tool or a developer may leave in a task folder; they change nothing the task means.
_IGNORED = {"__pycache__", ".pytest_cache"}


def task_source(task: Task) -> dict[str, str] | None:
    """``{"folder": PATH}`` or ``{"dataset": CSV, "id": ID}``; None for a task built in code."""
    if task.folder is not None:
        return {"folder": str(task.folder)}
    if task.source is not None and task.source.is_file():
        return {"dataset": str(task.source), "id": task.id}
    return None


def task_hashes(task: Task) -> dict[str, str | None]:
    """sha256 of the task's fields (the answer included), its repo/ and its tests/ (None: absent)."""
    fields = json.dumps(task.model_dump(mode="json"), sort_keys=True).encode()
    return {
        "task": hashlib.sha256(fields).hexdigest(),
        "repo": _tree_hash(task.repo_dir) if task.repo_dir else None,
        "tests": _tree_hash(task.tests_dir) if task.tests_dir else None,
    }


def header_fields(task: Task, model: Model, out_dir: Path) -> dict[str, Any]:
    """What the runner adds to a trajectory header for replays to use."""
    return {
        "task_source": task_source(task),
        "task_hashes": task_hashes(task),
        "out_dir": str(out_dir),
        "model_supports_images": model.supports_images,
    }


def load_recorded_task(header: dict[str, Any], trajectory: Path) -> Task:
    """The task a trajectory header says the run came from; TaskError if it cannot be found."""
    source = header.get("task_source")
    if not source:
        raise TaskError(
            f"{trajectory} does not record where its task came from (an older or in-code run); "
            "name the task: lancer replay RUN --task TASK [--dataset CSV]"
        )
    if "folder" in source:
        return load_task_folder(Path(source["folder"]))
    from lancer.formats.swelancer import load_swelancer_task

    return load_swelancer_task(source["id"], Path(source["dataset"]))


def task_changes(header: dict[str, Any], task: Task) -> list[str]:
    """The parts of ``task`` (task, repo, tests) whose hash differs from the recorded one."""
    recorded = header.get("task_hashes") or {}
    if not recorded:
        return []
    now = task_hashes(task)
    return [part for part in now if recorded.get(part) != now[part]]


def _tree_hash(root: Path) -> str:
    """One sha256 over every file's relative path, executable bit and content (symlinks: their target)."""
    digest = hashlib.sha256()
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _IGNORED)
        for name in sorted(names):
            path = Path(folder, name)
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            if path.is_symlink():
                digest.update(b"link\0" + os.readlink(path).encode())
            else:
                digest.update(b"x\0" if os.access(path, os.X_OK) else b"-\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
