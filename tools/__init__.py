"""The tools a model can call, and the toolbox a run gets for its task."""

from __future__ import annotations

from agent.config import RunConfig
from agent.tasks import Task
from sandbox.base import Sandbox
from tools.base import Tool, ToolArgs, Toolbox, ToolError, ToolResult
from tools.bash import BashTool
from tools.editor import EditorTool
from tools.submit import ManagerSubmitTool, SubmitTool

__all__ = ["Tool", "ToolArgs", "ToolError", "ToolResult", "Toolbox", "build_toolbox"]


def build_toolbox(task: Task, sandbox: Sandbox, config: RunConfig) -> Toolbox:
    """The tools for ``task``: shell and editor for the code, and the right ``submit``."""
    settings = config.tools
    submit: Tool = ManagerSubmitTool([p.id for p in task.proposals]) if task.variant == "swe_manager" else SubmitTool()
    return Toolbox(
        [
            BashTool(sandbox, settings.bash_timeout_s, settings.bash_max_timeout_s, settings.max_output_chars),
            EditorTool(sandbox, settings.max_output_chars),
            submit,
        ]
    )
