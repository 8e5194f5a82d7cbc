"""``replay:TRAJECTORY``: plays back the model turns of a recorded trajectory.jsonl.

The tools run for real against a fresh sandbox, so a replay shows whether a recorded
run reproduces; the model costs nothing the second time.
"""

from __future__ import annotations

from pathlib import Path

from lancer.core.config import ModelConfig
from lancer.core.errors import ConfigError
from lancer.core.trajectory import read_trajectory
from lancer.models.scripted import ScriptedCall, ScriptedModel, ScriptedTurn


class ReplayModel(ScriptedModel):
    def __init__(self, model_name: str, config: ModelConfig | None = None) -> None:
        path = Path(model_name)
        if not path.is_file():
            raise ConfigError(f"trajectory {path} does not exist (replay takes a run's trajectory.jsonl)")
        records = read_trajectory(path)
        steps = [r for r in records if r.get("type") == "step"]
        if not steps:
            raise ConfigError(f"{path} has no recorded steps to replay")
        turns = [
            ScriptedTurn(
                content=step.get("content", ""),
                tool_calls=[
                    ScriptedCall(name=c["name"], arguments=c.get("arguments") or {}) for c in step.get("tool_calls", [])
                ],
            )
            for step in steps
        ]
        super().__init__(model_name, config, turns)
        self.name = f"replay:{model_name}"
        # The tools answer a model that takes images differently (a screenshot attached, or
        # the page's text), so the replay takes images when the recorded model did.
        header = records[0] if records[0].get("type") == "header" else {}
        self.supports_images = bool(
            header.get("model_supports_images", any(o.get("images") for s in steps for o in s.get("observations", [])))
        )
