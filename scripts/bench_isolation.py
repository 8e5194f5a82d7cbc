"""What the local sandbox's isolation costs: per sandbox start and per command.

    .venv/bin/python scripts/bench_isolation.py [--runs 50] [--starts 20]

Prints medians (and 90th percentiles) of
  - a whole local sandbox start (copy of a small repo, git baseline, task environment,
    limits, isolation), with ``isolation: bwrap`` and ``none``;
  - its parts: the bubblewrap container and its init ready, the cgroups, the task's
    virtual environment;
  - one ``Sandbox.exec`` of ``true`` and one bash-tool command (the persistent shell),
    with and without isolation, beside a plain ``subprocess.run`` on the host.
The isolation's cost is the bwrap figure minus the none figure, taken pair by pair (bwrap
and none run in turn), so a busy machine's drift cancels out.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from lancer.core.sandbox import SandboxSpec
from lancer.sandbox.bwrap import Binds, BwrapBox
from lancer.sandbox.limits import LimitSpec
from lancer.sandbox.limits import apply as apply_limits
from lancer.sandbox.local import LocalSandbox
from lancer.sandbox.shell import PersistentShell
from lancer.sandbox.taskenv import base_env, find_interpreter, make_task_env

Isolation = Literal["bwrap", "none"]
ISOLATIONS: tuple[Isolation, ...] = ("bwrap", "none")


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm-up: first use pages things in
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


def sandbox(repo: Path, isolation: Isolation) -> LocalSandbox:
    with contextlib.redirect_stderr(io.StringIO()):  # isolation none warns every time
        return LocalSandbox(SandboxSpec(repo_dir=repo, isolation=isolation))


def paired(measure: Callable[[Isolation], float], runs: int) -> dict[Isolation, list[float]]:
    """``measure`` for bwrap and none in turn, ``runs`` times after a warm-up: on a busy
    machine the pair-by-pair difference stays meaningful where the medians drift."""
    samples: dict[Isolation, list[float]] = {"bwrap": [], "none": []}
    for run in range(runs + 1):
        for isolation in ISOLATIONS:
            seconds = measure(isolation)
            if run:
                samples[isolation].append(seconds)
    return samples


def report(what: str, samples: dict[Isolation, list[float]]) -> None:
    for isolation in ISOLATIONS:
        print(row(f"{what}, {isolation}", samples[isolation]))
    cost = [b - n for b, n in zip(samples["bwrap"], samples["none"], strict=True)]
    print(row("  isolation's cost (pairwise bwrap - none)", cost))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="commands per method (default 100)")
    parser.add_argument("--starts", type=int, default=30, help="sandbox starts per method (default 30)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lancer-bench-") as tmp:
        repo = Path(tmp) / "repo"
        (repo / "src").mkdir(parents=True)
        (repo / "src" / "app.py").write_text("print('hi')\n")
        base = base_env(find_interpreter(None))
        print(f"{'median':>52} {'p90':>12}")

        closes: dict[Isolation, list[float]] = {"bwrap": [], "none": []}

        def start(isolation: Isolation) -> float:
            began = time.perf_counter()
            started = sandbox(repo, isolation)
            seconds = time.perf_counter() - began
            began = time.perf_counter()
            started.close()
            closes[isolation].append(time.perf_counter() - began)
            return seconds

        report("sandbox start", paired(start, args.starts))
        report("sandbox close", {k: v[1:] for k, v in closes.items()})

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

        sandboxes = {isolation: sandbox(repo, isolation) for isolation in ISOLATIONS}
        shells = {isolation: PersistentShell(sandboxes[isolation]) for isolation in ISOLATIONS}
        try:

            def exec_true(isolation: Isolation) -> float:
                began = time.perf_counter()
                sandboxes[isolation].exec(["true"])
                return time.perf_counter() - began

            def bash_true(isolation: Isolation) -> float:
                began = time.perf_counter()
                shells[isolation].run("true", 30)
                return time.perf_counter() - began

            print(row("plain subprocess.run(['true']) on the host", timed(lambda: subprocess.run(["true"]), args.runs)))
            report("Sandbox.exec(['true'])", paired(exec_true, args.runs))
            report("bash tool command 'true'", paired(bash_true, args.runs))
        finally:
            for isolation in ISOLATIONS:
                shells[isolation].close()
                sandboxes[isolation].close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
