"""Task formats beyond lancer's own task.yaml folder: SWE-Lancer's CSV, Harbor's task folders."""

from __future__ import annotations

from pathlib import Path

from lancer.core.tasks import Task, is_harbor_folder, load_task


def load_task_folder(folder: Path) -> Task:
    """The task in ``folder``, whichever format it is in (lancer.core.tasks tells them apart)."""
    if is_harbor_folder(Path(folder)):
        from lancer.formats.harbor import load_harbor_task

        return load_harbor_task(Path(folder))
    return load_task(folder)
