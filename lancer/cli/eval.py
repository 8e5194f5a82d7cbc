"""``lancer eval``: its command-line arguments and what the command does, start to end."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lancer.cli.console import console
from lancer.cli.datasets import add_dataset_args, dataset_options

DEFAULT_WORKERS = 4


def add_eval_command(commands: Any) -> None:
    """Register ``lancer eval`` on the CLI's subcommands."""
    ev = commands.add_parser(
        "eval", help="run a model on a task set, K attempts each, in parallel: pass@k, dollars earned, cost"
    )
    ev.add_argument("tasks", nargs="*", metavar="TASK", help="a task folder, or a folder of task folders")
    ev.add_argument("--model", required=True, help="provider:model, e.g. openai:gpt-4o or scripted:turns.yaml")
    add_dataset_args(ev)
    ev.add_argument("--variant", choices=["ic_swe", "swe_manager"], help="--dataset: only this variant")
    ev.add_argument("--set", dest="set_name", metavar="NAME", help="--dataset: only this set (the CSV's set column)")
    ev.add_argument("--ids", help="--dataset: only these task (instance) ids, comma-separated")
    ev.add_argument("--attempts", type=int, default=1, metavar="K", help="attempts per task (default 1)")
    ev.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="attempts at once (default 4)")
    ev.add_argument("--budget", type=float, metavar="USD", help="the most the whole eval may spend on the model")
    ev.add_argument("--out", type=Path, help="eval directory; one holding an eval is continued (default: evals/...)")
    ev.add_argument("--executor", default="local", help="local (worker processes here) or ray (a Ray cluster)")
    ev.add_argument("--ray-address", help="--executor ray: the cluster's address (default: RAY_ADDRESS or local)")
    ev.add_argument("--sandbox", choices=["local", "docker"], help="where each attempt runs (default: local)")
    ev.add_argument("--image", help="docker: run in this image instead of the task's image or dockerfile")
    ev.add_argument("--config", type=Path, help="YAML run configuration (see README)")
    ev.add_argument("--max-steps", type=int, help="per attempt: stop after this many model calls")
    ev.add_argument("--cost-limit", type=float, help="per attempt: stop before spending more than this many USD")
    ev.add_argument("--time-limit", type=float, help="per attempt: stop after this many seconds")
    ev.add_argument("--base-url", help="the model API's base URL (any OpenAI-compatible server)")
    ev.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="requests to the model API in flight at once, over all workers (default: no limit)",
    )
    ev.set_defaults(handler=run_eval_command)


def run_eval_command(args: argparse.Namespace) -> int:
    from lancer import __version__
    from lancer.agent.outdirs import fresh_dir
    from lancer.core.config import load_config
    from lancer.core.errors import ConfigError
    from lancer.core.secrets import redact
    from lancer.core.tables import print_figures
    from lancer.eval.driver import EvalPlan, run_eval
    from lancer.eval.executor import create_executor
    from lancer.eval.progress import make_progress, summary_figures
    from lancer.eval.store import EvalStore
    from lancer.eval.task_models import check_model_spec, check_priced
    from lancer.eval.taskset import load_task_set

    for flag, value in (("--attempts", args.attempts), ("--workers", args.workers)):
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1 (got {value})")
    if args.budget is not None and args.budget <= 0:
        raise ConfigError(f"--budget must be more than 0 USD (got {args.budget:g})")
    # The local executor's fork server imports what the attempts need while the tasks are
    # loaded and checked below; a Ray cluster is joined only once they have passed.
    executor = create_executor("local", workers=args.workers, model=args.model) if args.executor == "local" else None
    try:
        config = load_config(
            args.config,
            {
                "sandbox.kind": args.sandbox,
                "sandbox.image": args.image,
                "limits.max_steps": args.max_steps,
                "limits.cost_limit_usd": args.cost_limit,
                "limits.time_limit_s": args.time_limit,
                "model.base_url": args.base_url,
                "model.max_connections": args.max_connections,
                "sandbox.pull": True if args.pull else None,
            },
        )
        # The budget's refusals come first, an unknown price (which decides whether a budget can
        # work at all) before its flags, and both before a missing key or server, which making
        # the model reports.
        if args.budget is not None:
            check_priced(args.model, config)
            _check_budget(args.budget, config.limits.cost_limit_usd)
        ids = [i.strip() for i in args.ids.split(",") if i.strip()] if args.ids else None
        tasks = load_task_set(args.tasks, args.dataset, args.variant, args.set_name, ids, dataset_options(args))
        # As `lancer run` does, before any attempt: a task that cannot run would be counted a
        # failed fix. On a Ray cluster the images are the nodes' concern, not this machine's.
        if args.executor != "ray" or config.sandbox.kind == "local":
            from lancer.agent.preflight import check_runnable

            for item in tasks:
                check_runnable(item.task, config.sandbox)
        model = check_model_spec(args.model, [item.task for item in tasks], config)
        if args.budget is not None:
            check_priced(args.model, config, model)  # a plugin's model only tells once made
        if executor is None:
            executor = create_executor(args.executor, workers=args.workers, address=args.ray_address, model=args.model)
    except BaseException:
        if executor is not None:
            executor.close()
        raise
    out: Path = args.out or fresh_dir(Path("evals"), "eval")
    # Each task's environment is built on this machine before its attempts; on a Ray cluster
    # each node builds (and caches) its own when an attempt first needs it.
    prepare_envs = args.executor == "local"
    plan = EvalPlan(tasks, args.model, config, args.attempts, args.budget, prepare_envs)
    store = EvalStore(out)
    try:
        resuming = store.open(
            {
                "lancer_version": __version__,
                "command": " ".join(shlex.quote(a) for a in ["lancer", *sys.argv[1:]]),
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "model": args.model,
                "attempts": args.attempts,
                "tasks": [item.describe() for item in tasks],
                "config": config.model_dump(mode="json"),
                "executor": args.executor,
                "workers": args.workers,
                "budget": args.budget,
            }
        )
        if resuming:
            _clean_unfinished(store, config.sandbox.kind, console)
        console.print(
            f"[bold]eval[/]: {len(tasks)} task(s) x {args.attempts} attempt(s) with {model.name}, "
            f"{args.workers} worker(s) ({args.executor}), {config.sandbox.kind} sandbox"
            + (f", budget ${args.budget:,.2f}" if args.budget is not None else ""),
        )
        outcome = run_eval(plan, store, executor, make_progress(console))
    finally:
        executor.close()
        store.close()
    print_figures(console, summary_figures(outcome.summary))
    for error in outcome.summary["overall"]["error_details"][:10]:
        console.print(f"  error: {error['task_id']} #{error['attempt']}: {redact(error['reason'])}", markup=False)
    if outcome.status == "budget":
        console.print(f"stopped by the budget: {outcome.summary['overall']['not_run']} attempt(s) not run")
    console.print(f"eval directory: {out}", markup=False)
    if outcome.status == "interrupted":
        console.print(f"interrupted: run the same command with --out {out} to continue", markup=False)
        return 130
    return 0


def _check_budget(budget: float, cost_limit: float | None) -> None:
    from lancer.core.errors import ConfigError

    if cost_limit is None:
        raise ConfigError("--budget needs a cost limit per attempt (--cost-limit USD or limits.cost_limit_usd)")
    if cost_limit > budget:
        raise ConfigError(
            f"--budget ${budget:g} is less than one attempt's cost limit (${cost_limit:g}): "
            "no attempt could start; lower --cost-limit or raise --budget"
        )


def _clean_unfinished(store: Any, sandbox_kind: str, console: Any) -> None:
    """Attempts a killed eval left mid-way: stop them, remove their sandboxes and run dirs."""
    from lancer.core.errors import LancerError
    from lancer.sandbox import local

    finished = {(r["task_id"], r["attempt"]) for r in store.finished_rows()}
    cleared = store.clear_unfinished(finished)
    # Always: an attempt killed just after its result was written may still leave temp folders.
    removed = local.prune()
    if not cleared:
        return
    if sandbox_kind == "docker":
        from lancer.sandbox import docker

        with contextlib.suppress(LancerError):  # no engine: no containers of ours either
            removed += docker.prune()
    console.print(f"continuing: {cleared} unfinished attempt(s) will run again ({removed} sandbox(es) removed)")
