"""``user_tool``: run the task's hidden browser flow against the current code, as SWE-Lancer does.

The app is restarted (so it runs the code as it is now), the hidden tests run on the host
with tracing (``lancer.browser.webtests``, ``lancer.browser.fixtures``), and the model gets what a
user going through that flow would have seen: the steps, the console errors, the last
page's text and a screenshot of it. Never the verdict: the test process's exit code and
output are discarded, the tester's checks are cut out of the trace (``lancer.tools.trace``), and
the test source never leaves the task folder. The hidden tests are never copied into the
sandbox: they run from a scratch copy on the host.

Kept in ``RUN_DIR/user_tool/call-N/``: per flow, the sanitized trace (open it with
``playwright show-trace``), the final screenshot and the final page text.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

from lancer.browser.webtests import run_browser_tests
from lancer.core.config import BrowserConfig
from lancer.core.text import truncate_middle
from lancer.core.tool import ToolArgs, ToolError, ToolResult
from lancer.sandbox.app import App, AppError
from lancer.tools.trace import sanitize, user_actions

_MAX_STEPS_SHOWN = 60


class UserToolArgs(ToolArgs):
    pass


class UserTool:
    name: ClassVar[str] = "user_tool"
    description: ClassVar[str] = (
        "Have a user go through the flow of the bug report in a browser, against your current "
        "code (the app is restarted first). You get what they saw: each step they took, "
        "console errors, the text of the last page and a screenshot of it. It does not say "
        "whether the bug is fixed: judge that from what you see."
    )
    Args: ClassVar[type[ToolArgs]] = UserToolArgs

    def __init__(
        self,
        app: App,
        tests_dir: Path,
        out_dir: Path,
        supports_images: bool,
        config: BrowserConfig,
        max_output_chars: int,
        test_command: str | None = None,
    ) -> None:
        self._app = app
        self._tests_dir = tests_dir
        self._out_dir = out_dir / "user_tool"
        self._supports_images = supports_images
        self._config = config
        self._max_output = max_output_chars
        self._test_command = test_command
        self._calls = 0

    def run(self, args: UserToolArgs) -> ToolResult:
        try:
            url = self._app.restart()
        except AppError as e:
            raise ToolError(f"the app could not be started, so no user could use it: {e}") from None
        self._calls += 1
        keep = self._out_dir / f"call-{self._calls}"
        keep.mkdir(parents=True, exist_ok=True)
        # Raw traces hold the checks: they stay in a private folder that is deleted here.
        with tempfile.TemporaryDirectory(prefix="lancer-user-tool-") as private:
            raw = Path(private)
            result = run_browser_tests(
                self._tests_dir,
                url,
                test_command=self._test_command,
                timeout=self._config.user_tool_timeout_s,
                trace_dir=raw,
            )
            flows = sorted(raw.glob("flow-*.zip"), key=lambda p: int(p.stem.split("-")[1]))
            lines = [f"A user went through the reported flow on the app at {url} (restarted with your current code)."]
            images: list[str] = []
            for number, trace in enumerate(flows, 1):
                lines.append(self._flow_report(number, trace, keep, images))
        if not flows:
            lines.append("No browser flow was recorded.")
        if result.timed_out:
            lines.append(f"The flow was stopped after {self._config.user_tool_timeout_s:g} s.")
        elif result.exit_code not in (0, 1):
            # 0 and 1 are the verdict and are never told; anything else is the harness.
            reason = _harness_reason(result.output)
            lines.append(f"The flow could not be run to its end (a harness problem, not your code){reason}.")
        lines.append(f"Traces and screenshots are kept in {keep}.")
        output = truncate_middle("\n".join(lines), self._max_output)
        return ToolResult(output, images=images if self._supports_images else [])

    def _flow_report(self, number: int, trace: Path, keep: Path, images: list[str]) -> str:
        sanitize(trace, keep / f"flow-{number}.zip")
        story = user_actions(trace)
        steps = story.steps[:_MAX_STEPS_SHOWN]
        lines = [f"\nFlow {number}: {len(story.steps)} step(s)"]
        lines += [f"  {i}. {step}" for i, step in enumerate(steps, 1)]
        if len(story.steps) > len(steps):
            lines.append(f"  ... {len(story.steps) - len(steps)} more")
        if story.console_errors:
            lines.append(f"  console errors ({len(story.console_errors)}):")
            lines += [f"    {line}" for line in story.console_errors[-20:]]
        else:
            lines.append("  no console errors")
        shot, text = trace.with_suffix(".png"), trace.with_suffix(".txt")
        if text.is_file():
            shutil.copy(text, keep / f"flow-{number}.txt")
            url, title, body = [*text.read_text(errors="replace").split("\n", 2), "", ""][:3]
            lines.append(f"  last page: {url} {title!r}")
            lines.append("  its text:\n" + _indent(truncate_middle(body.strip() or "(empty)", 2000), "    "))
        if shot.is_file():
            kept = keep / f"flow-{number}.png"
            shutil.copy(shot, kept)
            images.append(str(kept))
            attached = " (attached)" if self._supports_images else ""
            lines.append(f"  screenshot of the last page: {kept}{attached}")
        return "\n".join(lines)

    def close(self) -> None:
        self._app.stop()


def _harness_reason(output: str) -> str:
    """Only lancer's own harness messages (``lancer: ...``) are passed on; never pytest's."""
    for line in output.splitlines():
        if "lancer: " in line:
            return ": " + line[line.index("lancer: ") :].strip(" !")
    return ""


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())
