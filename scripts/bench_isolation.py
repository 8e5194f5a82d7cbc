"""What the local sandbox's isolation costs: per sandbox start and per command.

    .venv/bin/python scripts/bench_isolation.py [--runs 50] [--starts 20]

Prints medians (and 90th percentiles) of
  - a whole local sandbox start (copy of a small repo, git baseline, task environment,
    limits, isolation), with ``isolation: bwrap`` and ``none``;
  - its parts: the bubblewrap container and its init ready, the cgroups, the task's
    virtual environment;
  - one ``Sandbox.exec`` of ``true`` and one bash-tool command (the persistent shell),
    with and without isolation, beside a plain ``subprocess.run`` on the host.
The isolation's cost is the bwrap figure minus the none figure.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

from bench_docker import row, timed  # scripts/ is on sys.path when this file is run

from sandbox.base import SandboxSpec
from sandbox.bwrap import Binds, BwrapBox
from sandbox.limits import LimitSpec
from sandbox.limits import apply as apply_limits
from sandbox.local import LocalSandbox
from sandbox.shell import PersistentShell
from sandbox.taskenv import base_env, find_interpreter, make_task_env

Isolation = Literal["bwrap", "none"]


def start_and_close(repo: Path, isolation: Isolation, runs: int) -> tuple[list[float], list[float]]:
    """Seconds to start a local sandbox, and to close it, ``runs`` times."""
    starts, closes = [], []
    for _ in range(runs + 1):  # the first is a warm-up
        with contextlib.redirect_stderr(io.StringIO()):  # isolation none warns every time
            began = time.perf_counter()
            sandbox = LocalSandbox(SandboxSpec(repo_dir=repo, isolation=isolation))
            started = time.perf_counter()
            sandbox.close()
        starts.append(started - began)
        closes.append(time.perf_counter() - started)
    return starts[1:], closes[1:]


def per_command(repo: Path, isolation: Isolation, runs: int) -> None:
    with contextlib.redirect_stderr(io.StringIO()):
        sandbox = LocalSandbox(SandboxSpec(repo_dir=repo, isolation=isolation))
    shell = PersistentShell(sandbox)
    try:
        print(row(f"Sandbox.exec(['true']), isolation {isolation}", timed(lambda: sandbox.exec(["true"]), runs)))
        print(row(f"bash tool command 'true', isolation {isolation}", timed(lambda: shell.run("true", 30), runs)))
    finally:
        shell.close()
        sandbox.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="commands per method (default 50)")
    parser.add_argument("--starts", type=int, default=20, help="sandbox starts per method (default 20)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lancer-bench-") as tmp:
        repo = Path(tmp) / "repo"
        (repo / "src").mkdir(parents=True)
        (repo / "src" / "app.py").write_text("print('hi')\n")
        base = base_env(find_interpreter(None))
        print(f"{'median':>52} {'p90':>12}")

        isolations: tuple[Isolation, ...] = ("bwrap", "none")
        for isolation in isolations:
            starts, closes = start_and_close(repo, isolation, args.starts)
            print(row(f"sandbox start, isolation {isolation}", starts))
            print(row(f"sandbox close, isolation {isolation}", closes))

        work = Path(tmp) / "work"
        work.mkdir()
        binds = Binds([work], {"/opt/lancer-env": base.root}, str(work), network=False)
        python = str(base.interpreter.path)

        def box() -> None:
            started = BwrapBox(binds, python, Path(tmp))
            started.wait_ready()
            started.close()

        print(row("  bubblewrap + its init ready, and closed", timed(box, args.starts)))

        kinds = set()

        def limits() -> None:
            applied = apply_limits(f"lancer-bench-{time.monotonic_ns()}", LimitSpec(2**30, 1.0, 256))
            kinds.add(applied.describe().split(":")[0])
            applied.close()

        samples = timed(limits, args.starts)
        print(row(f"  limits ({', '.join(sorted(kinds))}), made and removed", samples))

        def task_env() -> None:
            venv = Path(tmp) / f"venv-{time.monotonic_ns()}"
            make_task_env(venv, base, base.root)
            shutil.rmtree(venv)

        print(row("  task environment (a venv on the cached base)", timed(task_env, args.starts)))

        print(row("plain subprocess.run(['true']) on the host", timed(lambda: subprocess.run(["true"]), args.runs)))
        for isolation in isolations:
            per_command(repo, isolation, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
