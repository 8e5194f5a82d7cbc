"""A model whose process dies (SIGKILL) mid-run when the task's title says CRASH.

For the eval test that one crashing attempt never stops the others:
``--model tests.fakes.crashing_model:CrashingModel``. Other tasks get proposal 2 submitted.
"""

from __future__ import annotations

import os
import signal

from lancer.core.config import ModelConfig
from lancer.core.model import Message, ModelResponse, ToolCall, ToolSpec, Usage


class CrashingModel:
    supports_images = False

    def __init__(self, model_name: str, config: ModelConfig) -> None:
        self.name = "crashing"

    def query(self, messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        if any("CRASH" in m.content for m in messages if m.role == "user"):
            os.kill(os.getpid(), signal.SIGKILL)
        return ModelResponse("Proposal 2.", [ToolCall("call_1", "submit", {"proposal_id": 2})], Usage())
