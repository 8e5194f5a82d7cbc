"""Exceptions that end a run or a command.

Errors the *model* should see (a bad tool argument, a failed edit) are not here: they are
``lancer.core.tool.ToolError`` and become tool results. Everything here stops the run and is
caught in one place (``lancer.cli.main``), which prints it as one line.
"""


class LancerError(Exception):
    """An error meant for the user: its message is one line naming what is wrong and the fix."""


class ConfigError(LancerError):
    """Bad configuration, command-line input or model spec."""


class TaskError(LancerError):
    """A task folder or dataset entry that cannot be loaded."""


class ModelError(LancerError):
    """The model provider failed in a way retrying will not fix (or retries ran out)."""


class SandboxError(LancerError):
    """The sandbox could not be created, used or removed."""


class SetupError(SandboxError):
    """A task's setup command failed: ``output`` is what it printed, for the user to read."""

    def __init__(self, command: str, why: str, output: str) -> None:
        # The end of the output says why (pip, for one, prints its error last).
        super().__init__(f"task setup command {command!r} {why}; its output ends:\n{output.strip()[-2000:]}")
        self.command, self.why, self.output = command, why, output
