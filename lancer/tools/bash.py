"""``bash``: one persistent shell per run in the sandbox."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from lancer.core.sandbox import Sandbox
from lancer.core.text import truncate_middle
from lancer.core.tool import ToolArgs, ToolResult
from lancer.sandbox.shell import PersistentShell


class BashArgs(ToolArgs):
    command: str = Field(description="The command to run, e.g. `grep -rn submit src/`.")
    timeout: float | None = Field(
        None, gt=0, description="Seconds before the command is killed (default set by the run)."
    )


class BashTool:
    name: ClassVar[str] = "bash"
    description: ClassVar[str] = (
        "Run a command in a persistent bash shell at the repository root. The working "
        "directory and exported variables persist between calls. stdin is closed, so "
        "interactive programs get EOF. Long output is cut in the middle. Commands that run "
        "past the timeout are killed with everything they started."
    )
    Args: ClassVar[type[ToolArgs]] = BashArgs

    def __init__(self, sandbox: Sandbox, default_timeout: float, max_timeout: float, max_output_chars: int) -> None:
        self._sandbox = sandbox
        self._shell: PersistentShell | None = None
        self._default_timeout = default_timeout
        self._max_timeout = max_timeout
        self._max_output = max_output_chars

    def run(self, args: BashArgs) -> ToolResult:
        if self._shell is None:  # started on first use: a run may never need it
            self._shell = PersistentShell(self._sandbox)
        timeout = min(args.timeout or self._default_timeout, self._max_timeout)
        result = self._shell.run(args.command, timeout)
        parts = [truncate_middle(result.output, self._max_output)]
        if result.omitted_bytes:
            parts.append(f"[{result.omitted_bytes} bytes of output were dropped from the middle]")
        if result.timed_out:
            parts.append(f"[timed out after {timeout:g} s: the command and everything it started were killed]")
        elif result.exit_code not in (None, 0):
            parts.append(f"[exit code {result.exit_code}]")
        if result.note:
            parts.append(f"[{result.note}]")
        output = "\n".join(p for p in parts if p) or "[no output]"
        return ToolResult(output, is_error=result.timed_out)

    def close(self) -> None:
        if self._shell is not None:
            self._shell.close()
