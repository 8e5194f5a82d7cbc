"""The two templates a run starts from (system, task), chosen from the config or bundled."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lancer.core.config import PromptsConfig
from lancer.core.model import Message, ToolSpec
from lancer.core.tasks import Task
from lancer.core.templates import Template, bundled, from_file


@dataclass(frozen=True)
class RunPrompts:
    system: Template
    task: Template

    def describe(self) -> dict[str, Any]:
        """For the trajectory header: which templates the run used (path and sha256)."""
        return {"system": self.system.describe(), "task": self.task.describe()}

    def messages(self, task: Task, workdir: str, tools: list[ToolSpec]) -> list[Message]:
        # Both templates see the task, so a system prompt can speak to a manager differently.
        system = self.system.render(task=task, workdir=workdir, tools=tools)
        user = self.task.render(task=task, workdir=workdir)
        return [Message("system", system), Message("user", user)]


# Stand-ins for the sandbox's workdir and the toolbox, which exist only once the run has started.
_TRIAL_WORKDIR = "/repo"
_TRIAL_TOOLS = [ToolSpec(name, f"the {name} tool", {}) for name in ("bash", "editor", "submit")]


def run_prompts(config: PromptsConfig, task: Task) -> RunPrompts:
    """The config's template files where set, else the bundled ones.

    Both are rendered once for ``task`` here, so a template naming a variable that does not
    exist stops the run (PromptError) before a sandbox is made.
    """
    task_file: Path | None = getattr(config, task.variant)
    prompts = RunPrompts(
        system=from_file(config.system) if config.system else bundled("system.j2"),
        task=from_file(task_file) if task_file else bundled(f"{task.variant}.j2"),
    )
    prompts.messages(task, _TRIAL_WORKDIR, _TRIAL_TOOLS)
    return prompts
