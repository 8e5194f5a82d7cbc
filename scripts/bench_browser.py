"""Latency of the browser tools on a bundled web task (examples/tasks/web-todo-delete).

    python scripts/bench_browser.py [--sandbox local|docker] [--clicks 30] [--user-tool-calls 5]

Prints the median (and p90) of:
- a ``browser`` click, from the call to its result (the click, the settle pause, the page's
  URL and title and new console errors); the first call, which starts the app and
  Chromium, is reported apart;
- a ``user_tool`` call: restart the app, run the hidden flows with tracing in a fresh
  Chromium, summarise the traces. Measured on the task as shipped (the bug is there, so
  the flows wait out their tests' timeouts) and after the fix.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lancer.core.config import BrowserConfig  # noqa: E402
from lancer.core.tasks import load_task  # noqa: E402
from lancer.sandbox import create_sandbox  # noqa: E402
from lancer.sandbox.app import App  # noqa: E402
from lancer.tools.browser import BrowserArgs, BrowserTool  # noqa: E402
from lancer.tools.user_tool import UserTool, UserToolArgs  # noqa: E402

TASK = ROOT / "examples" / "tasks" / "web-todo-delete"


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def summary(label: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    median = statistics.median(ordered)
    return f"{label:<44} median {median * 1000:8.1f} ms   p90 {p90 * 1000:8.1f} ms   (n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sandbox", choices=["local", "docker"], default="local")
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--user-tool-calls", type=int, default=5)
    args = parser.parse_args()

    task = load_task(TASK)
    assert task.app is not None and task.tests_dir is not None
    config = BrowserConfig()
    sandbox = create_sandbox(args.sandbox, task.sandbox_spec(for_agent=True))
    app = App(sandbox, task.app)
    with tempfile.TemporaryDirectory(prefix="lancer-bench-") as out:
        browser = BrowserTool(app, Path(out), True, config, 10_000)
        user_tool = UserTool(app, task.tests_dir, Path(out), True, config, 10_000)
        try:
            print(f"lancer browser benchmark: {TASK.name}, {args.sandbox} sandbox, settle_ms={config.settle_ms}")
            first = timed(lambda: browser.run(BrowserArgs(action="goto", url="/")))
            print(f"{'first call (starts the app and Chromium)':<44} {first * 1000:8.1f} ms")
            browser.run(BrowserArgs(action="fill", selector="#title", text="milk"))
            clicks = [
                timed(lambda: browser.run(BrowserArgs(action="click", selector="text=Add"))) for _ in range(args.clicks)
            ]
            print(summary("browser click (call to result)", clicks))
            shots = [timed(lambda: browser.run(BrowserArgs(action="screenshot"))) for _ in range(10)]
            print(summary("browser screenshot (call to result)", shots))

            calls = [timed(lambda: user_tool.run(UserToolArgs())) for _ in range(args.user_tool_calls)]
            print(summary("user_tool call, bug present (2 flows)", calls))
            script = f"{sandbox.workdir}/app.js"
            sandbox.write_file(script, sandbox.read_file(script).replace(b"todos[index + 1]", b"todos[index]"))
            calls = [timed(lambda: user_tool.run(UserToolArgs())) for _ in range(args.user_tool_calls)]
            print(summary("user_tool call, bug fixed (2 flows)", calls))
        finally:
            browser.close()
            user_tool.close()
            sandbox.close()


if __name__ == "__main__":
    main()
