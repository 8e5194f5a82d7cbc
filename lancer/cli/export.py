"""``lancer export``: lancer tasks (folders, SWE-Lancer CSV rows) written in another
benchmark's format: ``--format harbor`` (docs/harbor.md)."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lancer.cli.console import console
from lancer.core.config import RunConfig, load_config
from lancer.core.errors import ConfigError, TaskError
from lancer.core.tasks import Task


def add_export_command(commands: Any) -> None:
    """Register ``lancer export`` on the CLI's subcommands."""
    ex = commands.add_parser("export", help="write lancer tasks as Harbor task folders")
    ex.add_argument("tasks", nargs="*", metavar="TASK", help="a task folder, or a folder of task folders")
    ex.add_argument(
        "--format",
        nargs=2,
        required=True,
        metavar=("FORMAT", "DEST"),
        help=f"the format ({', '.join(sorted(EXPORTERS))}) and where to write it (harbor: a folder of task folders)",
    )
    ex.add_argument("--dataset", type=Path, help="a SWE-Lancer tasks CSV: its rows matching the filters too")
    ex.add_argument("--variant", choices=["ic_swe", "swe_manager"], help="--dataset: only this variant")
    ex.add_argument("--set", dest="set_name", metavar="NAME", help="--dataset: only this set")
    ex.add_argument("--ids", help="--dataset: only these task ids, comma-separated")
    ex.add_argument("--config", type=Path, help="YAML run configuration, for playing a solution.yaml")
    ex.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from lancer.eval.taskset import load_task_set

    name, dest = args.format
    if name not in EXPORTERS:
        raise ConfigError(f"--format {name}: lancer exports {', '.join(sorted(EXPORTERS))}")
    ids = [i for i in args.ids.split(",") if i] if args.ids else None
    tasks = [item.task for item in load_task_set(args.tasks, args.dataset, args.variant, args.set_name, ids)]
    config = load_config(args.config, {"sandbox.kind": "local"})
    for folder in EXPORTERS[name](tasks, Path(dest), config):
        console.print(f"wrote {folder}", markup=False)
    return 0


def _to_harbor(tasks: list[Task], dest: Path, config: RunConfig) -> list[Path]:
    from lancer.formats.harbor import check_exportable, write_harbor_task
    from lancer.sandbox.docker import base_image

    for task in tasks:  # every task checked before any is written
        check_exportable(task)
    dest.mkdir(parents=True, exist_ok=True)
    return [write_harbor_task(task, dest, base_image(), solution_patch(task, config)) for task in tasks]


EXPORTERS: dict[str, Callable[[list[Task], Path, RunConfig], list[Path]]] = {"harbor": _to_harbor}


def solution_patch(task: Task, config: RunConfig) -> bytes | None:
    """The task's reference fix as a git diff: its solution.patch, or the diff its
    solution.yaml makes when played (in the local sandbox); None without either."""
    from lancer.models.oracle import SOLUTION_PATCH, SOLUTION_TURNS

    folder = task.folder
    if folder is None or task.variant != "ic_swe":
        return None
    if (folder / SOLUTION_PATCH).is_file():
        return (folder / SOLUTION_PATCH).read_bytes()
    if not (folder / SOLUTION_TURNS).is_file():
        return None
    from lancer.agent.runner import run_task
    from lancer.models import create_model

    with tempfile.TemporaryDirectory(prefix="lancer-export-") as out:
        result = run_task(task, create_model("oracle", config.model, task), config, Path(out))
        patch = (Path(out) / "patch.diff").read_bytes()
    if not result["resolved"] or not patch.strip():
        raise TaskError(
            f"task {task.id}: its {SOLUTION_TURNS} does not resolve it ({result['grade'] or result['detail']})"
        )
    return patch
