"""Tasks: a folder (task.yaml + repo/ + hidden tests/), validated strictly."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from lancer.core.config import RunConfig, SandboxConfig, StrictModel, describe_validation_error
from lancer.core.errors import TaskError
from lancer.core.sandbox import SandboxSpec

Variant = Literal["ic_swe", "swe_manager"]
# Where the default test command writes its JUnit XML report, for the grader to read.
REPORT_ENV = "LANCER_TEST_REPORT"


class AppSpec(StrictModel):
    """How to start the task's web app for the browser tools and the grader's tests."""

    # May contain ``{port}``: lancer then picks a free port and substitutes it.
    command: str
    port: int | None = Field(None, ge=1, le=65535)
    # Path polled until it answers, and for how long.
    ready_path: str = "/"
    ready_timeout_s: float = Field(60, gt=0)


class ContainerSpec(StrictModel):
    """Docker settings, chiefly for images that bring their repo and setup (SWE-Lancer's).

    See docs/docker.md. The repo is the task's repo/ copied to ``workdir``, or, without a
    repo/ folder, the one already in the image at ``workdir`` (given a fresh git baseline).
    """

    workdir: str = "/repo"
    # None: the run config's sandbox.user (default auto: a non-root user where possible).
    user: str | None = None
    # Run the image's own ENTRYPOINT/CMD (its setup) instead of lancer's idle init.
    image_command: bool = False
    # Wait until the image's setup has written this file, at most ready_timeout_s.
    ready_file: str | None = None
    ready_timeout_s: float = Field(3600, gt=0)
    # The grader's user where it differs from the agent's (Harbor's [verifier] user).
    grader_user: str | None = None
    # Network while the image's own setup runs; cut before the agent starts.
    setup_network: bool = False
    # Run as root after that setup, before the baseline (agent's and grader's sandbox).
    prepare: list[str] = Field(default_factory=list)
    # Removed from the agent's sandbox only (e.g. tests baked into the image); the grader's
    # fresh container still has them.
    hide: list[str] = Field(default_factory=list)

    @field_validator("workdir", "ready_file")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        if path is not None and (not path.startswith("/") or path.rstrip("/") == ""):
            raise ValueError(f"{path!r} must be an absolute path inside the container (not /)")
        return path

    @field_validator("hide")
    @classmethod
    def _absolute_paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            cls._absolute(path)
        return paths

    @model_validator(mode="after")
    def _hide_outside_workdir(self) -> ContainerSpec:
        workdir = self.workdir.rstrip("/") + "/"
        for path in self.hide:
            if workdir.startswith(path.rstrip("/") + "/"):
                raise ValueError(f"hide: {path} would remove the working tree {self.workdir}")
        return self


class TaskLimits(StrictModel):
    """A task's own limits (Harbor's task.toml sets them), in place of the run config's."""

    time_limit_s: float | None = Field(None, gt=0)  # the agent's run: limits.time_limit_s
    grader_timeout_s: float | None = Field(None, gt=0)  # one run of the tests: grader.timeout_s
    build_timeout_s: float | None = Field(None, gt=0)  # building its dockerfile's image
    cpus: float | None = Field(None, gt=0)  # sandbox.cpus
    memory: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+)?[bkmgBKMG]?$")  # sandbox.memory


class SWEBenchSpec(StrictModel):
    """Graded as SWE-bench grades (docs/swebench.md): ``test_patch`` (a file in the task
    folder) is applied only at grading, then these tests run; resolved iff every one passes."""

    instance_id: str
    repo: str  # "owner/name"
    base_commit: str
    fail_to_pass: list[str] = Field(min_length=1)
    pass_to_pass: list[str] = Field(default_factory=list)
    test_patch: str = "test.patch"
    version: str | None = None
    environment_setup_commit: str | None = None
    # The current datasets' (swebench 5.x): the script the official harness runs in the
    # instance's image (a file in the task folder), the log parser that reads its output
    # between the Start/End Test Output markers, and pass_and_fail or fail_only.
    eval_script: str | None = None
    log_parser: str | None = None
    eval_type: str | None = None


# Where a SWE-bench image's conda env "testbed" is: first on PATH for every command.
SWEBENCH_IMAGE_ENV = {
    "PATH": "/opt/miniconda3/envs/testbed/bin:/opt/miniconda3/bin:"
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}


class Proposal(StrictModel):
    id: int
    content: str


class Task(StrictModel):
    id: str
    variant: Variant
    # None: the task has no price (a SWE-bench instance): dollars are absent, not $0.
    price: float | None = Field(ge=0)
    title: str
    description: str
    # The task set it belongs to (SWE-Lancer's "diamond" / "nondiamond"), for filters and summaries.
    set: str | None = None
    image: str | None = None
    dockerfile: str | None = None
    # A docker-compose file (relative to the folder) whose ``main`` service, built from the
    # image or dockerfile, is the sandbox, with the file's other services beside it
    # (Harbor's environment/docker-compose.yaml; docker only: docs/harbor.md).
    compose: str | None = None
    setup: list[str] = Field(default_factory=list)
    app: AppSpec | None = None
    # Run from the working tree root; None: pytest on the hidden test files alone.
    test_command: str | None = None
    # A JUnit XML report the test command writes (node --test's, jest's or vitest's junit
    # reporter), relative to where it runs: the grader reads per-test outcomes from it.
    test_report: str | None = Field(None, min_length=1)
    proposals: list[Proposal] = Field(default_factory=list)
    # Never shown to the agent: only the grader reads it.
    correct_proposal: int | None = None
    env: dict[str, str] = Field(default_factory=dict)
    # Only the agent's sandbox has these (Harbor's [agent] env), only the reference
    # solution's run these (its [solution] env).
    agent_env: dict[str, str] = Field(default_factory=dict)
    solution_env: dict[str, str] = Field(default_factory=dict)
    # The agent's network; the grader's is ``grader_network`` when set (Harbor states the
    # network per phase), else the same.
    network: bool = False
    grader_network: bool | None = None
    # The Python the task's environment is made from in the local sandbox ("3.11"); None:
    # the system's python3. Docker uses the image's.
    python: str | None = Field(None, pattern=r"^3\.[0-9]+$")
    container: ContainerSpec | None = None
    # Where the hidden tests/ folder goes at grading (absolute); None: <workdir>/tests.
    tests_at: str | None = None
    # The test command's verdict is a reward it writes to reward.txt (a number) or
    # reward.json in this folder (Harbor's /logs/verifier): 1 resolves the task, a
    # partial reward is recorded; no reward is an error. None: a test report or exit code.
    reward_dir: str | None = None
    limits: TaskLimits = Field(default_factory=TaskLimits)
    # For the eval summary's breakdowns (by_difficulty, by_category, by_tag).
    difficulty: str | None = None
    category: str | None = None
    tags: list[str] = Field(default_factory=list)
    # Tasks with the same key share one task environment (local sandbox, and a SWE-bench
    # instance in docker without its own image): ``setup`` runs on the first one's working
    # tree and every later sandbox gets what it installed (a copy of the venv, an image).
    env_key: str | None = Field(None, pattern=r"^[A-Za-z0-9_.@+=-]+$")
    swebench: SWEBenchSpec | None = None

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
        if self.image and self.dockerfile:
            raise ValueError("give image or dockerfile, not both")
        if self.compose and not (self.image or self.dockerfile):
            raise ValueError("compose needs the task's image or dockerfile (its main service's)")
        if self.container and self.container.image_command and not (self.image or self.dockerfile):
            raise ValueError("container.image_command needs the task's image or dockerfile")
        return self

    @property
    def repo_dir(self) -> Path | None:
        return self.folder / "repo" if self.folder and (self.folder / "repo").is_dir() else None

    @property
    def test_patch(self) -> bytes | None:
        """A SWE-bench task's test patch, applied only at grading."""
        if self.swebench is None or self.folder is None:
            return None
        return (self.folder / self.swebench.test_patch).read_bytes()

    @property
    def tests_dir(self) -> Path | None:
        return self.folder / "tests" if self.folder and (self.folder / "tests").is_dir() else None

    def sandbox_spec(self, for_agent: bool, config: SandboxConfig | None = None) -> SandboxSpec:
        """The sandbox for this task; the agent's hides the task folder (answers, hidden tests).

        ``config`` (the run's sandbox section) sets the docker limits; its image replaces
        the task's image and dockerfile, its network (when set) the task's.
        """
        config = config or SandboxConfig()
        if self.runs_eval_script and config.kind == "docker":
            # Only in its own image (docs/swebench.md): its eval_script checks files out of
            # base_commit, so the grader's container keeps the image's history.
            spec = self._spec(for_agent, config, in_image=True)
            spec.keep_history = not for_agent
            return spec
        if not self._in_swebench_image(config):
            return self._spec(for_agent, config, in_image=False)
        # A SWE-bench instance in docker runs on its own image's tree (/testbed), built and
        # installed there, in its conda env, when this machine has that image; else on its
        # repo/ in lancer's base image, with an environment built per repo and version.
        spec = self._spec(for_agent, config, in_image=True)
        spec.without_image = self._spec(for_agent, config, in_image=False)
        return spec

    def _spec(self, for_agent: bool, config: SandboxConfig, in_image: bool) -> SandboxSpec:
        container = self.container or ContainerSpec()
        hidden = [self.source] if for_agent and self.source is not None else []
        dockerfile = (self.folder / self.dockerfile) if self.dockerfile and self.folder else None
        # A SWE-bench instance in docker but not in its own image: lancer's user.
        built_env = self.swebench is not None and config.kind == "docker" and not in_image
        # Its setup alone (either sandbox) has the network: pip resolves the repo's build requirements.
        swebench_setup = self.swebench is not None and not in_image
        # Tasks sharing an env_key share one cached environment (the venv, or in docker an
        # image, without the tree: each keeps its own working tree); docker's other cached
        # images hold the tree, so they are keyed by it.
        shared = self.env_key is not None and (config.kind == "local" or built_env)
        return SandboxSpec(
            repo_dir=None if in_image else self.repo_dir,
            hidden_paths=hidden,
            env={**self.env, **(self.agent_env if for_agent else {}), **(SWEBENCH_IMAGE_ENV if in_image else {})},
            image=config.image or (None if built_env else self.image),
            dockerfile=None if config.image else dockerfile,
            workdir=container.workdir,
            network=self.phase_network(for_agent, config),
            isolation=config.isolation,
            python=self.python,
            label=self.id,
            setup=[] if in_image else list(self.setup),
            env_key_parts=[f"shared {self.env_key}"] if shared else None,
            env_venv_only=shared,
            memory=config.memory,
            cpus=config.cpus,
            pids_limit=config.pids_limit,
            user=config.user if built_env else self._user(for_agent, container) or config.user,
            image_command=container.image_command,
            ready_file=container.ready_file,
            ready_timeout_s=container.ready_timeout_s,
            setup_network=swebench_setup or container.setup_network,
            prepare=list(container.prepare),
            remove_paths=list(container.hide) if for_agent else [],
            build_timeout_s=self.limits.build_timeout_s,
            dockerfile_env=self.runs_eval_script,
            compose_file=self.folder / self.compose if self.compose and self.folder else None,
        )

    def phase_network(self, for_agent: bool, config: SandboxConfig) -> bool:
        """The agent's (or the grader's) network: the task's, unless the run's sandbox.network overrides it."""
        if config.network is not None:
            return config.network
        return self.network if for_agent or self.grader_network is None else self.grader_network

    def network_summary(self, config: SandboxConfig) -> dict[str, object]:
        """What a run's header and result.json say of the network: each phase's, and what decided it."""
        asked = {"agent": self.network, "grader": self.network if self.grader_network is None else self.grader_network}
        given = {"agent": self.phase_network(True, config), "grader": self.phase_network(False, config)}
        summary: dict[str, object] = {phase: "on" if on else "off" for phase, on in given.items()}
        if given != asked:
            summary["forced_by"] = f"sandbox.network: {str(config.network).lower()}"
            summary["task_asks"] = {phase: "on" if on else "off" for phase, on in asked.items()}
        return summary

    @staticmethod
    def _user(for_agent: bool, container: ContainerSpec) -> str | None:
        return container.user if for_agent or container.grader_user is None else container.grader_user

    def limited(self, config: RunConfig) -> RunConfig:
        """``config`` with the task's own limits in place of the run's."""
        limits = self.limits
        changes: dict[str, dict[str, object]] = {
            "limits": {"time_limit_s": limits.time_limit_s},
            "grader": {"timeout_s": limits.grader_timeout_s},
            # Docker refuses more CPUs than the machine has.
            "sandbox": {"cpus": limits.cpus and min(limits.cpus, os.cpu_count() or 1), "memory": limits.memory},
        }
        updated = {
            section: getattr(config, section).model_copy(update={k: v for k, v in fields.items() if v is not None})
            for section, fields in changes.items()
        }
        return config.model_copy(update=updated)

    @property
    def runs_eval_script(self) -> bool:
        """A SWE-bench instance of the current datasets: its eval_script runs in its image."""
        in_image = self.image is not None or self.dockerfile is not None
        return self.swebench is not None and self.swebench.eval_script is not None and in_image

    def default_test_command(self) -> str:
        """pytest on the hidden test files alone (not on tests the repo itself carries); its
        report comes from lancer's pytest plugin, as any pytest run's does. (A SWE-bench
        instance's tests run as SWE-bench runs them: lancer.grader.swebench_eval.)"""
        tests = self.tests_dir
        files = sorted(p.relative_to(tests).as_posix() for p in tests.rglob("test_*.py")) if tests else []
        targets = " ".join(shlex.quote(f"tests/{f}") for f in files) or "tests"
        return f"python3 -m pytest -q -p no:cacheprovider {targets}"

    def _in_swebench_image(self, config: SandboxConfig) -> bool:
        # docs/swebench.md: in docker, the instance's own image (when this machine has it).
        return self.swebench is not None and config.kind == "docker" and not config.image

    def public_summary(self) -> dict[str, object]:
        """What may be written to a trajectory header (what the agent is told): never the answer."""
        summary: dict[str, object] = {
            "id": self.id,
            "variant": self.variant,
            "set": self.set,
            "price": self.price,
            "title": self.title,
            "description": self.description,
        }
        if self.proposals:
            summary["proposals"] = [p.model_dump() for p in self.proposals]
        return summary


# A Harbor (Terminal-Bench 2) task folder holds both; lancer.formats.harbor reads it.
HARBOR_FILES = ("task.toml", "instruction.md")


def is_harbor_folder(path: Path) -> bool:
    return not (path / "task.yaml").is_file() and all((path / name).is_file() for name in HARBOR_FILES)


def is_task_folder(path: Path) -> bool:
    return (path / "task.yaml").is_file() or is_harbor_folder(path)


def task_folders(path: Path) -> list[Path]:
    """``path`` itself when it is a task folder (lancer's task.yaml or Harbor's task.toml +
    instruction.md; or no folder at all: the loader then says what is wrong), else its
    task-folder subfolders, sorted; perhaps none."""
    if not path.is_dir() or is_task_folder(path):
        return [path]
    return sorted(p for p in path.iterdir() if p.is_dir() and is_task_folder(p))


def load_task(folder: Path) -> Task:
    """Load ``folder/task.yaml``; raises TaskError naming the file and the bad field."""
    folder = Path(folder)
    spec = folder / "task.yaml"
    if not folder.is_dir():
        raise TaskError(
            f"task folder {folder} does not exist (give a folder holding task.yaml, or a SWE-Lancer task id)"
        )
    if not spec.is_file():
        raise TaskError(
            f"{folder} has no task.yaml (a task folder holds task.yaml, repo/ and tests/; "
            "a Harbor task folder task.toml and instruction.md)"
        )
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
    if task.variant == "ic_swe" and task.tests_dir is None and task.test_command is None and task.swebench is None:
        # Found now, not after a run that could never be graded.
        raise TaskError(
            f"{folder} has no tests/ folder: an ic_swe task needs hidden tests (or a test_command that brings its own)"
        )
    return task
