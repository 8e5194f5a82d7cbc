"""The ``lancer`` command line. Bad input ends here as one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from rich.text import Text

from lancer import __version__
from lancer.agent.outdirs import check_run_dir, fresh_dir
from lancer.cli import study as study_commands
from lancer.cli.console import console
from lancer.cli.datasets import add_dataset_args, dataset_options, swebench_workspace
from lancer.cli.eval import add_eval_command
from lancer.cli.export import add_export_command
from lancer.core.config import RunConfig, load_config
from lancer.core.dollars import earned_of
from lancer.core.errors import LancerError
from lancer.core.secrets import redact
from lancer.core.tasks import Task
from lancer.core.text import price_text
from lancer.formats import load_task_folder
from lancer.study.show import render_run


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # a polite kill ends the run like Ctrl-C
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `lancer show RUN | head` ends quietly
    try:
        return int(args.handler(args))
    except LancerError as e:
        console.print(f"lancer: error: {redact(str(e))}", markup=False)
        return 2
    except KeyboardInterrupt:
        console.print("lancer: interrupted")
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lancer", description="Run a model on a freelance software task and grade the result."
    )
    parser.add_argument("--version", action="version", version=f"lancer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run an agent on a task, then grade its patch")
    run.add_argument(
        "task", help="a task folder (task.yaml, repo/, tests/; or Harbor's task.toml ...) or a SWE-Lancer task id"
    )
    run.add_argument("--model", required=True, help="provider:model, e.g. openai:gpt-4o or scripted:turns.yaml")
    _common(run)
    run.add_argument("--out", type=Path, help="run directory (default: runs/<task>-<time>-<random>)")
    run.add_argument("--force", action="store_true", help="let --out replace a run already in that folder")
    run.add_argument("--max-steps", type=int, help="stop after this many model calls")
    run.add_argument("--cost-limit", type=float, help="stop before spending more than this many USD")
    run.add_argument("--time-limit", type=float, help="stop after this many seconds")
    run.add_argument("--base-url", help="the model API's base URL (any OpenAI-compatible server)")
    run.add_argument("--verbose", action="store_true", help="print lancer's debug log (RUN_DIR/lancer.log) live")
    run.set_defaults(handler=_run)

    grade = commands.add_parser("grade", help="grade a patch against a task's hidden tests")
    grade.add_argument("task", help="a task folder or a SWE-Lancer task id")
    grade.add_argument("patch", help="a patch.diff (git diff against the task's repo); - reads it from stdin")
    _common(grade)
    grade.add_argument("--proposal", type=int, help="manager tasks: the chosen proposal id")
    grade.set_defaults(handler=_grade)

    check = commands.add_parser(
        "check", help="validate tasks: hidden tests fail on the original code, pass with the reference solution"
    )
    check.add_argument("tasks", type=Path, nargs="*", help="task folders, or folders of task folders")
    add_dataset_args(check)
    check.add_argument("--ids", help="--dataset: only these task (instance) ids, comma-separated")
    check.add_argument("--sandbox", choices=["local", "docker"], help="where the task runs (default: local)")
    check.add_argument("--config", type=Path, help="YAML run configuration (see README)")
    check.add_argument("--attempts", type=int, help="test runs per grading (default: grader.attempts, 3)")
    check.add_argument("--every-test", action="store_true", help="list every test, not only those that did not pass")
    check.set_defaults(handler=_check)

    show = commands.add_parser("show", help="print a recorded run step by step")
    show.add_argument("run", type=Path, help="a run directory (or its trajectory.jsonl), or an ATIF trajectory.json")
    show.add_argument("--max-chars", type=int, default=800, help="cut each text and output to this length")
    show.add_argument("--step", type=int, help="show only this step, in full")
    show.set_defaults(handler=lambda args: _print(render_run(args.run, args.max_chars, args.step)))

    compare = commands.add_parser("compare", help="compare runs: pass rates, dollars earned, cost")
    compare.add_argument("runs", type=Path, nargs="+", help="run directories")
    compare.set_defaults(handler=_compare)

    replay = commands.add_parser("replay", help="replay a run's tool calls; report whether it reproduces")
    replay.add_argument("run", type=Path, help="a run directory (or its trajectory.jsonl), or an ATIF trajectory.json")
    replay.add_argument("--task", help="the task, if not where the run says (a folder, or an id with --dataset)")
    _common(replay)
    replay.add_argument("--out", type=Path, help="replay's run directory (default: RUN-replay-<time> beside RUN)")
    replay.set_defaults(handler=_replay)

    models = commands.add_parser("models", help="list the model providers lancer can load (built-in and plugins)")
    models.set_defaults(handler=_models)

    add_eval_command(commands)
    add_export_command(commands)
    study_commands.register(commands)  # view, report

    sandbox = commands.add_parser("sandbox", help="manage docker sandboxes")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    prune = sandbox_commands.add_parser(
        "prune", help="remove sandboxes (containers, local folders) left by lancer processes that ended"
    )
    prune.add_argument("--all", action="store_true", help="also containers of runs still going, and of other machines")
    prune.add_argument("--images", action="store_true", help="also the images lancer built from task Dockerfiles")
    prune.add_argument(
        "--envs", action="store_true", help="also the cached task environments (rebuilt when next needed)"
    )
    prune.add_argument(
        "--swebench",
        action="store_true",
        help="also the SWE-bench instances' task folders and repository mirrors (made again when next needed)",
    )
    prune.set_defaults(handler=_prune)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sandbox", choices=["local", "docker"], help="where the task runs (default: local)")
    parser.add_argument("--image", help="docker: run in this image instead of the task's image or dockerfile")
    parser.add_argument("--config", type=Path, help="YAML run configuration (see README)")
    add_dataset_args(parser)


def _load(args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[Task, RunConfig]:
    from lancer.agent.preflight import check_runnable

    pull = {"sandbox.pull": True} if args.pull else {}
    config = load_config(args.config, {"sandbox.kind": args.sandbox, "sandbox.image": args.image, **pull, **overrides})
    task = load_task_arg(args.task, args)
    check_runnable(task, config.sandbox)
    return task, config


def load_task_arg(task_arg: str, args: argparse.Namespace) -> Task:
    path = Path(task_arg)
    if path.exists() or args.dataset is None:
        return load_task_folder(path)
    from lancer.formats.datasets import dataset_task

    return dataset_task(task_arg, args.dataset, dataset_options(args))


def _run(args: argparse.Namespace) -> int:
    from lancer.agent.runner import run_task
    from lancer.models import create_model

    if args.verbose:
        from lancer.core.logs import log_to_stderr

        log_to_stderr()
    task, config = _load(
        args,
        {
            "limits.max_steps": args.max_steps,
            "limits.cost_limit_usd": args.cost_limit,
            "limits.time_limit_s": args.time_limit,
            "model.base_url": args.base_url,
        },
    )
    model = create_model(args.model, config.model, task)
    if args.out is not None:
        check_run_dir(args.out, args.force)
    out = args.out or fresh_dir(Path("runs"), task.id)
    console.print(
        f"[bold]{task.id}[/] ({task.variant}, {price_text(task.price, 0)}) with {model.name} "
        f"in a {config.sandbox.kind} sandbox"
    )
    result = run_task(task, model, config, out, _print_step)
    _print_summary(result, out)
    if result["exit_status"] == "interrupted":
        return 130
    return 0 if result["exit_status"] != "error" else 1


def _grade(args: argparse.Namespace) -> int:
    from lancer.grader import grade

    task, config = _load(args, {})
    patch = _read_patch(args.patch)
    answer = {"proposal_id": args.proposal} if args.proposal is not None else None
    verdict = grade(task, patch, config, answer)
    earned = None if task.price is None else task.price if verdict.resolved else 0.0
    print(
        json.dumps(
            {"task_id": task.id, "resolved": verdict.resolved, "earned": earned, "grade": verdict.to_dict()}, indent=2
        )
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from lancer.agent.check import all_task_folders, check_folder, render_check

    pull = {"sandbox.pull": True} if args.pull else {}
    config = load_config(args.config, {"sandbox.kind": args.sandbox, "grader.attempts": args.attempts, **pull})
    folders = all_task_folders(args.tasks) if args.tasks or args.dataset is None else []
    if args.dataset is not None:
        from lancer.formats.datasets import select_dataset_tasks

        ids = [i.strip() for i in args.ids.split(",") if i.strip()] if args.ids else None
        folders += [t.folder for t in select_dataset_tasks(args.dataset, dataset_options(args), ids=ids) if t.folder]
    invalid = 0
    for folder in folders:
        result = check_folder(folder, config)
        invalid += not result.valid
        print(render_check(result, args.every_test), flush=True)
    print(f"{invalid} invalid task(s)" if invalid else "all tasks valid")
    return 1 if invalid else 0


def _read_patch(arg: str) -> bytes:
    """The patch at ``arg`` (a file, /dev/null, or - for stdin)."""
    if arg == "-":
        return sys.stdin.buffer.read()
    path = Path(arg)
    if path.is_dir():
        raise LancerError(f"patch {arg} is a directory: give the patch file (a run's patch.diff), or - for stdin")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise LancerError(f"patch file {arg} does not exist (give a run's patch.diff, or - for stdin)") from None
    except OSError as e:
        raise LancerError(f"patch file {arg} cannot be read: {e.strerror}") from None


def _replay(args: argparse.Namespace) -> int:
    from lancer.agent.replaycheck import check_replay, prepare_replay
    from lancer.agent.runner import run_task

    task = load_task_arg(args.task, args) if args.task else None
    config = load_config(args.config) if args.config else None
    plan = prepare_replay(args.run, task, config, {"kind": args.sandbox, "image": args.image})
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if args.out:
        check_run_dir(args.out, False)  # never over the run being replayed, nor another
    out = args.out or plan.default_out()
    task = plan.task
    console.print(
        f"[bold]{task.id}[/] ({task.variant}, {price_text(task.price, 0)}) replay, {plan.config.sandbox.kind} sandbox"
    )
    result = run_task(task, plan.model, plan.config, out, _print_step)
    _print_summary(result, out)
    check = check_replay(plan, out)
    print(check.report())
    return 0 if check.reproduced else 1


def _compare(args: argparse.Namespace) -> int:
    from lancer.study.compare import print_comparison

    return print_comparison(args.runs)


def _models(args: argparse.Namespace) -> int:
    from lancer.models.catalog import print_providers

    return print_providers()


def _print(text: str) -> int:
    print(text)
    return 0


def _prune(args: argparse.Namespace) -> int:
    from lancer.sandbox import docker, local

    print(f"removed {local.prune(everything=args.all)} local sandbox or browser temp folder(s)")
    if args.envs:
        from lancer.sandbox.envcache import envs_dir, prune_envs

        print(f"removed {prune_envs()} cached task environment(s) from {envs_dir()}")
    if args.swebench:
        from lancer.formats.swebench import prune_workspace

        workspace = swebench_workspace()
        pruned = prune_workspace(workspace)
        print(
            f"removed {pruned.task_folders} SWE-bench task folder(s) and {pruned.mirrors} repository mirror(s) "
            f"from {workspace}: {pruned.bytes:,} bytes"
        )
    try:
        removed = docker.prune(everything=args.all, images=args.images, envs=args.envs)
    except LancerError as e:  # no engine: there is nothing of docker's to prune either
        print(f"docker: skipped ({e})")
        return 0
    images = " and ".join(what for what, asked in (("built", args.images), ("task environment", args.envs)) if asked)
    print(f"removed {removed} lancer container(s){f' and {images} images' if images else ''}")
    return 0


def _print_step(record: dict[str, Any]) -> None:
    calls = record["tool_calls"] or [{"name": "(no tool call)", "arguments": {}}]
    for call in calls:
        line = Text(f"  step {record['step']:>3}  {call['name']:<8} {_short(call.get('arguments'))}  ")
        line.append(f"{record['duration_s']:.1f}s", style="dim")
        console.print(line)


def _short(arguments: dict[str, Any] | None) -> str:
    if not arguments:
        return ""
    value = next(iter(arguments.values()))
    text = redact(" ".join(str(value).split()))  # before cutting, so no part of a key survives
    return (text[:60] + "…") if len(text) > 60 else text


def _print_summary(result: dict[str, Any], out: Path) -> None:
    verdict = "[green]RESOLVED[/]" if result["resolved"] else "[red]NOT RESOLVED[/]"
    cost = "unknown" if result["cost_usd"] is None else f"${result['cost_usd']:.4f}"
    console.print(
        f"{verdict}  earned {earned_of(result['earned'], result['price'])}  "
        f"exit: {result['exit_status']}  steps: {result['steps']}  cost: {cost}  "
        f"tokens: {result['input_tokens']} in / {result['output_tokens']} out"
    )
    if result["grade"]:
        console.print(f"grade: {result['grade']['status']} ({result['grade']['detail']})", markup=False)
    if result["detail"] and result["exit_status"] != "submitted":
        console.print(f"why the run ended: {result['detail']}", markup=False)
    timing = result.get("timing") or {}
    parts = [f"{name} {timing[f'{name}_s']:.1f}s" for name in ("setup", "agent", "grading") if timing.get(f"{name}_s")]
    if parts:
        environment = f" (environment {timing['environment']})" if timing.get("environment") else ""
        console.print(f"time: {', '.join(parts)}{environment}", markup=False)
    console.print(f"run directory: {out}", markup=False)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
