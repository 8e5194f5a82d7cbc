"""Run configuration: YAML file (``--config``) plus command-line overrides.

Every section forbids unknown keys, so a typo in a config file is an error naming the key,
never a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from lancer.core.errors import ConfigError
from lancer.core.templates import PromptError, from_file


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsConfig(StrictModel):
    max_steps: int = Field(50, ge=1)
    # None: no limit. The run stops before a model call that would pass it.
    cost_limit_usd: float | None = Field(5.0, ge=0)
    time_limit_s: float = Field(3600, gt=0)
    # Malformed tool calls (unknown tool, bad arguments) in a row before the run ends.
    max_format_errors: int = Field(3, ge=1)
    # A model that repeats itself: the same tool call getting the same observation this
    # many times in a row, or two such calls alternating this many rounds, is told once;
    # if it goes on, the run ends as ``stuck``.
    stuck_repeats: int = Field(4, ge=2)
    stuck_alternations: int = Field(3, ge=2)


class ToolsConfig(StrictModel):
    bash_timeout_s: float = Field(120, gt=0)
    # The most a model may ask for with bash's own ``timeout`` argument.
    bash_max_timeout_s: float = Field(900, gt=0)
    max_output_chars: int = Field(10_000, ge=200)


class BrowserConfig(StrictModel):
    """The ``browser`` and ``user_tool`` tools of tasks with an app."""

    viewport_width: int = Field(1280, ge=200)
    viewport_height: int = Field(800, ge=200)
    # Short on purpose: a selector that matches nothing should cost seconds, not 30.
    action_timeout_s: float = Field(5, gt=0)
    navigation_timeout_s: float = Field(15, gt=0)
    # Pause after click/fill/press so the page's own handlers and requests can finish.
    settle_ms: int = Field(100, ge=0)
    # One user_tool call: the hidden browser tests with tracing, against the current code.
    user_tool_timeout_s: float = Field(300, gt=0)


class PriceConfig(StrictModel):
    """USD per million tokens; replaces genai-prices' prices for the run's model."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    # Unset: billed like ordinary input tokens.
    cache_read: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)


class ModelConfig(StrictModel):
    # Overrides OPENAI_BASE_URL / ANTHROPIC_BASE_URL (any OpenAI-compatible server).
    base_url: str | None = None
    # Name of the environment variable holding the key (default: OPENAI_API_KEY or
    # ANTHROPIC_API_KEY). The key itself is never written in a config file.
    api_key_env: str | None = None
    temperature: float | None = None
    max_output_tokens: int = Field(4096, ge=1)
    # OpenAI reasoning models: none, minimal, low, medium, high, xhigh (as the model allows).
    reasoning_effort: str | None = None
    # Anthropic extended thinking: tokens the model may think for, on top of max_output_tokens.
    thinking_budget: int | None = Field(None, ge=1024)
    # Anthropic: cache_control breakpoints so each call re-reads its history from the cache.
    prompt_caching: bool = True
    # Receive the reply as server-sent events (long replies then never hit a read timeout).
    stream: bool = False
    # Show the model screenshots. Unset: yes for openai and anthropic, no for
    # openai-compatible (many self-hosted models read text only).
    supports_images: bool | None = None
    # Retries of one model call (rate limits, overload, 5xx, timeouts, dropped connections):
    # at most max_retries more attempts, all within retry_max_total_s from the first one.
    max_retries: int = Field(8, ge=0)
    retry_max_total_s: float = Field(300, gt=0)
    # Exponential backoff with jitter: about initial, 2x, 4x ... capped at retry_max_wait_s.
    # A server's Retry-After wins over the backoff.
    retry_initial_wait_s: float = Field(1.0, ge=0)
    retry_max_wait_s: float = Field(60, ge=0)
    # One limit per endpoint (provider and base URL), shared by every run of an eval, on
    # every worker and node: requests in flight at once, requests and tokens per minute.
    # Unset: no limit of lancer's own (the server's 429s still pause every run).
    max_connections: int | None = Field(None, ge=1)
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    # One HTTP request, seconds.
    request_timeout_s: float = Field(600, gt=0)
    # Unset: genai-prices' (lancer/models/pricing.py); an unknown model's cost is null.
    price: PriceConfig | None = None
    # Tokens the model accepts per request; unset: genai-prices', else 128000.
    context_window: int | None = Field(None, ge=1024)


class SandboxConfig(StrictModel):
    kind: Literal["local", "docker"] = "local"
    # Local sandbox: bwrap isolates every command (bubblewrap must be installed); none runs
    # them on this machine unisolated, with a warning on every run. See docs/sandbox.md.
    isolation: Literal["bwrap", "none"] = "bwrap"
    # ``image`` (--image) replaces the task's image and dockerfile (docker only).
    image: str | None = None
    # Limits, docker and local sandboxes alike. Docker's notation: 512m, 4g ... Swap is
    # off, so a memory hog is killed at this size.
    memory: str = Field("4g", pattern=r"^[0-9]+(\.[0-9]+)?[bkmgBKMG]?$")
    cpus: float = Field(2.0, gt=0)
    pids_limit: int = Field(1024, ge=32)
    # None: as the task says (no network unless it asks); true or false overrides the task.
    network: bool | None = None
    # auto: a non-root user made in the container (root if the image cannot have one);
    # root; or a user name or uid[:gid] the image has.
    user: str = Field("auto", min_length=1)
    # Pull a SWE-bench instance's image when this machine lacks it (--pull); never without.
    pull: bool = False


class GraderConfig(StrictModel):
    # Like SWE-Lancer: the hidden tests may be run this many times; any pass counts.
    attempts: int = Field(3, ge=1)
    timeout_s: float = Field(1800, gt=0)


class PromptsConfig(StrictModel):
    """Template files replacing the bundled prompts/ ones; relative paths are read from the
    config file's folder. Unset: the bundled template."""

    system: Path | None = None
    ic_swe: Path | None = None
    swe_manager: Path | None = None

    @field_validator("system", "ic_swe", "swe_manager")
    @classmethod
    def _beside_the_config(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        config_dir = (info.context or {}).get("config_dir")
        path = (Path(config_dir) / path) if config_dir is not None else path.absolute()
        try:
            from_file(path)  # a missing file or a syntax error stops the run before it starts
        except PromptError as e:  # a custom error type: its message is shown as is
            raise PydanticCustomError("prompt_template", str(e)) from None
        return path


class RunConfig(StrictModel):
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    browser: BrowserConfig = Field(default_factory=BrowserConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    grader: GraderConfig = Field(default_factory=GraderConfig)
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read ``path`` (if given), apply dotted ``overrides`` such as {"limits.max_steps": 10}."""
    data: dict[str, Any] = {}
    source = "command line"
    config_dir = None
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
        config_dir = path.resolve().parent
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".", 1)
        data.setdefault(section, {})[key] = value
    try:
        return RunConfig.model_validate(data, context={"config_dir": config_dir})
    except ValidationError as e:
        raise ConfigError(f"{source}: {describe_validation_error(e)}") from None


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each bad field, e.g. ``limits.max_stepz: Extra inputs are not permitted``."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'top level'}: {err['msg']}" for err in error.errors())
