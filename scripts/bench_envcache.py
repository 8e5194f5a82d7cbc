"""How fast an attempt of a real-repo task starts and is graded, with its environment cached.

    .venv/bin/python scripts/bench_envcache.py [--runs 3] [--tasks slugify-uppercase,humanize-fractional]
                                               [--sandbox local|docker]

For each bundled real-repo task (their setup installs from PyPI: needs the package index),
with the oracle model (the upstream fix):

  - cold: the task's environment is not cached (a private, empty cache of task
    environments; the base environment is the machine's), so the attempt runs the setup;
  - warm: the same attempt again, ``--runs`` times (median, min, max): the environment
    is copied from the cache.

It prints, per run, the time from the attempt's start to the agent's first step, to the
verdict, and result.json's ``timing`` (setup, agent, grading); and how long the hidden
tests themselves take (the test command alone, in a warm sandbox with the fix applied),
which grading is measured against. ``--sandbox docker`` does the same in docker, where the
setup is kept as an image committed once (cold: the task's committed images are removed
first).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lancer.agent.runner import run_task  # noqa: E402
from lancer.core.config import RunConfig, load_config  # noqa: E402
from lancer.core.errors import LancerError  # noqa: E402
from lancer.core.tasks import REPORT_ENV, Task, load_task  # noqa: E402
from lancer.models import create_model  # noqa: E402
from lancer.sandbox import create_sandbox  # noqa: E402
from lancer.sandbox.git import apply_patch  # noqa: E402
from lancer.sandbox.taskenv import cache_dir  # noqa: E402

TASKS = ("slugify-uppercase", "humanize-fractional")


def attempt(task: Task, config: RunConfig, out: Path) -> dict[str, Any]:
    """One oracle run: seconds to the first step and to the verdict, and its timing."""
    started = time.monotonic()
    first_step: list[float] = []
    model = create_model("oracle", config.model, task)
    result = run_task(task, model, config, out, on_step=lambda record: first_step.append(time.monotonic()))
    if result["grade"] is None or not result["resolved"]:
        raise LancerError(f"{task.id}: the oracle did not resolve it: {result['detail']} {result['grade']}")
    return {
        "first_step": first_step[0] - started,
        "verdict": time.monotonic() - started,
        **{k: v for k, v in result["timing"].items() if k != "environment"},
        "environment": result["timing"]["environment"],
    }


def hidden_tests_alone(task: Task, config: RunConfig) -> float:
    """Seconds the hidden test command takes by itself, the fix applied, in a warm sandbox."""
    assert task.folder is not None and task.tests_dir is not None
    sandbox = create_sandbox(config.sandbox.kind, task.sandbox_spec(for_agent=False, config=config.sandbox))
    try:
        if (task.folder / "solution.patch").is_file():
            apply_patch(sandbox, (task.folder / "solution.patch").read_bytes())
        sandbox.copy_in(task.tests_dir, f"{sandbox.workdir}/tests")
        command = task.test_command or task.default_test_command()
        report = {REPORT_ENV: f"{sandbox.workdir}/.bench-report.xml"}
        started = time.monotonic()
        sandbox.exec(["bash", "-c", command], timeout=600, env=report)
        return time.monotonic() - started
    finally:
        sandbox.close()


def remove_env_images(task: Task) -> None:
    """Docker's cold start: the task's committed setup images gone (lancer.sandbox.docker.envimage)."""
    from lancer.sandbox.docker.engine import ENV_IMAGE_LABEL, MANAGED_LABEL, connect

    client = connect()
    try:
        labels = [f"{MANAGED_LABEL}={ENV_IMAGE_LABEL}", f"lancer.task={task.id}"]
        for image in client.api.images(filters={"label": labels}):
            client.api.remove_image(image["Id"], force=True)
    finally:
        client.close()


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="warm attempts per task (default 3)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="bundled task names, comma-separated")
    parser.add_argument("--sandbox", choices=["local", "docker"], default="local")
    args = parser.parse_args()
    config = load_config(None, {"sandbox.kind": args.sandbox})
    base_envs = cache_dir() / "envs"
    base_envs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-envcache-") as tmp:
        # A private cache of task environments, so "cold" is cold; the base environments are shared.
        os.environ["LANCER_CACHE_DIR"] = str(Path(tmp) / "cache")
        (Path(tmp) / "cache").mkdir()
        (Path(tmp) / "cache" / "envs").symlink_to(base_envs)
        print(f"{args.sandbox} sandbox, load average {os.getloadavg()[0]:.1f}")
        folders = [ROOT / "examples" / "tasks" / name for name in args.tasks.split(",")]
        for folder in folders:
            task, name = load_task(folder), folder.name
            if args.sandbox == "docker":
                remove_env_images(task)
            try:
                runs = [attempt(task, config, Path(tmp) / f"{name}-{i}") for i in range(args.runs + 1)]
                tests_alone = hidden_tests_alone(task, config)
            except LancerError as e:
                print(f"{name}: not measured: {e}")
                continue
            cold, warm = runs[0], runs[1:]
            print(f"\n{name}  (the hidden tests alone: {tests_alone:.2f} s)")
            print(f"  cold ({cold['environment']}):")
            print(f"    first step {cold['first_step']:.2f} s, verdict {cold['verdict']:.2f} s")
            print(
                f"    setup {cold['setup_s']:.2f} s, agent {cold['agent_s']:.2f} s, grading {cold['grading_s']:.2f} s"
            )
            print(f"  warm, {len(warm)} runs ({warm[-1]['environment']}):")
            for label, key in (("first step", "first_step"), ("verdict", "verdict"), ("setup", "setup_s")):
                print(f"    {label:<11}{spread([r[key] for r in warm])}")
            grading = [r["grading_s"] for r in warm]
            over = statistics.median(grading) - tests_alone
            print(f"    {'grading':<11}{spread(grading)}  = the tests alone + {over:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
