"""A ``--dataset`` file, whatever its format: the one place that tells them apart.

``--dataset`` is a file, a folder or a dataset's name (lancer.formats.catalog:
``swelancer-lite``, ``swelancer``, ``swe-bench-verified``, ...), resolved to a file first.
``.jsonl``, ``.json`` and ``.parquet`` files and swebench task repos (a folder with ``tasks/``)
hold SWE-bench instances (lancer.formats.swebench); anything else is a SWE-Lancer task CSV
(lancer.formats.swelancer); with ``--registry``, the dataset is a Harbor registry's
NAME@VERSION (lancer.formats.harbor_registry).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lancer.core.errors import TaskError
from lancer.core.tasks import Task
from lancer.formats import swebench, swelancer
from lancer.formats.catalog import dataset_file
from lancer.formats.swebench_tasks import is_task_repo


@dataclass(frozen=True)
class DatasetOptions:
    """What SWE-bench instances need beyond the file (a SWE-Lancer CSV needs none of it)."""

    workspace: Path  # where instance task folders are made
    repos: str | None = None  # --repos: a folder of owner__name repositories, or a URL with {repo}
    price_from: str = "none"  # --price-from: a column, a flat price, or none
    # --registry: a Harbor registry file; --dataset then names one of its datasets (NAME@VERSION).
    registry: Path | None = None
    registry_cache: Path | None = None  # where its repositories are cloned


def select_dataset_tasks(
    path: Path,
    options: DatasetOptions,
    variant: str | None = None,
    set_name: str | None = None,
    ids: Iterable[str] | None = None,
) -> list[Task]:
    """The tasks of ``path`` (a file, a folder or a dataset's name) matching the filters; TaskError
    (one line) when none can be."""
    if options.registry is not None:
        from lancer.formats.harbor_registry import select_registry_tasks

        if variant is not None or set_name is not None:
            raise TaskError("--registry datasets are Harbor tasks: --variant and --set do not apply (use --ids)")
        cache = options.registry_cache or options.workspace.parent / "harbor-registry"
        return select_registry_tasks(str(path), options.registry, ids, cache)
    path = dataset_file(path)
    if not swebench.is_instances_file(path) and not is_task_repo(path):
        return swelancer.select_tasks(path, variant, set_name, ids)
    if variant not in (None, "ic_swe") or set_name is not None:
        raise TaskError(f"{path} holds SWE-bench instances: --variant and --set do not apply (use --ids)")
    return swebench.select_instances(path, ids, options.repos, options.price_from, options.workspace)


def dataset_task(task_id: str, path: Path, options: DatasetOptions) -> Task:
    """One task of ``path`` (a file, a folder or a dataset's name) by its id."""
    if options.registry is None:
        path = dataset_file(path)
    if options.registry is None and not swebench.is_instances_file(path) and not is_task_repo(path):
        return swelancer.load_swelancer_task(task_id, path)
    return select_dataset_tasks(path, options, ids=[task_id])[0]
