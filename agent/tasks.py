"""Tasks: a folder (task.yaml + repo/ + hidden tests/), validated strictly."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from agent.config import StrictModel, describe_validation_error
from agent.errors import TaskError
from sandbox.base import SandboxSpec

Variant = Literal["ic_swe", "swe_manager"]


class AppSpec(StrictModel):
    """How to start the task's web app for the browser tools and the grader's tests."""

    # May contain ``{port}``: lancer then picks a free port and substitutes it.
    command: str
    port: int | None = Field(None, ge=1, le=65535)
    # Path polled until it answers, and for how long.
    ready_path: str = "/"
    ready_timeout_s: float = Field(60, gt=0)


class Proposal(StrictModel):
    id: int
    content: str


class Task(StrictModel):
    id: str
    variant: Variant
    price: float = Field(ge=0)
    title: str
    description: str
    image: str | None = None
    dockerfile: str | None = None
    setup: list[str] = Field(default_factory=list)
    app: AppSpec | None = None
    # Run from the working tree root; None: pytest on the hidden test files alone.
    test_command: str | None = None
    proposals: list[Proposal] = Field(default_factory=list)
    # Never shown to the agent: only the grader reads it.
    correct_proposal: int | None = None
    env: dict[str, str] = Field(default_factory=dict)
    network: bool = False

    # Filled by the loader, not read from task.yaml: the task folder, and what the agent must
    # never see (the folder with its hidden tests and answers, or a dataset file).
    folder: Path | None = Field(None, exclude=True)
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _manager_fields(self) -> Task:
        if self.variant == "swe_manager":
            if not self.proposals:
                raise ValueError("a swe_manager task needs proposals")
            if self.correct_proposal is None:
                raise ValueError("a swe_manager task needs correct_proposal")
            if self.correct_proposal not in {p.id for p in self.proposals}:
                raise ValueError(f"correct_proposal {self.correct_proposal} is not one of the proposal ids")
        return self

    @property
    def repo_dir(self) -> Path | None:
        return self.folder / "repo" if self.folder and (self.folder / "repo").is_dir() else None

    @property
    def tests_dir(self) -> Path | None:
        return self.folder / "tests" if self.folder and (self.folder / "tests").is_dir() else None

    def sandbox_spec(self, for_agent: bool) -> SandboxSpec:
        """The sandbox for this task; the agent's hides the task folder (answers, hidden tests)."""
        hidden = [self.source] if for_agent and self.source is not None else []
        return SandboxSpec(
            repo_dir=self.repo_dir,
            hidden_paths=hidden,
            env=dict(self.env),
            image=self.image,
            dockerfile=(self.folder / self.dockerfile) if self.dockerfile and self.folder else None,
            network=self.network,
            label=self.id,
        )

    def public_summary(self) -> dict[str, object]:
        """What may be written to a trajectory header: never the answer."""
        return {"id": self.id, "variant": self.variant, "price": self.price, "title": self.title}


def load_task(folder: Path) -> Task:
    """Load ``folder/task.yaml``; raises TaskError naming the file and the bad field."""
    folder = Path(folder)
    spec = folder / "task.yaml"
    if not folder.is_dir():
        raise TaskError(
            f"task folder {folder} does not exist (give a folder holding task.yaml, or a SWE-Lancer task id)"
        )
    if not spec.is_file():
        raise TaskError(f"{folder} has no task.yaml (a task folder holds task.yaml, repo/ and tests/)")
    try:
        data = yaml.safe_load(spec.read_text())
    except yaml.YAMLError as e:
        raise TaskError(f"{spec} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise TaskError(f"{spec} must be a YAML mapping with id, variant, price, title, description")
    try:
        task = Task.model_validate(data)
    except ValidationError as e:
        raise TaskError(f"{spec}: {describe_validation_error(e)}") from None
    task.folder = task.source = folder.resolve()
    if task.variant == "ic_swe" and task.repo_dir is None and task.image is None and task.dockerfile is None:
        raise TaskError(f"{folder} has no repo/ folder and task.yaml names no image or dockerfile")
    return task
