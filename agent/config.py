"""Run configuration: YAML file (``--config``) plus command-line overrides.

Every section forbids unknown keys, so a typo in a config file is an error naming the key,
never a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import ConfigError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsConfig(StrictModel):
    max_steps: int = Field(50, ge=1)
    # None: no limit. The run stops before a model call that would pass it.
    cost_limit_usd: float | None = Field(5.0, ge=0)
    time_limit_s: float = Field(3600, gt=0)
    # Malformed tool calls (unknown tool, bad arguments) in a row before the run ends.
    max_format_errors: int = Field(3, ge=1)


class ToolsConfig(StrictModel):
    bash_timeout_s: float = Field(120, gt=0)
    # The most a model may ask for with bash's own ``timeout`` argument.
    bash_max_timeout_s: float = Field(900, gt=0)
    max_output_chars: int = Field(10_000, ge=200)


class ModelConfig(StrictModel):
    base_url: str | None = None
    temperature: float | None = None
    max_output_tokens: int = Field(4096, ge=1)


class SandboxConfig(StrictModel):
    kind: Literal["local", "docker"] = "local"


class GraderConfig(StrictModel):
    # Like SWE-Lancer: the hidden tests may be run this many times; any pass counts.
    attempts: int = Field(3, ge=1)
    timeout_s: float = Field(1800, gt=0)


class RunConfig(StrictModel):
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    grader: GraderConfig = Field(default_factory=GraderConfig)


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read ``path`` (if given), apply dotted ``overrides`` such as {"limits.max_steps": 10}."""
    data: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must be a YAML mapping of sections (limits, tools, model, ...)")
        data = loaded
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".", 1)
        data.setdefault(section, {})[key] = value
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source}: {describe_validation_error(e)}") from None


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each bad field, e.g. ``limits.max_stepz: Extra inputs are not permitted``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'top level'}: {err['msg']}" for err in error.errors()
    )
