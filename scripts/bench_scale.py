"""``lancer eval`` at scale: throughput, memory and CPU per attempt at 1, 8, 32 and 64 workers.

    .venv/bin/python scripts/bench_scale.py [--workers 1,8,32,64] [--attempts 128] [--baseline-attempts 8]

Each attempt is a real ``openai:gpt-4o`` run through the openai SDK against
tests/fakes/llm_server.py on 127.0.0.1, answering every turn after ``--delay`` seconds (1 s):
``--turns`` turns (10: nine cheap ``bash`` commands, then ``submit``) of the bundled manager
task in a local sandbox, so grading is a comparison and costs nothing. The first worker
count runs ``--baseline-attempts`` attempts only (1 worker x 128 attempts x 10 s would take
over 20 minutes): its rate stands for it, as the output says.

Per worker count it prints: wall seconds, attempts per second, the speed-up over the first
count (and the same from the first attempt's start to the last one's end, which leaves out
the command's start-up and shutdown: seconds each, more on a loaded machine); the peak of
attempts in flight and, at that moment, the resident memory (RSS) of lancer's own
processes (the eval, its worker processes and the fork server they are forked from: Python
processes running lancer; a forked worker's RSS counts the pages it shares) divided by
the attempts in flight, and apart from it the sandboxes' processes (bubblewrap, its init,
the agent's shell); the CPU seconds per attempt of everything the eval started (lancer,
sandboxes, the agent's commands; no tests run: manager tasks are graded by the chosen
proposal). Targets (issue 16): at 64 workers >= 40x the throughput of 1 worker;
<= 30 MB of lancer RSS per attempt in flight.

``--pythonpath DIR`` runs the eval from another lancer checkout (e.g. the commit before the
worker pool, to measure the old child-per-attempt executor).
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
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.llm_server import FakeLLMServer  # noqa: E402

TASK = ROOT / "examples" / "tasks" / "manager-date-format"
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Peak:
    in_flight: int = 0
    lancer_mb: float = 0.0
    sandbox_mb: float = 0.0
    lancer_processes: int = 0


def turns_file(path: Path, count: int) -> Path:
    # The same usage every turn (the server's made-up figures grow with each turn it serves,
    # and would reach the cost limit over hundreds of attempts).
    usage = {"input_tokens": 2000, "output_tokens": 50}
    look = [
        {"tool_calls": [{"name": "bash", "arguments": {"command": f"echo look {i} && ls"}}], "usage": usage}
        for i in range(count - 1)
    ]
    submit = {"tool_calls": [{"name": "submit", "arguments": {"proposal_id": 2}}], "usage": usage}
    path.write_text(yaml.safe_dump({"turns": [*look, submit]}))
    return path


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def rss_mb(pid: int) -> tuple[float, bool]:
    """(RSS in MB, whether it is a lancer Python process)."""
    try:
        rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError, ValueError):
        return 0.0, False
    is_lancer = b"python" in cmdline.split(b"\0")[0] and b"lancer" in cmdline
    return rss_pages * PAGE / 1e6, is_lancer


def in_flight(out: Path) -> int:
    """Attempts started (a trajectory) and not finished (no result.json)."""
    return sum(
        1 for run in out.glob("runs/*/*") if (run / "trajectory.jsonl").exists() and not (run / "result.json").exists()
    )


def sample(eval_pid: int, out: Path, peak: Peak, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        running = in_flight(out)
        if running == 0 or running < peak.in_flight:
            continue
        lancer = sandbox = 0.0
        count = 0
        for pid in descendants(eval_pid):
            mb, is_lancer = rss_mb(pid)
            if is_lancer:
                lancer, count = lancer + mb, count + 1
            else:
                sandbox += mb
        if running > peak.in_flight or lancer > peak.lancer_mb:
            peak.in_flight, peak.lancer_mb, peak.sandbox_mb, peak.lancer_processes = running, lancer, sandbox, count


def run_span(out: Path) -> float:
    """Seconds from the first attempt's start to the last one's end: the eval's own start-up
    (imports, checks, worker processes) and shutdown left out."""
    starts, ends = [], []
    for run in out.glob("runs/*/*"):
        stamp = (run / "lancer.log").read_text().split(" ", 1)[0]
        starts.append(datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp())
        ends.append((run / "result.json").stat().st_mtime)
    return max(ends) - min(starts)


def run_eval(out: Path, workers: int, attempts: int, base_url: str, pythonpath: str) -> tuple[float, float, Peak]:
    """Wall seconds, CPU seconds (the eval and everything it started), the memory peak."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    argv = [sys.executable, "-m", "lancer.cli.main", "eval", str(TASK), "--model", "openai:gpt-4o"]
    options = ["--attempts", str(attempts), "--workers", str(workers), "--out", str(out)]
    env = {**os.environ, "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-bench", "PYTHONPATH": pythonpath}
    # Not cwd=ROOT: ``python -m`` puts the working directory before PYTHONPATH.
    proc = subprocess.Popen([*argv, *options], cwd=out.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak, stop = Peak(), threading.Event()
    sampler = threading.Thread(target=sample, args=(proc.pid, out, peak, stop), daemon=True)
    sampler.start()
    _, stderr = proc.communicate()
    stop.set()
    sampler.join()
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"lancer eval failed ({proc.returncode}):\n{stderr.decode()[-2000:]}")
    overall = json.loads((out / "summary.json").read_text())["overall"]
    if overall["resolved"] != attempts:
        sys.exit(f"only {overall['resolved']} of {attempts} attempts resolved: {overall.get('error_details')}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", default="1,8,32,64", help="worker counts; the first is the baseline")
    parser.add_argument("--attempts", type=int, default=128)
    parser.add_argument("--baseline-attempts", type=int, default=8, help="attempts of the first worker count")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds the model takes per turn")
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--pythonpath", default=str(ROOT), help="the lancer checkout the eval runs from")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    print(f"{args.turns} turns per attempt, the model answering in {args.delay:g} s per turn")
    print(f"lancer from {args.pythonpath}")
    header = f"{'workers':>7} {'attempts':>8} {'wall s':>7} {'att/s':>6} {'speed-up':>8} {'peak in flight':>14}"
    print(f"{header} {'lancer MB/att':>13} {'(procs)':>7} {'sandbox MB/att':>14} {'cpu s/att':>9} {'run att/s':>9}")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        server = FakeLLMServer.from_turns_file(turns_file(Path(tmp) / "turns.yaml", args.turns))
        server.delay_s, server.per_conversation = args.delay, True
        with server:
            base_rate = base_run_rate = None
            for i, workers in enumerate(counts):
                attempts = args.baseline_attempts if i == 0 else args.attempts
                out = Path(tmp) / f"eval-{workers}"
                wall, cpu, peak = run_eval(out, workers, attempts, server.openai_base_url, args.pythonpath)
                run_rate = attempts / run_span(out)
                shutil.rmtree(out, ignore_errors=True)
                rate = attempts / wall
                base_rate, base_run_rate = base_rate or rate, base_run_rate or run_rate
                per = max(peak.in_flight, 1)
                print(
                    f"{workers:>7} {attempts:>8} {wall:>7.1f} {rate:>6.3f} {rate / base_rate:>7.1f}x "
                    f"{peak.in_flight:>14} "
                    f"{peak.lancer_mb / per:>13.1f} {peak.lancer_processes:>7} {peak.sandbox_mb / per:>14.1f} "
                    f"{cpu / attempts:>9.2f} {run_rate:>6.3f} ({run_rate / base_run_rate:.1f}x)",
                    flush=True,
                )
    print("att/s: over the whole command; run att/s: from the first attempt's start to the last one's end")
    if counts and args.baseline_attempts != args.attempts:
        print(f"(the {counts[0]}-worker row ran {args.baseline_attempts} attempts; its rate is the baseline)")


if __name__ == "__main__":
    main()
