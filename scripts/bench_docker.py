"""Latency of the bash tool in the docker sandbox, beside a plain ``docker exec``.

    .venv/bin/python scripts/bench_docker.py [--runs 100] [--command "echo hello"]

Prints the median (and 90th percentile) per-command time of
  - the bash tool (one persistent shell in the container, PersistentShell),
  - ``docker exec CONTAINER sh -c COMMAND`` run by the docker CLI, as a person would,
  - one exec through the docker SDK (what ``Sandbox.exec`` does),
and the time from asking for a sandbox to the bash tool's first result. Needs a running
engine and lancer's base image (``bash scripts/docker-up.sh``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sandbox.base import SandboxSpec
from sandbox.docker import DockerSandbox
from tools.bash import BashArgs, BashTool


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm-up: first use opens connections and pages things in
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def row(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"{name:<42} {statistics.median(ms):9.2f} ms {p90:9.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="commands per method (default 100)")
    parser.add_argument("--command", default="echo hello", help="the command timed (default: echo hello)")
    args = parser.parse_args()
    docker_cli = shutil.which("docker")

    with tempfile.TemporaryDirectory(prefix="lancer-bench-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        (repo / "README.md").write_text("benchmark\n")

        started = time.perf_counter()
        sandbox = DockerSandbox(SandboxSpec(repo_dir=repo, label="bench"))
        created = time.perf_counter()
        tool = BashTool(sandbox, default_timeout=60, max_timeout=60, max_output_chars=10_000)
        try:
            first = tool.run(BashArgs(command=args.command))
            first_result = time.perf_counter()
            assert not first.is_error, first.output

            shell = timed(lambda: tool.run(BashArgs(command=args.command)), args.runs)
            sdk = timed(lambda: sandbox.exec(["sh", "-c", args.command]), args.runs)
            cli: list[float] = []
            if docker_cli:
                where = ["-u", sandbox._user, "-w", sandbox.workdir, sandbox._cid]
                argv = [docker_cli, "exec", *where, "sh", "-c", args.command]
                cli = timed(lambda: subprocess.run(argv, check=True, capture_output=True), args.runs)
        finally:
            tool.close()
            sandbox.close()

    print(f"command: {args.command!r}, {args.runs} runs each; median and 90th percentile")
    print(row("bash tool (persistent shell in docker)", shell))
    if cli:
        print(row("plain `docker exec` (docker CLI)", cli))
    print(row("one exec through the docker SDK", sdk))
    print(f"{'sandbox created (container + repo + baseline)':<42} {(created - started) * 1000:9.0f} ms")
    print(f"{'... to the bash tool first result':<42} {(first_result - started) * 1000:9.0f} ms")
    if cli:
        faster = statistics.median(cli) / statistics.median(shell)
        print(f"the persistent shell is {faster:.0f}x faster per command than docker exec")
    return 0


if __name__ == "__main__":
    sys.exit(main())
