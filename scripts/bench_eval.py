"""Throughput of ``lancer eval`` at 1, 4 and 8 workers, with a model that takes 1 s per turn.

    .venv/bin/python scripts/bench_eval.py [--workers 1,4,8] [--delay 1.0] [--tasks 4 --attempts 4]

Runs the bundled invoice-discount task (copied under 4 ids) 4 times each: 16 attempts, each
a real ``openai:gpt-4o`` run through the openai SDK against tests/fakes/llm_server.py on
127.0.0.1, in a local sandbox, graded by the hidden tests. The server answers each turn
after ``--delay`` seconds; the turns are the task's scripted solution (5 turns) after a
few cheap look-around commands, ``--turns`` in all (default 10: about 10 s of waiting on
the model per attempt, as an agent reading code first would; a real model's turns take
longer still). Prints per worker count: wall seconds, attempts per minute, the CPU
seconds the eval used, and the throughput ratio against the first count. Target: >= 3.5x
at 4 workers on a 2-core machine (waiting on the model dominates).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.llm_server import FakeLLMServer  # noqa: E402

TASK = ROOT / "examples" / "tasks" / "invoice-discount"
LOOK_AROUND = ["ls -la", "cat invoice.py", "git log --oneline | head -5", "grep -rn discount .", "cat README.md"]


def turns_file(path: Path, count: int) -> Path:
    """The task's solution after ``count - 5`` look-around turns."""
    solution = yaml.safe_load((TASK / "solution.yaml").read_text())["turns"]
    extra = [
        {"tool_calls": [{"name": "bash", "arguments": {"command": LOOK_AROUND[i % len(LOOK_AROUND)]}}]}
        for i in range(max(count - len(solution), 0))
    ]
    path.write_text(yaml.safe_dump({"turns": extra + solution}))
    return path


def make_tasks(root: Path, count: int) -> Path:
    for i in range(1, count + 1):
        dest = root / f"invoice-{i}"
        shutil.copytree(TASK, dest)
        data = yaml.safe_load((dest / "task.yaml").read_text())
        (dest / "task.yaml").write_text(yaml.safe_dump({**data, "id": f"invoice-{i}"}))
    return root


def run_eval(tasks: Path, out: Path, workers: int, attempts: int, base_url: str) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (the eval and its children), attempts resolved."""
    options = ["--attempts", str(attempts), "--workers", str(workers), "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "lancer.cli.main", "eval", str(tasks), "--model", "openai:gpt-4o", *options],
        cwd=ROOT,
        env={**os.environ, "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-bench"},
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"lancer eval failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    resolved = json.loads((out / "summary.json").read_text())["overall"]["resolved"]
    return wall, cpu, int(resolved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", default="1,4,8", help="worker counts to compare, the first is the baseline")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds the model takes per turn")
    parser.add_argument("--turns", type=int, default=10, help="model turns per attempt (at least the solution's 5)")
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--attempts", type=int, default=4)
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    total = args.tasks * args.attempts
    print(
        f"{total} attempts ({args.tasks} tasks x {args.attempts}), {args.turns} turns each, "
        f"the model answering in {args.delay:g} s per turn"
    )
    print(f"{'workers':>8} {'wall s':>8} {'attempts/min':>13} {'cpu s':>7} {'resolved':>9} {'vs 1st':>7}")
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        server = FakeLLMServer.from_turns_file(turns_file(Path(tmp) / "turns.yaml", args.turns))
        server.delay_s, server.per_conversation = args.delay, True
        tasks = make_tasks(Path(tmp) / "tasks", args.tasks)
        with server:
            baseline = None
            for workers in counts:
                out = Path(tmp) / f"eval-{workers}"
                wall, cpu, resolved = run_eval(tasks, out, workers, args.attempts, server.openai_base_url)
                baseline = baseline or wall
                print(
                    f"{workers:>8} {wall:>8.1f} {total / wall * 60:>13.1f} {cpu:>7.1f} {resolved:>5}/{total:<3} "
                    f"{baseline / wall:>6.2f}x",
                    flush=True,
                )


if __name__ == "__main__":
    main()
