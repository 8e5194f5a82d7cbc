"""task.toml as Harbor reads it (schema 1.0 to 1.4): its models, field names and defaults
as Harbor's ``harbor.models.task.config.TaskConfig`` has them, and the network policy it
states per phase. Which fields lancer acts on: docs/harbor.md.

A key Harbor's models do not have is warned about once, on stderr, and otherwise ignored,
as Harbor ignores it; ``[metadata]`` is free-form in Harbor, so none of its keys is warned
about.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from lancer.core.config import StrictModel, describe_validation_error
from lancer.core.errors import TaskError

SCHEMA_VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4")
# What lancer's export writes: the newest schema lancer reads.
WRITTEN_SCHEMA = "1.4"


class NetworkMode(StrEnum):
    PUBLIC = "public"
    NO_NETWORK = "no-network"
    ALLOWLIST = "allowlist"


class _Author(StrictModel):
    name: str
    email: str | None = None


class _Package(StrictModel):
    """[task]: the task's name in a registry (org/name) and what it is."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    authors: list[_Author] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)


class Metadata(StrictModel):
    """The [metadata] keys lancer reads (Harbor's [metadata] is free-form: others are kept, unread)."""

    difficulty: str | None = None
    category: str | None = None
    tags: list[str] = Field(default_factory=list)
    # Not Harbor's: the dollars a lancer export carries over, so a round trip keeps them.
    price: float | None = Field(None, ge=0)


class _Phase(StrictModel):
    user: str | int | None = None
    network_mode: NetworkMode | None = None
    allowed_hosts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _hosts_mean_allowlist(self) -> _Phase:
        # As Harbor: hosts without a mode are an allowlist; hosts with another mode are wrong.
        if self.allowed_hosts and self.network_mode is None:
            self.network_mode = NetworkMode.ALLOWLIST
        if self.allowed_hosts and self.network_mode != NetworkMode.ALLOWLIST:
            raise ValueError("allowed_hosts is only valid when network_mode is 'allowlist'")
        return self


class Verifier(_Phase):
    timeout_sec: float = Field(600.0, gt=0)
    env: dict[str, str] = Field(default_factory=dict)


class Agent(_Phase):
    timeout_sec: float | None = Field(None, gt=0)
    env: dict[str, str] = Field(default_factory=dict)


class Environment(_Phase):
    build_timeout_sec: float = Field(600.0, gt=0)
    docker_image: str | None = None
    cpus: int = Field(1, gt=0)
    memory_mb: int = Field(2048, gt=0)
    storage_mb: int = Field(10240, gt=0)
    gpus: int = Field(0, ge=0)
    gpu_types: list[str] | None = None
    allow_internet: bool = True
    mcp_servers: list[dict[str, Any]] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    skills_dir: str | None = None
    healthcheck: dict[str, Any] | None = None
    # Deprecated spellings, read as Harbor reads them ("2G" -> memory_mb 2048).
    memory: str | None = Field(None, exclude=True)
    storage: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _deprecated_sizes(self) -> Environment:
        if self.memory is not None:
            self.memory_mb, self.memory = _megabytes(self.memory, "memory"), None
        if self.storage is not None:
            self.storage_mb, self.storage = _megabytes(self.storage, "storage"), None
        return self

    def baseline(self) -> NetworkMode:
        """The network of every phase that does not state its own."""
        if self.network_mode is not None:
            return self.network_mode
        return NetworkMode.PUBLIC if self.allow_internet else NetworkMode.NO_NETWORK


class _Solution(StrictModel):
    env: dict[str, str] = Field(default_factory=dict)


class TaskToml(StrictModel):
    schema_version: str = "1.1"
    task: _Package | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    verifier: Verifier = Field(default_factory=Verifier)
    agent: Agent = Field(default_factory=Agent)
    environment: Environment = Field(default_factory=Environment)
    solution: _Solution = Field(default_factory=_Solution)
    source: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _version_renamed(cls, data: Any) -> Any:
        return _renamed(data)

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, version: str) -> str:
        if version not in SCHEMA_VERSIONS:
            raise ValueError(f"{version!r} is not a schema lancer reads ({', '.join(SCHEMA_VERSIONS)})")
        return version

    def network(self, phase: str) -> NetworkMode:
        """The network the agent's or the verifier's phase has: its own mode, else the environment's."""
        own: _Phase = self.agent if phase == "agent" else self.verifier
        return own.network_mode or self.environment.baseline()

    def lancer_metadata(self) -> Metadata:
        return Metadata.model_validate({k: self.metadata[k] for k in Metadata.model_fields if k in self.metadata})


def read_task_toml(path: Path, name: str) -> TaskToml:
    """``path`` read as Harbor reads it; TaskError (one line) naming the task and the field."""
    try:
        data = tomllib.loads(path.read_text(errors="replace"))
    except tomllib.TOMLDecodeError as e:
        raise TaskError(f"task {name}: task.toml is not valid TOML: {e}") from None
    data = _renamed(data)
    unknown = _prune_unknown(data, TaskToml, "")
    if unknown:
        print(
            f"lancer: warning: task {name}: task.toml {', '.join(unknown)}: not a Harbor key, ignored",
            file=sys.stderr,
            flush=True,
        )
    try:
        spec = TaskToml.model_validate(data)
    except ValidationError as e:
        raise TaskError(f"task {name}: task.toml {describe_validation_error(e)}") from None
    for phase in ("agent", "verifier"):
        if spec.network(phase) == NetworkMode.ALLOWLIST:
            hosts = getattr(spec, phase).allowed_hosts or spec.environment.allowed_hosts
            raise TaskError(
                f"task {name}: task.toml asks for network_mode 'allowlist' ({', '.join(hosts) or 'no hosts'}) "
                f"in its {phase} phase, which lancer does not enforce: use 'public' or 'no-network'"
            )
    return spec


_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def host_env(env: dict[str, str], name: str) -> dict[str, str]:
    """[environment] env with its ``${VAR}`` and ``${VAR:-default}`` filled from this
    machine's environment, as Harbor fills them; TaskError naming a variable that is unset."""

    def fill(key: str, value: str) -> str:
        def one(match: re.Match[str]) -> str:
            var, default = match.group(1), match.group(2)
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                return default
            raise TaskError(f"task {name}: task.toml environment.env.{key} needs ${var}, which is not set here")

        return _TEMPLATE.sub(one, value)

    return {key: fill(key, value) for key, value in env.items()}


def _renamed(data: Any) -> Any:
    """Schema 1.0's ``version`` is 1.1's ``schema_version``."""
    if isinstance(data, dict) and "version" in data:
        data = dict(data)
        data.setdefault("schema_version", data.pop("version"))
    return data


def _prune_unknown(data: dict[str, Any], model: type[BaseModel], where: str) -> list[str]:
    """Remove (in place) the keys ``model`` does not have, recursing into its sub-models;
    return their dotted names."""
    unknown = []
    for key in list(data):
        field = model.model_fields.get(key)
        if field is None:
            unknown.append(where + key)
            del data[key]
            continue
        models = [t for t in (field.annotation, *get_args(field.annotation)) if _is_model(t)]
        if models and isinstance(data[key], dict):
            data[key] = dict(data[key])
            unknown += _prune_unknown(data[key], models[0], f"{where}{key}.")
    return unknown


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _megabytes(size: str, key: str) -> int:
    """Harbor's reading of a deprecated size ("2G", "512M", "1024K") in MB."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([GMK])\s*", size.upper())
    if not match:
        raise ValueError(f"environment.{key} {size!r}: expected a size like '2G' or '512M' (or use {key}_mb)")
    number, unit = float(match.group(1)), match.group(2)
    return int(number * 1024 if unit == "G" else number if unit == "M" else number / 1024)
