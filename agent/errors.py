"""Exceptions that end a run or a command.

Errors the *model* should see (a bad tool argument, a failed edit) are not here: they are
``tools.base.ToolError`` and become tool results. Everything here stops the run and is
caught in one place (``agent.cli``), which prints it as one line.
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
