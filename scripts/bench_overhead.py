"""lancer's own cost per step and per command, beside mini-swe-agent, docker exec and bash -c.

    .venv/bin/python scripts/bench_overhead.py [--steps 50,200,800,5000] [--runs 200]
                                               [--mini-swe-agent PYTHON] [--no-docker]

Prints
  - lancer's time per step with a scripted model issuing N distinct ``echo`` commands in
    the local sandbox (a whole ``run_task``; the step time is the span from the first
    step's end to the last one's, over N - 1), for each N;
  - mini-swe-agent's on the same commands, when PYTHON (an interpreter with
    mini-swe-agent installed; never a lancer dependency) is given: e.g.
    ``python3 -m venv /tmp/msa && /tmp/msa/bin/pip install mini-swe-agent``;
  - the bash tool per command (local and docker) beside a bare ``bash -c`` and a
    ``docker exec`` through the docker CLI;
  - the docker sandbox's start: created, and the first command answered.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.config import load_config  # noqa: E402
from agent.models import create_model  # noqa: E402
from agent.runner import run_task  # noqa: E402
from agent.tasks import load_task  # noqa: E402
from sandbox import SandboxSpec, create_sandbox  # noqa: E402
from tools.bash import BashArgs, BashTool  # noqa: E402

TASK = ROOT / "examples" / "tasks" / "invoice-discount"


def commands(n: int) -> list[str]:
    return [f"echo step-{i}" for i in range(n)]


def lancer_per_step(n: int, tmp: Path) -> float:
    """Seconds per step of a whole run of ``n`` echo steps (first step's end to the last's)."""
    turns: list[dict[str, Any]] = [{"tool_calls": [{"name": "bash", "arguments": {"command": c}}]} for c in commands(n)]
    turns.append({"tool_calls": [{"name": "submit", "arguments": {}}]})
    tmp.mkdir()
    script = tmp / f"turns-{n}.yaml"
    script.write_text(yaml.safe_dump({"turns": turns}))
    ends: list[float] = []
    config = load_config(None, {"limits.max_steps": n + 1, "limits.cost_limit_usd": None})
    result = run_task(
        load_task(TASK),
        create_model(f"scripted:{script}"),
        config,
        tmp / f"run-{n}",
        lambda _: ends.append(time.perf_counter()),
    )
    assert result["exit_status"] == "submitted" and result["steps"] == n + 1, result
    return (ends[n - 1] - ends[0]) / (n - 1)


# Runs inside mini-swe-agent's own interpreter: its DefaultAgent, LocalEnvironment and
# DeterministicModel, on the same commands; prints seconds per step as JSON.
MINI_SWE_AGENT = textwrap.dedent(
    """
    import json, sys, tempfile, time
    from pathlib import Path
    from minisweagent.agents.default import DefaultAgent
    from minisweagent.environments.local import LocalEnvironment
    from minisweagent.models.test_models import DeterministicModel

    n = int(sys.argv[1])
    def turn(command):
        return {"role": "assistant", "content": "next", "extra": {"actions": [{"command": command}]}}
    outputs = [turn(f"echo step-{i}") for i in range(n)] + [turn("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")]
    starts = []
    class Timed(DeterministicModel):
        def query(self, *args, **kwargs):
            starts.append(time.perf_counter())
            return super().query(*args, **kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        agent = DefaultAgent(
            Timed(outputs=outputs),
            LocalEnvironment(cwd=tmp),
            system_template="You are a benchmark.",
            instance_template="{{task}}",
            step_limit=n + 5,
            cost_limit=0,
            output_path=Path(tmp) / "trajectory.json",
        )
        status = agent.run("echo the steps").get("exit_status")
    assert status == "Submitted", status
    print(json.dumps((starts[n] - starts[1]) / (n - 1)))
    """
)


def mini_swe_agent_per_step(python: str, n: int) -> float | str:
    child = subprocess.run([python, "-c", MINI_SWE_AGENT, str(n)], capture_output=True, text=True, timeout=3600)
    if child.returncode != 0:
        return f"failed: {child.stderr.strip().splitlines()[-1] if child.stderr.strip() else child.returncode}"
    return float(json.loads(child.stdout.splitlines()[-1]))


def timed(fn: Callable[[], object], runs: int) -> float:
    """Median seconds of ``fn()`` over ``runs`` calls, after one warm-up call."""
    fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def per_command(kind: str, runs: int, tmp: Path) -> dict[str, float]:
    repo = tmp / f"repo-{kind}"
    repo.mkdir()
    (repo / "README.md").write_text("benchmark\n")
    figures: dict[str, float] = {}
    started = time.perf_counter()
    sandbox = create_sandbox(kind, SandboxSpec(repo_dir=repo, label="bench"))
    figures["created"] = time.perf_counter() - started
    tool = BashTool(sandbox, default_timeout=60, max_timeout=60, max_output_chars=10_000)
    try:
        tool.run(BashArgs(command="echo hello"))
        figures["first result"] = time.perf_counter() - started
        if not runs:
            return figures
        figures["bash tool"] = timed(lambda: tool.run(BashArgs(command="echo hello")), runs)
        docker_cli = shutil.which("docker")
        if kind == "docker" and docker_cli:
            where = ["-u", sandbox._user, "-w", sandbox.workdir, sandbox._cid]  # type: ignore[attr-defined]
            argv = [docker_cli, "exec", *where, "sh", "-c", "echo hello"]
            figures["docker exec (CLI)"] = timed(lambda: subprocess.run(argv, check=True, capture_output=True), runs)
    finally:
        tool.close()
        sandbox.close()
    return figures


def docker_start(times: int, tmp: Path) -> tuple[float, float]:
    """Median seconds to a docker sandbox, and to its first bash result."""
    created, first = [], []
    for i in range(times):
        (tmp / f"start-{i}").mkdir()
        figures = per_command("docker", 0, tmp / f"start-{i}")
        created.append(figures["created"])
        first.append(figures["first result"])
    return statistics.median(created), statistics.median(first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="50,200,800,5000", help="run lengths, comma-separated")
    parser.add_argument("--runs", type=int, default=200, help="commands per per-command figure")
    parser.add_argument("--mini-swe-agent", metavar="PYTHON", help="an interpreter that has mini-swe-agent")
    parser.add_argument("--repeat", type=int, default=3, help="runs per length; the median is shown (default 3)")
    parser.add_argument(
        "--mini-max-steps", type=int, default=800, help="longest mini-swe-agent run (it slows as it grows)"
    )
    parser.add_argument("--no-docker", action="store_true", help="skip the docker figures")
    args = parser.parse_args()
    lengths = [int(x) for x in args.steps.split(",")]

    with tempfile.TemporaryDirectory(prefix="lancer-bench-") as name:
        tmp = Path(name)
        print(f"per step, scripted model issuing N `echo` commands, local sandbox (ms, median of {args.repeat})")
        print(f"{'steps':>6} {'lancer':>10} {'mini-swe-agent':>15}")
        for n in lengths:
            ours = statistics.median(lancer_per_step(n, tmp / f"{n}-{i}") for i in range(args.repeat)) * 1000
            theirs: float | str = "not measured"
            if args.mini_swe_agent:
                theirs = mini_swe_agent_per_step(args.mini_swe_agent, n) if n <= args.mini_max_steps else "skipped"
            shown = f"{theirs * 1000:15.2f}" if isinstance(theirs, float) else f"{theirs:>15}"
            print(f"{n:>6} {ours:10.3f} {shown}", flush=True)

        print("\nper command, `echo hello` (median ms)")
        bash_c = timed(lambda: subprocess.run(["bash", "-c", "echo hello"], check=True, capture_output=True), args.runs)
        print(f"  {'bare bash -c (a new process)':<36} {bash_c * 1000:8.3f}")
        for kind in ["local"] + ([] if args.no_docker else ["docker"]):
            figures = per_command(kind, args.runs, tmp)
            for what in ("bash tool", "docker exec (CLI)"):
                if what in figures:
                    print(f"  {what + ' (' + kind + ')':<36} {figures[what] * 1000:8.3f}", flush=True)
        if not args.no_docker:
            created, first = docker_start(5, tmp)
            print(f"\ndocker sandbox start (median of 5): created {created:.3f} s, first result {first:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
