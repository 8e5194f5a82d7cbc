"""``scripted:FILE``: a model that plays turns from a YAML file (DESIGN.md's format).

``scripted:DIR`` plays ``DIR/<task_id>.yaml``, so one spec serves a whole task set.
Used for examples, tests and reproducing a run exactly; ``replay`` and ``oracle`` build on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import Field, ValidationError

from lancer.core.config import ModelConfig, StrictModel, describe_validation_error
from lancer.core.errors import ConfigError, ModelError
from lancer.core.model import Message, ModelResponse, ToolCall, ToolSpec, Usage

if TYPE_CHECKING:
    from lancer.core.tasks import Task


class ScriptedCall(StrictModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ScriptedUsage(StrictModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class ScriptedTurn(StrictModel):
    content: str = ""
    tool_calls: list[ScriptedCall] = Field(default_factory=list)
    # Lets a script exercise token and cost accounting and the cost limit.
    usage: ScriptedUsage = Field(default_factory=ScriptedUsage)


class ScriptedScript(StrictModel):
    turns: list[ScriptedTurn]


def load_turns(path: Path) -> list[ScriptedTurn]:
    """Read a turns file; raises ConfigError naming the file and the bad field."""
    if not path.exists():
        raise ConfigError(f"scripted model file {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"scripted model file {path} is not a file (it should be a YAML turns file)")
    try:
        data = yaml.safe_load(path.read_text())
        return ScriptedScript.model_validate(data).turns
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    except ValidationError as e:
        raise ConfigError(f"{path}: {describe_validation_error(e)}") from None


class ScriptedModel:
    supports_images = False

    def __init__(
        self, model_name: str, config: ModelConfig | None = None, turns: list[ScriptedTurn] | None = None
    ) -> None:
        self.name = f"scripted:{model_name}"
        path = Path(model_name)
        # A folder of per-task scripts: the turns are read when the task is known.
        self._script_dir = path if turns is None and path.is_dir() else None
        self._turns: list[ScriptedTurn] | None = turns
        if turns is None and self._script_dir is None:
            self._turns = load_turns(path)
        self._next = 0

    def bind_task(self, task: Task) -> None:
        """``scripted:DIR``: read ``DIR/<task_id>.yaml``; raises ConfigError when it is missing."""
        if self._script_dir is None:
            return
        path = self._script_dir / f"{task.id}.yaml"
        if not path.is_file():
            raise ConfigError(f"{self._script_dir} has no {path.name} (scripted:DIR plays DIR/<task_id>.yaml per task)")
        self._turns, self._next = load_turns(path), 0

    def query(self, messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        if self._turns is None:
            raise ModelError(f"{self.name} is a folder of per-task scripts, but no task was given to pick one")
        if self._next >= len(self._turns):
            raise ModelError(f"{self.name} has no turn left after {len(self._turns)} turns")
        turn = self._turns[self._next]
        self._next += 1
        calls = [ToolCall(f"call_{self._next}_{i}", c.name, c.arguments) for i, c in enumerate(turn.tool_calls)]
        usage = Usage(turn.usage.input_tokens, turn.usage.output_tokens, cost_usd=turn.usage.cost_usd)
        return ModelResponse(turn.content, calls, usage)
