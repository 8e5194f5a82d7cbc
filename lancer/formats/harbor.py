"""Harbor (Terminal-Bench 2) task folders, read as lancer tasks; lancer tasks written as them.

A Harbor task is ``task.toml``, ``instruction.md``, ``environment/Dockerfile``,
``solution/solve.sh`` and ``tests/test.sh``, which writes a reward to /logs/verifier. Which
task.toml fields are read, and how the export maps a lancer task: docs/harbor.md.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath

from pydantic import Field, ValidationError

from lancer.core.config import StrictModel, describe_validation_error
from lancer.core.errors import TaskError
from lancer.core.tasks import ContainerSpec, Task, TaskLimits

# Where Harbor puts things in the task's container.
TESTS_AT = "/tests"
SOLUTION_AT = "/solution"
VERIFIER_DIR = "/logs/verifier"
TEST_SCRIPT = "test.sh"
SOLVE_SCRIPT = "solve.sh"
DOCKERFILE = "environment/Dockerfile"
# The agent's workdir when the Dockerfile sets none (Terminal-Bench's convention).
DEFAULT_WORKDIR = "/app"


class _Metadata(StrictModel):
    author_name: str | None = None
    author_email: str | None = None
    difficulty: str | None = None
    category: str | None = None
    tags: list[str] = Field(default_factory=list)
    expert_time_estimate_min: float | None = None
    junior_time_estimate_min: float | None = None
    # Not Harbor's: the dollars a lancer export carries over, so a round trip keeps them.
    price: float | None = Field(None, ge=0)


class _Verifier(StrictModel):
    timeout_sec: float | None = Field(None, gt=0)
    env: dict[str, str] = Field(default_factory=dict)


class _Agent(StrictModel):
    timeout_sec: float | None = Field(None, gt=0)


class _Environment(StrictModel):
    build_timeout_sec: float | None = Field(None, gt=0)
    docker_image: str | None = None
    cpus: float | None = Field(None, gt=0)
    memory_mb: int | None = Field(None, gt=0)
    storage_mb: int | None = Field(None, gt=0)  # accepted, not enforced (docs/harbor.md)
    gpus: int | None = Field(None, ge=0)
    allow_internet: bool | None = None


class _Solution(StrictModel):
    env: dict[str, str] = Field(default_factory=dict)


class TaskToml(StrictModel):
    version: str = "1.0"
    metadata: _Metadata = Field(default_factory=_Metadata)
    verifier: _Verifier = Field(default_factory=_Verifier)
    agent: _Agent = Field(default_factory=_Agent)
    environment: _Environment = Field(default_factory=_Environment)
    solution: _Solution = Field(default_factory=_Solution)


def load_harbor_task(folder: Path) -> Task:
    """The lancer task of a Harbor task folder; TaskError (one line) naming the task and the field."""
    folder = Path(folder).resolve()
    name = folder.name
    spec = _read_toml(folder / "task.toml", name)
    instruction = (folder / "instruction.md").read_text(errors="replace")
    if not instruction.strip():
        raise TaskError(f"task {name}: instruction.md is empty (it is what the agent is asked to do)")
    if not (folder / "tests" / TEST_SCRIPT).is_file():
        raise TaskError(f"task {name}: tests/{TEST_SCRIPT} is missing (it grades the task by writing a reward)")
    env = spec.environment
    if env.gpus:
        raise TaskError(f"task {name}: task.toml environment.gpus = {env.gpus}: lancer's sandboxes have no GPUs")
    dockerfile = folder / DOCKERFILE
    if env.docker_image is None and not dockerfile.is_file():
        compose = " (a docker-compose file is not supported)" if any(folder.glob("environment/*compose*")) else ""
        raise TaskError(f"task {name}: no {DOCKERFILE} and no environment.docker_image in task.toml{compose}")
    dockerfile_text = dockerfile.read_text(errors="replace") if dockerfile.is_file() else ""
    exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in spec.verifier.env.items())
    fields = {
        "id": name,
        "variant": "ic_swe",
        "price": spec.metadata.price or 0.0,
        "title": _title(instruction, name),
        "description": instruction,
        "image": env.docker_image,
        "dockerfile": None if env.docker_image else DOCKERFILE,
        "network": bool(env.allow_internet),
        "test_command": f"{exports}bash {TESTS_AT}/{TEST_SCRIPT}",
        "tests_at": TESTS_AT,
        "reward_dir": VERIFIER_DIR,
        # Harbor's agent and verifier are root in the container; an ENTRYPOINT or CMD
        # (a service the tests query) runs as the image says.
        "container": ContainerSpec(
            workdir=_workdir(dockerfile_text, name),
            user="root",
            image_command=bool(_instruction("ENTRYPOINT|CMD").search(dockerfile_text)),
        ),
        "limits": TaskLimits(
            time_limit_s=spec.agent.timeout_sec,
            grader_timeout_s=spec.verifier.timeout_sec,
            build_timeout_s=env.build_timeout_sec,
            cpus=env.cpus,
            memory=f"{env.memory_mb}m" if env.memory_mb else None,
        ),
        "difficulty": spec.metadata.difficulty,
        "category": spec.metadata.category,
        "tags": spec.metadata.tags,
    }
    try:
        task = Task.model_validate(fields)
    except ValidationError as e:
        raise TaskError(f"task {name}: {describe_validation_error(e)}") from None
    task.folder = task.source = folder
    return task


def _read_toml(path: Path, name: str) -> TaskToml:
    try:
        data = tomllib.loads(path.read_text(errors="replace"))
    except tomllib.TOMLDecodeError as e:
        raise TaskError(f"task {name}: task.toml is not valid TOML: {e}") from None
    try:
        return TaskToml.model_validate(data)
    except ValidationError as e:
        raise TaskError(f"task {name}: task.toml {describe_validation_error(e)}") from None


def _title(instruction: str, name: str) -> str:
    first = next((line.strip() for line in instruction.splitlines() if line.strip()), name)
    return first.lstrip("#").strip()[:200] or name


def _instruction(keywords: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*(?:{keywords})\s+(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


def _workdir(dockerfile_text: str, name: str) -> str:
    """The image's WORKDIR as its Dockerfile leaves it (a relative one joins the one before)."""
    workdir = PurePosixPath(DEFAULT_WORKDIR)
    found = False
    for match in _instruction("WORKDIR").finditer(dockerfile_text):
        value = match.group(1).strip("\"'")
        if "$" in value:
            raise TaskError(f"task {name}: {DOCKERFILE}'s WORKDIR {value} uses a variable: write the path out")
        workdir = workdir / value if found else PurePosixPath("/") / value
        found = True
    if str(workdir) == "/":
        raise TaskError(f"task {name}: {DOCKERFILE}'s WORKDIR is /: the agent needs a folder of its own")
    return str(workdir)
