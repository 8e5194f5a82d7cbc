"""The Agent Trajectory Interchange Format (ATIF), Harbor's RFC 0001, as pydantic models.

Written from the RFC and Harbor's reference models (harbor 0.26.0,
``harbor/models/trajectories/``), whose newest ``schema_version`` is ``ATIF-v1.8``: v1.6
added multimodal content parts (images are files referenced by path, relative to the
trajectory file or a URL), v1.7 ``extra`` on tool calls and observation results and
``llm_call_count``, v1.8 audio parts. lancer writes v1.8 and reads every version the RFC
names. Every model forbids unknown fields, as Harbor's do, so a file that validates here
has no field another ATIF reader would refuse.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lancer.core.errors import LancerError

SchemaVersion = Literal[
    "ATIF-v1.0", "ATIF-v1.1", "ATIF-v1.2", "ATIF-v1.3", "ATIF-v1.4",
    "ATIF-v1.5", "ATIF-v1.6", "ATIF-v1.7", "ATIF-v1.8",
]  # fmt: skip
SCHEMA_VERSION: SchemaVersion = "ATIF-v1.8"  # the newest Harbor defines; what lancer writes
ImageMediaType = Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
AudioMediaType = Literal[
    "audio/wav", "audio/mpeg", "audio/mp4", "audio/aac", "audio/ogg", "audio/flac", "audio/webm", "audio/aiff"
]  # fmt: skip
_AGENT_ONLY = ("model_name", "reasoning_effort", "reasoning_content", "tool_calls", "metrics")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageSource(_Strict):
    media_type: ImageMediaType
    path: str  # relative to the trajectory file, absolute, or a URL


class AudioSource(_Strict):
    media_type: AudioMediaType
    path: str
    duration_sec: float | None = Field(default=None, ge=0)


class ContentPart(_Strict):
    type: Literal["text", "image", "audio"]
    text: str | None = None
    source: ImageSource | AudioSource | None = None

    @model_validator(mode="after")
    def _fits_type(self) -> ContentPart:
        if self.type == "text":
            if self.text is None or self.source is not None:
                raise ValueError("a text part has 'text' and no 'source'")
            return self
        expected = ImageSource if self.type == "image" else AudioSource
        if self.text is not None or not isinstance(self.source, expected):
            raise ValueError(f"a {self.type} part has a {expected.__name__} 'source' and no 'text'")
        return self


Content = str | list[ContentPart]


class ToolCall(_Strict):
    tool_call_id: str
    function_name: str
    arguments: dict[str, Any]
    extra: dict[str, Any] | None = None


class SubagentTrajectoryRef(_Strict):
    trajectory_id: str | None = None
    session_id: str | None = None
    trajectory_path: str | None = None
    extra: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _resolvable(self) -> SubagentTrajectoryRef:
        if self.trajectory_id is None and self.trajectory_path is None:
            raise ValueError("a subagent reference sets trajectory_id or trajectory_path")
        return self


class ObservationResult(_Strict):
    source_call_id: str | None = None
    content: Content | None = None
    subagent_trajectory_ref: list[SubagentTrajectoryRef] | None = None
    extra: dict[str, Any] | None = None


class Observation(_Strict):
    results: list[ObservationResult]


class Metrics(_Strict):
    prompt_tokens: int | None = None  # every prompt token, cached ones included
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # the part of prompt_tokens read from a cache
    cost_usd: float | None = None
    prompt_token_ids: list[int] | None = None
    completion_token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    extra: dict[str, Any] | None = None


class FinalMetrics(_Strict):
    total_prompt_tokens: int | None = None
    total_completion_tokens: int | None = None
    total_cached_tokens: int | None = None
    total_cost_usd: float | None = None
    total_steps: int | None = Field(default=None, ge=0)
    extra: dict[str, Any] | None = None


class Agent(_Strict):
    name: str
    version: str
    model_name: str | None = None
    tool_definitions: list[dict[str, Any]] | None = None  # OpenAI function-calling schemas
    extra: dict[str, Any] | None = None


class Step(_Strict):
    step_id: int = Field(ge=1)
    timestamp: str | None = None
    source: Literal["system", "user", "agent"]
    model_name: str | None = None
    reasoning_effort: str | float | None = None
    message: Content
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None
    observation: Observation | None = None
    metrics: Metrics | None = None
    is_copied_context: bool | None = None
    llm_call_count: int | None = Field(default=None, ge=0)
    extra: dict[str, Any] | None = None

    @field_validator("timestamp")
    @classmethod
    def _iso_8601(cls, value: str | None) -> str | None:
        if value is not None:
            datetime.fromisoformat(value.replace("Z", "+00:00"))  # a ValueError is the field's error
        return value

    @model_validator(mode="after")
    def _agent_fields(self) -> Step:
        if self.source != "agent":
            for name in _AGENT_ONLY:
                if getattr(self, name) is not None:
                    raise ValueError(f"'{name}' is only for steps whose source is 'agent', not '{self.source}'")
        elif self.llm_call_count == 0 and (self.metrics is not None or self.reasoning_content is not None):
            raise ValueError("a step with llm_call_count 0 has no metrics and no reasoning_content")
        return self


class Trajectory(_Strict):
    schema_version: SchemaVersion = SCHEMA_VERSION
    session_id: str | None = None
    trajectory_id: str | None = None
    agent: Agent
    steps: list[Step] = Field(min_length=1)
    notes: str | None = None
    final_metrics: FinalMetrics | None = None
    continued_trajectory_ref: str | None = None
    extra: dict[str, Any] | None = None
    subagent_trajectories: list[Trajectory] | None = None

    @model_validator(mode="after")
    def _references(self) -> Trajectory:
        for index, step in enumerate(self.steps):
            if step.step_id != index + 1:
                raise ValueError(f"steps[{index}].step_id is {step.step_id}: step ids run 1, 2, 3 ...")
            known = {call.tool_call_id for call in step.tool_calls or []}
            for result in step.observation.results if step.observation else []:
                if result.source_call_id is not None and result.source_call_id not in known:
                    raise ValueError(
                        f"step {step.step_id}: an observation's source_call_id {result.source_call_id!r} "
                        "names none of the step's tool calls"
                    )
        ids = [sub.trajectory_id for sub in self.subagent_trajectories or []]
        if None in ids or len(set(ids)) != len(ids):
            raise ValueError("every embedded subagent trajectory has a trajectory_id of its own")
        return self


def validate(data: object, where: str) -> Trajectory:
    """``data`` as a Trajectory, or a LancerError naming ``where`` and the first problem."""
    try:
        return Trajectory.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        place = ".".join(map(str, first["loc"])) or "the document"
        raise LancerError(
            f"{where} is not a valid ATIF trajectory: {place}: {first['msg']} ({e.error_count()} problem(s))"
        ) from None


def read_trajectory_file(path: Path) -> Trajectory:
    """An ATIF trajectory.json, validated; a LancerError names what is wrong with it."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LancerError(f"{path} is not a readable JSON file: {e}") from None
    return validate(data, str(path))
