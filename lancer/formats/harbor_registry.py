"""Harbor registry datasets: ``--dataset NAME@VERSION --registry registry.json``.

A Harbor registry file is a JSON list of datasets, each ``{"name", "version",
"description", "tasks": [{"name", "git_url", "git_commit_id", "path"}]}``, as Harbor's own
registry.json is. Each task is the folder ``path`` of the repository ``git_url`` at
``git_commit_id``: every (url, commit) is cloned once into the cache and checked out
there, and later evals read the same folders without the network. ``git_url`` may be a
local path or a ``file://`` URL. A task without a commit is the repository's default
branch as first cloned (it is not fetched again: remove its cache folder to refresh).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from pydantic import Field, ValidationError

from lancer.core.config import StrictModel, describe_validation_error
from lancer.core.errors import TaskError
from lancer.core.sandbox import OWNER_FILE, owned_temp_dir, pid_alive, remove_owned_dir
from lancer.core.tasks import Task, is_harbor_folder

_GIT_TIMEOUT_S = 600
_CLONE_PREFIX = ".clone-"


class RegistryTask(StrictModel):
    name: str
    git_url: str
    git_commit_id: str | None = None
    path: str = ""


class RegistryDataset(StrictModel):
    name: str
    version: str = "head"
    description: str = ""
    tasks: list[RegistryTask] = Field(default_factory=list)
    # Harbor's job-level metrics for the dataset; lancer computes its own.
    metrics: list[dict[str, object]] = Field(default_factory=list)


def select_registry_tasks(spec: str, registry: Path, ids: Iterable[str] | None, cache: Path) -> list[Task]:
    """The tasks of dataset ``spec`` (``name@version``, or ``name`` when it has one version)
    in ``registry``, cloned into ``cache`` as needed; TaskError (one line) when it cannot be."""
    from lancer.formats import load_task_folder

    dataset = _dataset(spec, registry)
    wanted = set(ids) if ids is not None else None
    chosen = [t for t in dataset.tasks if wanted is None or t.name in wanted]
    if wanted is not None and (missing := wanted - {t.name for t in chosen}):
        raise TaskError(f"dataset {spec} in {registry} has no task {', '.join(sorted(missing))}")
    tasks = []
    for entry in chosen:
        folder = _checkout(entry, cache) / entry.path
        if not is_harbor_folder(folder):
            raise TaskError(
                f"dataset {spec}: task {entry.name}'s path {entry.path!r} in {entry.git_url} "
                "is not a Harbor task folder"
            )
        tasks.append(load_task_folder(folder))
    return tasks


def _dataset(spec: str, registry: Path) -> RegistryDataset:
    try:
        loaded = json.loads(registry.read_text())
    except FileNotFoundError:
        raise TaskError(f"--registry {registry}: no such file") from None
    except json.JSONDecodeError as e:
        raise TaskError(f"--registry {registry} is not JSON: {e}") from None
    if not isinstance(loaded, list):
        raise TaskError(f"--registry {registry}: a Harbor registry is a JSON list of datasets")
    try:
        datasets = [RegistryDataset.model_validate(item) for item in loaded]
    except ValidationError as e:
        raise TaskError(f"--registry {registry}: {describe_validation_error(e)}") from None
    name, _, version = spec.rpartition("@") if "@" in spec else (spec, "", "")
    named = [d for d in datasets if d.name == name]
    matching = [d for d in named if d.version == version] if version else named
    if len(matching) == 1:
        return matching[0]
    if not named:
        known = ", ".join(sorted({f"{d.name}@{d.version}" for d in datasets})) or "none"
        raise TaskError(f"--registry {registry} has no dataset {name!r} (it has: {known})")
    versions = ", ".join(d.version for d in named)
    raise TaskError(f"--dataset {spec}: {registry} has {name} in versions {versions}: name one as {name}@VERSION")


def _checkout(entry: RegistryTask, cache: Path) -> Path:
    """The repository of ``entry`` at its commit, cloned once (the cache folder appears whole or not at all)."""
    key = hashlib.sha256(entry.git_url.encode()).hexdigest()[:16]
    target = cache / key / (entry.git_commit_id or "default-branch")
    _remove_abandoned_clones(target.parent)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Owned (lancer.pid in it): a clone a killed lancer left is removed by the next checkout here.
    scratch = owned_temp_dir(_CLONE_PREFIX, str(target.parent))
    try:
        clone = scratch / "repo"
        _git(["clone", "-q", "--no-checkout", entry.git_url, str(clone)], entry)
        _git(["-C", str(clone), "checkout", "-q", "--detach", entry.git_commit_id or "HEAD"], entry)
        try:
            os.rename(clone, target)
        except OSError:  # another eval cloned it first: theirs is the same commit
            if not target.is_dir():
                raise
    finally:
        remove_owned_dir(scratch)
    return target


def _remove_abandoned_clones(folder: Path) -> None:
    for scratch in folder.glob(f"{_CLONE_PREFIX}*"):
        owner = scratch / OWNER_FILE
        if owner.is_file() and not pid_alive(owner.read_text().strip()):
            remove_owned_dir(scratch)


def _git(args: list[str], entry: RegistryTask) -> None:
    try:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, timeout=_GIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TaskError(f"task {entry.name}: git took over {_GIT_TIMEOUT_S} s on {entry.git_url}") from None
    if proc.returncode != 0:
        why = " ".join(proc.stderr.split())[:300]
        commit = f" at {entry.git_commit_id}" if entry.git_commit_id else ""
        raise TaskError(f"task {entry.name}: cannot check out {entry.git_url}{commit}: {why}")
