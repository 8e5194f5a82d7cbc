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
  - the bash tool per command (local and docker) beside a bare ``bash -c``, a
    ``docker exec`` through the docker CLI and one exec through the docker SDK;
  - each sandbox's start (local, with its isolation, and docker): created, and the
    first command answered.
"""

from __future__ import annotations

import argparse
import itertools
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

from lancer.agent.runner import run_task  # noqa: E402
from lancer.core.config import load_config  # noqa: E402
from lancer.core.tasks import load_task  # noqa: E402
from lancer.models import create_model  # noqa: E402
from lancer.sandbox import SandboxSpec, create_sandbox  # noqa: E402
from lancer.tools.bash import BashArgs, BashTool  # noqa: E402

TASK = ROOT / "examples" / "tasks" / "invoice-discount"


def commands(n: int) -> list[str]:
    return [f"echo step-{i}" for i in range(n)]


def spread(marks: list[float]) -> tuple[float, float]:
    """(median, mean) seconds between successive time marks."""
    gaps = [b - a for a, b in itertools.pairwise(marks)]
    return statistics.median(gaps), statistics.fmean(gaps)


def lancer_per_step(n: int, tmp: Path) -> tuple[float, float, float]:
    """Seconds per step of a whole run of ``n`` echo steps, from the first step's end to the
    last's: the median and mean wall time, and the mean CPU time of lancer's own process."""
    turns: list[dict[str, Any]] = [{"tool_calls": [{"name": "bash", "arguments": {"command": c}}]} for c in commands(n)]
    turns.append({"tool_calls": [{"name": "submit", "arguments": {}}]})
    tmp.mkdir()
    script = tmp / f"turns-{n}.yaml"
    script.write_text(yaml.safe_dump({"turns": turns}))
    ends: list[float] = []
    cpu: list[float] = []

    def mark(_: object) -> None:
        ends.append(time.perf_counter())
        cpu.append(time.process_time())

    config = load_config(None, {"limits.max_steps": n + 1, "limits.cost_limit_usd": None})
    result = run_task(load_task(TASK), create_model(f"scripted:{script}"), config, tmp / f"run-{n}", mark)
    assert result["exit_status"] == "submitted" and result["steps"] == n + 1, result
    median, mean = spread(ends[:n])
    return median, mean, spread(cpu[:n])[1]


# Runs inside mini-swe-agent's own interpreter: its DefaultAgent, LocalEnvironment and
# DeterministicModel, on the same commands; prints seconds per step as JSON.
MINI_SWE_AGENT = textwrap.dedent(
    """
    import json, statistics, sys, tempfile, time
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
    gaps = [b - a for a, b in zip(starts[1:n], starts[2 : n + 1])]  # steps 2..n: the first warms up
    print(json.dumps([statistics.median(gaps), statistics.fmean(gaps)]))
    """
)


def mini_swe_agent_per_step(python: str, n: int) -> tuple[float, float] | str:
    child = subprocess.run([python, "-c", MINI_SWE_AGENT, str(n)], capture_output=True, text=True, timeout=3600)
    if child.returncode != 0:
        return f"failed: {child.stderr.strip().splitlines()[-1] if child.stderr.strip() else child.returncode}"
    median, mean = json.loads(child.stdout.splitlines()[-1])
    return float(median), float(mean)


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and 90th percentile seconds of ``fn()`` over ``runs`` calls, after a warm-up call."""
    fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.9))]


def per_command(kind: str, runs: int, tmp: Path) -> dict[str, tuple[float, float]]:
    """The bash tool's time per ``echo hello`` (and in docker, an exec's), and the sandbox's start."""
    repo = tmp / f"repo-{kind}"
    repo.mkdir()
    (repo / "README.md").write_text("benchmark\n")
    figures: dict[str, tuple[float, float]] = {}
    started = time.perf_counter()
    sandbox = create_sandbox(kind, SandboxSpec(repo_dir=repo, label="bench"))
    created = time.perf_counter() - started
    tool = BashTool(sandbox, default_timeout=60, max_timeout=60, max_output_chars=10_000)
    try:
        tool.run(BashArgs(command="echo hello"))
        figures["start"] = created, time.perf_counter() - started
        if not runs:
            return figures
        figures[f"bash tool ({kind})"] = timed(lambda: tool.run(BashArgs(command="echo hello")), runs)
        if kind == "docker":
            figures["one exec through the docker SDK"] = timed(lambda: sandbox.exec(["sh", "-c", "echo hello"]), runs)
            if docker_cli := shutil.which("docker"):
                where = ["-u", sandbox._user, "-w", sandbox.workdir, sandbox._cid]  # type: ignore[attr-defined]
                argv = [docker_cli, "exec", *where, "sh", "-c", "echo hello"]
                run_cli = lambda: subprocess.run(argv, check=True, capture_output=True)  # noqa: E731
                figures["docker exec (the docker CLI)"] = timed(run_cli, runs)
    finally:
        tool.close()
        sandbox.close()
    return figures


def sandbox_start(kind: str, times: int, tmp: Path) -> tuple[float, float]:
    """Median seconds to a sandbox of ``kind``, and to its first bash result."""
    starts = []
    for i in range(times):
        (tmp / f"start-{kind}-{i}").mkdir()
        starts.append(per_command(kind, 0, tmp / f"start-{kind}-{i}")["start"])
    return statistics.median(s[0] for s in starts), statistics.median(s[1] for s in starts)


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
        print(f"per step, scripted model issuing N `echo` commands, local sandbox (ms; median of {args.repeat} runs)")
        print(f"{'steps':>6} {'lancer median (mean)':>22} {'lancer CPU':>11} {'mini-swe-agent median (mean)':>30}")
        for n in lengths:
            runs = [lancer_per_step(n, tmp / f"{n}-{i}") for i in range(args.repeat)]
            median, mean, cpu = (statistics.median(r[i] for r in runs) * 1000 for i in (0, 1, 2))
            theirs: str = "not measured"
            if args.mini_swe_agent:
                found = mini_swe_agent_per_step(args.mini_swe_agent, n) if n <= args.mini_max_steps else "skipped"
                theirs = found if isinstance(found, str) else f"{found[0] * 1000:.2f} ({found[1] * 1000:.2f})"
            print(f"{n:>6} {f'{median:.3f} ({mean:.3f})':>22} {cpu:11.3f} {theirs:>30}", flush=True)

        print(f"\nper command, `echo hello`, {args.runs} runs: median and 90th percentile (ms)")
        bash_c = timed(lambda: subprocess.run(["bash", "-c", "echo hello"], check=True, capture_output=True), args.runs)
        rows = {"bare bash -c (a new process)": bash_c}
        for kind in ["local"] + ([] if args.no_docker else ["docker"]):
            rows.update((k, v) for k, v in per_command(kind, args.runs, tmp).items() if k != "start")
        for what, (median, p90) in rows.items():
            print(f"  {what:<36} {median * 1000:8.3f} {p90 * 1000:8.3f}", flush=True)
        print()
        for kind, times in [("local", 20)] + ([] if args.no_docker else [("docker", 5)]):
            created, first = sandbox_start(kind, times, tmp)
            print(f"{kind} sandbox start (median of {times}): created {created:.3f} s, first result {first:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
