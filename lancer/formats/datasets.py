"""A ``--dataset`` file, whatever its format: the one place that tells them apart.

``.jsonl``, ``.json`` and ``.parquet`` files and swebench task repos (a folder with ``tasks/``)
hold SWE-bench instances (lancer.formats.swebench);
anything else is a SWE-Lancer task CSV (lancer.formats.swelancer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lancer.core.errors import TaskError
from lancer.core.tasks import Task
from lancer.formats import swebench, swelancer
from lancer.formats.swebench_tasks import is_task_repo


@dataclass(frozen=True)
class DatasetOptions:
    """What SWE-bench instances need beyond the file (a SWE-Lancer CSV needs none of it)."""

    workspace: Path  # where instance task folders are made
    repos: str | None = None  # --repos: a folder of owner__name repositories, or a URL with {repo}
    price_from: str = "none"  # --price-from: a column, a flat price, or none


def select_dataset_tasks(
    path: Path,
    options: DatasetOptions,
    variant: str | None = None,
    set_name: str | None = None,
    ids: Iterable[str] | None = None,
) -> list[Task]:
    """The tasks of ``path`` matching the filters; TaskError (one line) when none can be."""
    if not swebench.is_instances_file(path) and not is_task_repo(path):
        return swelancer.select_tasks(path, variant, set_name, ids)
    if variant not in (None, "ic_swe") or set_name is not None:
        raise TaskError(f"{path} holds SWE-bench instances: --variant and --set do not apply (use --ids)")
    return swebench.select_instances(path, ids, options.repos, options.price_from, options.workspace)


def dataset_task(task_id: str, path: Path, options: DatasetOptions) -> Task:
    """One task of ``path`` by its id."""
    if not swebench.is_instances_file(path) and not is_task_repo(path):
        return swelancer.load_swelancer_task(task_id, path)
    return select_dataset_tasks(path, options, ids=[task_id])[0]
