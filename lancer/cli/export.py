"""``lancer export``: lancer tasks (folders, SWE-Lancer CSV rows) written in another
benchmark's format: ``--format harbor DIR`` (docs/harbor.md) or ``--format swebench
FILE.jsonl`` (docs/swebench.md); and recorded runs and evals as ATIF trajectories
(``--format atif DIR``) or chat fine-tuning data (``--format sft FILE.jsonl``, docs/study.md).

``swebench`` writes the instances file and each task's repository (one commit: the base)
to the file's folder/repos, read back with ``lancer eval --dataset FILE --repos DIR
--price-from price``. FAIL_TO_PASS and PASS_TO_PASS come from grading the untouched repo
and the reference solution, as ``lancer check`` does.
"""

from __future__ import annotations

import argparse
import functools
import json
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
    ex = commands.add_parser(
        "export", help="write tasks as Harbor folders or SWE-bench instances; runs as ATIF or fine-tuning data"
    )
    ex.add_argument(
        "tasks",
        nargs="*",
        metavar="TASK|RUN",
        help="a task folder, or a folder of task folders; atif and sft: a run or eval directory",
    )
    ex.add_argument(
        "--format",
        nargs=2,
        required=True,
        metavar=("FORMAT", "DEST"),
        help=f"the format ({', '.join(sorted([*EXPORTERS, *RUN_FORMATS]))}) and where to write it "
        "(harbor: a folder of task folders; swebench: a .jsonl file, its repositories beside it in repos/; "
        "atif: a folder of trajectory.json files; sft: a .jsonl file)",
    )
    ex.add_argument("--resolved-only", action="store_true", help="atif, sft: only the resolved attempts")
    ex.add_argument(
        "--dataset",
        type=Path,
        help="a SWE-Lancer tasks CSV (or swelancer-lite, swelancer): its rows matching the filters too",
    )
    ex.add_argument("--variant", choices=["ic_swe", "swe_manager"], help="--dataset: only this variant")
    ex.add_argument("--set", dest="set_name", metavar="NAME", help="--dataset: only this set")
    ex.add_argument("--ids", help="--dataset: only these task ids, comma-separated")
    ex.add_argument("--config", type=Path, help="YAML run configuration, for playing a solution.yaml")
    ex.add_argument(
        "--images",
        action="store_true",
        help="swebench: also build each instance's image (docker; its repository at /testbed) and name it in `image`",
    )
    ex.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from lancer.eval.taskset import load_task_set

    name, dest = args.format
    if name in RUN_FORMATS:
        return _export_runs(name, [Path(p) for p in args.tasks], Path(dest), args.resolved_only)
    if name not in EXPORTERS:
        raise ConfigError(f"--format {name}: lancer exports {', '.join(sorted([*EXPORTERS, *RUN_FORMATS]))}")
    ids = [i for i in args.ids.split(",") if i] if args.ids else None
    tasks = [item.task for item in load_task_set(args.tasks, args.dataset, args.variant, args.set_name, ids)]
    config = load_config(args.config, {"sandbox.kind": "local"})
    if args.images and name != "swebench":
        raise ConfigError("--images is for --format swebench")
    exporter = functools.partial(_to_swebench, images=True) if args.images else EXPORTERS[name]
    for folder in exporter(tasks, Path(dest), config):
        console.print(f"wrote {folder}", markup=False)
    return 0


RUN_FORMATS = ("atif", "sft")


def _export_runs(name: str, sources: list[Path], dest: Path, resolved_only: bool) -> int:
    from lancer.study.export_runs import export_atif, export_sft

    if not sources:
        raise ConfigError(f"--format {name}: give the run or eval directories to export")
    written = (export_atif if name == "atif" else export_sft)(sources, dest, resolved_only)
    if name == "sft":
        lines = sum(1 for _ in dest.open(encoding="utf-8"))
        console.print(f"wrote {dest}: {lines} attempt(s)", markup=False)
    else:
        console.print(f"wrote {len(written)} ATIF trajectories under {dest}", markup=False)
    return 0


def _to_harbor(tasks: list[Task], dest: Path, config: RunConfig) -> list[Path]:
    from lancer.formats.harbor import check_exportable, write_harbor_task
    from lancer.sandbox.docker import base_image

    for task in tasks:  # every task checked before any is written
        check_exportable(task)
    dest.mkdir(parents=True, exist_ok=True)
    return [write_harbor_task(task, dest, base_image(), solution_patch(task, config)) for task in tasks]


def _to_swebench(tasks: list[Task], dest: Path, config: RunConfig, images: bool = False) -> list[Path]:
    from lancer.formats.swebench import export_row

    repos = dest.parent / "repos"
    repos.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in tasks:
        patch, f2p, p2p = _graded_tests(task, config)
        row = export_row(task, repos, patch, f2p, p2p)
        if images:
            row["image"] = _build_image(task, repos / f"lancer__{task.id}")
        rows.append(row)
        console.print(f"{task.id}: {len(f2p)} FAIL_TO_PASS, {len(p2p)} PASS_TO_PASS", markup=False)
    dest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    console.print(f"read them back with lancer eval --dataset {dest} --repos {repos} --price-from price", markup=False)
    return [dest]


def _build_image(task: Task, repo: Path) -> str:
    """The instance's image, for the official harness: the exported repository (with its
    history, the base commit) at /testbed of lancer's base image, the task's setup run."""
    import shutil

    from lancer.formats.swebench_export import dockerfile
    from lancer.sandbox.docker import base_image, build_image, connect

    with tempfile.TemporaryDirectory(prefix="lancer-export-image-") as context:
        shutil.copytree(repo, Path(context) / "testbed", symlinks=True)
        (Path(context) / "Dockerfile").write_text(dockerfile(base_image(), task.setup))
        client = connect()
        try:
            return build_image(client, Path(context) / "Dockerfile", f"swebench-{task.id}", env=True)
        finally:
            client.close()


def _graded_tests(task: Task, config: RunConfig) -> tuple[str, list[str], list[str]]:
    """The reference solution's patch, and the hidden tests it makes pass (FAIL_TO_PASS) and
    keeps passing (PASS_TO_PASS): graded as ``lancer check`` grades."""
    from lancer.grader import grade
    from lancer.grader.report import node_id

    if task.variant != "ic_swe" or task.repo_dir is None or task.tests_dir is None or task.app is not None:
        raise TaskError(
            f"task {task.id}: only IC tasks with repo/ and hidden pytest tests/ (no app) export to swebench"
        )
    patch = solution_patch(task, config)
    if patch is None:
        raise TaskError(f"task {task.id} has no reference solution (solution.patch or solution.yaml) to export")
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


EXPORTERS: dict[str, Callable[[list[Task], Path, RunConfig], list[Path]]] = {
    "harbor": _to_harbor,
    "swebench": _to_swebench,
}


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
