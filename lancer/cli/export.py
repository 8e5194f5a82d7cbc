"""``lancer export TASK... --format harbor|swebench OUT``: lancer tasks for other tools.

``swebench`` writes OUT as a JSONL of instances and each task's repository (one commit:
the base) to ``--repos-out`` (default: OUT's folder/repos), reading back with
``lancer eval --dataset OUT --repos DIR --price-from price``. FAIL_TO_PASS and
PASS_TO_PASS come from grading the untouched repo and the reference solution, as
``lancer check`` does. ``harbor`` is written by the Harbor writer (issue 15's other half).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from lancer.cli.console import console

FORMATS = ("harbor", "swebench")


def add_export_command(commands: Any) -> None:
    ex = commands.add_parser("export", help="write lancer tasks as SWE-bench instances (or Harbor tasks)")
    ex.add_argument("tasks", type=Path, nargs="+", help="task folders, or folders of task folders")
    ex.add_argument("out", type=Path, help="swebench: the instances file (.jsonl); harbor: a folder")
    ex.add_argument("--format", required=True, choices=FORMATS, help="the format written")
    ex.add_argument("--repos-out", type=Path, help="swebench: where the repositories go (default: OUT's folder/repos)")
    ex.add_argument("--sandbox", choices=["local", "docker"], help="where the tasks are graded (default: local)")
    ex.add_argument("--config", type=Path, help="YAML run configuration (see README)")
    ex.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from lancer.agent.check import all_task_folders
    from lancer.core.config import load_config
    from lancer.core.errors import ConfigError
    from lancer.core.tasks import load_task

    if args.format == "harbor":
        raise ConfigError(
            "--format harbor: the Harbor writer is not in this build (it lands with issue 15's Harbor half)"
        )
    from lancer.formats.swebench import export_row

    config = load_config(args.config, {"sandbox.kind": args.sandbox})
    repos: Path = args.repos_out or args.out.parent / "repos"
    repos.mkdir(parents=True, exist_ok=True)
    rows = []
    for folder in all_task_folders(args.tasks):
        task = load_task(folder)
        patch, f2p, p2p = _graded_tests(task, config)
        rows.append(export_row(task, repos, patch, f2p, p2p))
        console.print(f"{task.id}: {len(f2p)} FAIL_TO_PASS, {len(p2p)} PASS_TO_PASS", markup=False)
    args.out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    console.print(
        f"wrote {len(rows)} instance(s) to {args.out}; read them back with "
        f"lancer eval --dataset {args.out} --repos {repos} --price-from price",
        markup=False,
    )
    return 0


def _graded_tests(task: Any, config: Any) -> tuple[str, list[str], list[str]]:
    """The reference solution's patch, and the hidden tests it makes pass (FAIL_TO_PASS) and
    keeps passing (PASS_TO_PASS): graded as ``lancer check`` grades."""
    from lancer.core.errors import TaskError
    from lancer.grader import grade
    from lancer.grader.report import node_id

    if task.variant != "ic_swe" or task.repo_dir is None or task.tests_dir is None or task.app is not None:
        raise TaskError(
            f"task {task.id}: only IC tasks with repo/ and hidden pytest tests/ (no app) export to swebench"
        )
    patch = _reference_patch(task, config)
    before, after = grade(task, b"", config), grade(task, patch, config)
    if before.status == "error" or after.status != "passed":
        why = before.detail if before.status == "error" else after.detail
        raise TaskError(f"task {task.id} is not valid (see lancer check): {why}")
    files = sorted("tests/" + p.relative_to(task.tests_dir).as_posix() for p in task.tests_dir.rglob("*.py"))
    failed_before = {t.name for t in before.tests if t.outcome != "passed"}
    names = [t.name for t in after.tests if t.outcome == "passed"]
    f2p = [node_id(n, files) for n in names if n in failed_before]
    p2p = [node_id(n, files) for n in names if n not in failed_before]
    return patch.decode(errors="replace"), f2p, p2p


def _reference_patch(task: Any, config: Any) -> bytes:
    from lancer.agent.runner import run_task
    from lancer.core.errors import TaskError
    from lancer.models import create_model
    from lancer.models.oracle import SOLUTION_PATCH, SOLUTION_TURNS

    if (task.folder / SOLUTION_PATCH).is_file():
        return bytes((task.folder / SOLUTION_PATCH).read_bytes())
    if not (task.folder / SOLUTION_TURNS).is_file():
        raise TaskError(f"task {task.id} has no reference solution ({SOLUTION_PATCH} or {SOLUTION_TURNS}) to export")
    with tempfile.TemporaryDirectory(prefix="lancer-export-") as out:
        run_task(task, create_model(f"scripted:{task.folder / SOLUTION_TURNS}", config.model), config, Path(out))
        return (Path(out) / "patch.diff").read_bytes()
