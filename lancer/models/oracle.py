"""``oracle``: plays each task's reference solution, to check tasks and the harness end to end.

The solution comes from the task folder and the Task object, never from what the agent
sees: ``solution.yaml`` (scripted turns) when there is one, else ``solution.patch``
(applied with ``git apply`` through the bash tool, then submitted), else a Harbor task's
``solution/solve.sh`` (its solution/ folder copied to /solution and the script run, as
Harbor's oracle agent does), else, for a manager task, a submit of ``correct_proposal``.
A task with none of these is a ConfigError when the task is bound, before its run starts.
"""

from __future__ import annotations

import base64
import io
import shlex
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from lancer.core.config import ModelConfig
from lancer.core.errors import ConfigError, ModelError
from lancer.core.model import Message, ModelResponse, ToolSpec
from lancer.models.scripted import ScriptedCall, ScriptedModel, ScriptedTurn, load_turns

if TYPE_CHECKING:
    from lancer.core.tasks import Task

SOLUTION_TURNS = "solution.yaml"
SOLUTION_PATCH = "solution.patch"
SOLVE_SCRIPT = "solution/solve.sh"  # a Harbor task's
# Printed by the apply command only when `git apply` (or solve.sh) succeeded.
APPLIED = "lancer-oracle: solution applied"


class OracleModel:
    supports_images = False

    def __init__(self, model_name: str = "", config: ModelConfig | None = None) -> None:
        if model_name:
            raise ConfigError(f"the oracle takes no model name (got oracle:{model_name}): use --model oracle")
        self.name = "oracle"
        self._script: ScriptedModel | None = None
        self._task_id = ""
        self._what = SOLUTION_PATCH  # what the apply command applies, for its error
        self._applying = False

    def bind_task(self, task: Task) -> None:
        """Pick the task's reference solution; raises ConfigError when it has none."""
        self._script = ScriptedModel(f"oracle/{task.id}", turns=solution_turns(task))
        self._task_id = task.id
        folder = task.folder
        self._what = next((n for n in (SOLUTION_PATCH, SOLVE_SCRIPT) if folder and (folder / n).is_file()), "solution")

    def query(self, messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        if self._script is None:
            raise ModelError("the oracle plays a task's reference solution, but was given no task")
        if self._applying:
            self._applying = False
            _check_applied(self._task_id, self._what, messages)
        response = self._script.query(messages, tools)
        self._applying = any(APPLIED in str((c.arguments or {}).get("command", "")) for c in response.tool_calls)
        return response


def solution_turns(task: Task) -> list[ScriptedTurn]:
    """The turns that play ``task``'s reference solution; raises ConfigError when it has none."""
    folder = task.folder
    if folder is not None and (folder / SOLUTION_TURNS).is_file():
        return load_turns(folder / SOLUTION_TURNS)
    if folder is not None and (folder / SOLUTION_PATCH).is_file():
        return _patch_turns(folder / SOLUTION_PATCH)
    if folder is not None and (folder / SOLVE_SCRIPT).is_file():
        return _solve_script_turns(folder / SOLVE_SCRIPT, task.solution_env)
    if task.variant == "swe_manager" and task.correct_proposal is not None:
        submit = ScriptedCall(name="submit", arguments={"proposal_id": task.correct_proposal})
        return [ScriptedTurn(content=f"Proposal {task.correct_proposal} is the correct one.", tool_calls=[submit])]
    where = f"{folder}" if folder is not None else "it"
    harbor = folder is not None and (folder / "task.toml").is_file()
    add = SOLVE_SCRIPT if harbor else f"{SOLUTION_TURNS} or {SOLUTION_PATCH}"
    raise ConfigError(f"task {task.id} has no reference solution for --model oracle: add {add} to {where}")


def _patch_turns(path: Path) -> list[ScriptedTurn]:
    patch = path.read_bytes()
    if not patch.strip():
        raise ConfigError(f"{path} is empty: a solution.patch is a git diff of the fix")
    # Sent base64-encoded: any bytes survive, and no heredoc delimiter can clash with the patch.
    encoded = base64.b64encode(patch).decode()
    command = f"printf %s {encoded} | base64 -d | git apply --whitespace=nowarn && echo '{APPLIED}'"
    lines = patch.decode(errors="replace").splitlines()
    files = [line.split(" b/", 1)[-1] for line in lines if line.startswith("diff --git ")]
    return [
        ScriptedTurn(
            content=f"Applying the task's {SOLUTION_PATCH} ({', '.join(files) or 'no file names found'}).",
            tool_calls=[ScriptedCall(name="bash", arguments={"command": command})],
        ),
        ScriptedTurn(tool_calls=[ScriptedCall(name="submit", arguments={})]),
    ]


def _solve_script_turns(script: Path, env: dict[str, str]) -> list[ScriptedTurn]:
    folder = script.parent
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(str(folder), arcname=".")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    # Run from the working tree, as Harbor runs it from the image's WORKDIR, with its [solution] env.
    exports = "".join(f"{k}={shlex.quote(v)} " for k, v in env.items())
    command = (
        f"rm -rf /solution && mkdir -p /solution && printf %s {encoded} | base64 -d | tar -xzf - -C /solution "
        f"&& {exports}bash /solution/{script.name} && echo '{APPLIED}'"
    )
    return [
        ScriptedTurn(
            content=f"Running the task's {SOLVE_SCRIPT}.",
            tool_calls=[ScriptedCall(name="bash", arguments={"command": command, "timeout": 900})],
        ),
        ScriptedTurn(tool_calls=[ScriptedCall(name="submit", arguments={})]),
    ]


def _check_applied(task_id: str, what: str, messages: list[Message]) -> None:
    output = next((m.content for m in reversed(messages) if m.role == "tool"), "")
    if APPLIED not in output:
        reason = " ".join(output.split())[:300] or "no output"
        raise ModelError(f"the {what} of task {task_id} did not apply: {reason}")
