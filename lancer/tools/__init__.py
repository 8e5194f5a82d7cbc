"""The tools a model can call, and the toolbox a run gets for its task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lancer.core.config import RunConfig
from lancer.core.sandbox import Sandbox
from lancer.core.tasks import Task
from lancer.core.tool import Tool, ToolArgs, Toolbox, ToolError, ToolResult, function_schema
from lancer.tools.bash import BashTool
from lancer.tools.editor import EditorTool
from lancer.tools.submit import ManagerSubmitTool, SubmitTool

__all__ = ["Tool", "ToolArgs", "ToolError", "ToolResult", "Toolbox", "build_toolbox", "tool_schemas"]


def build_toolbox(
    task: Task, sandbox: Sandbox, config: RunConfig, out_dir: Path | None = None, supports_images: bool = False
) -> Toolbox:
    """The tools for ``task``: shell and editor for the code, ``browser`` (and, with hidden
    tests, ``user_tool``) when it has an app, and the right ``submit``.

    ``out_dir`` (the run directory) receives screenshots and user_tool traces;
    ``supports_images``: whether the model is sent screenshots as images.
    """
    settings = config.tools
    submit: Tool = ManagerSubmitTool([p.id for p in task.proposals]) if task.variant == "swe_manager" else SubmitTool()
    tools: list[Tool] = [
        BashTool(sandbox, settings.bash_timeout_s, settings.bash_max_timeout_s, settings.max_output_chars),
        EditorTool(sandbox, settings.max_output_chars),
    ]
    if task.app is not None:
        if out_dir is None:
            raise ValueError(f"task {task.id} has an app: its tools need the run directory (out_dir)")
        tools += _web_tools(task, sandbox, config, out_dir, supports_images)
    return Toolbox([*tools, submit])


def _web_tools(task: Task, sandbox: Sandbox, config: RunConfig, out_dir: Path, supports_images: bool) -> list[Tool]:
    # Imported here: Playwright is needed only by tasks with an app.
    from lancer.sandbox.app import App
    from lancer.tools.browser import BrowserTool
    from lancer.tools.user_tool import UserTool

    assert task.app is not None
    app = App(sandbox, task.app)  # shared: user_tool restarts the app the browser shows
    max_output = config.tools.max_output_chars
    tools: list[Tool] = [BrowserTool(app, out_dir, supports_images, config.browser, max_output)]
    if task.variant == "ic_swe" and task.tests_dir is not None:
        tools.append(
            UserTool(app, task.tests_dir, out_dir, supports_images, config.browser, max_output, task.test_command)
        )
    return tools


def tool_schemas(names: set[str], manager: bool) -> list[dict[str, Any]]:
    """The function schemas of the tools named (a recorded run's), in the toolbox's order;
    ``manager``: a manager task's submit, which takes a proposal id."""
    from lancer.tools.browser import BrowserTool
    from lancer.tools.user_tool import UserTool

    tools: list[type[Tool]] = [BashTool, EditorTool, BrowserTool, UserTool]
    tools.append(ManagerSubmitTool if manager else SubmitTool)
    return [function_schema(tool) for tool in tools if tool.name in names]
