"""The compose sandbox: a task's docker-compose project, the agent's commands in its ``main`` service.

As Harbor runs a task whose ``environment/`` holds a ``docker-compose.yaml``: the project
(lancer.sandbox.docker.composefile) starts with ``docker compose up -d`` under a name of
its own, and every command, shell and file operation goes to the ``main`` service's
container, through the same Docker API execs as :class:`DockerSandbox` (Harbor's
``docker compose exec main``); the sidecars are reached over the project's network by
their service names.

Nothing is left behind: :meth:`close` runs ``docker compose down`` (containers, networks,
volumes), then removes whatever still carries the project's label. After a ``kill -9`` of
lancer, the project's watcher removes it (lancer.sandbox.docker.lifeline); should that fail
too, the next compose sandbox to start, or ``lancer sandbox prune``, removes every project
whose lancer process has ended (their labels name it: lancer.sandbox.docker.prune).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import docker.errors

from lancer.core.errors import SandboxError
from lancer.core.sandbox import SandboxSpec
from lancer.sandbox.docker.composefile import (
    MAIN_SERVICE,
    last_line,
    project_name,
    require_compose,
    run_compose,
    write_project,
)
from lancer.sandbox.docker.container import DockerSandbox
from lancer.sandbox.docker.engine import api_reason
from lancer.sandbox.docker.lifeline import release, start
from lancer.sandbox.docker.prune import COMPOSE_PROJECT_LABEL, prune_projects, remove_project

_UP_SLACK_S = 600  # past the build timeout: pulling, starting, waiting for healthy sidecars
_DOWN_TIMEOUT_S = 300


class ComposeSandbox(DockerSandbox):
    """A compose project whose ``main`` service is the sandbox (``spec.compose_file``)."""

    def __init__(self, spec: SandboxSpec) -> None:
        if spec.compose_file is None:
            raise ValueError("a compose sandbox needs spec.compose_file")
        require_compose()
        self._project: str | None = None
        self._project_file: Path | None = None
        super().__init__(spec)

    def _create(self, image: str) -> None:
        spec = self._spec
        assert spec.compose_file is not None
        with contextlib.suppress(docker.errors.APIError, SandboxError):  # others' leftovers: not this run's fault
            prune_projects(self._api)  # what a killed lancer left (kill -9: no close ran)
        self._from_env_image = False
        self._project = project = project_name(spec.label)  # set first: close() removes whatever up made
        self._watcher = start("project", project)  # before up: a lancer killed while up runs leaves nothing either
        self._project_file = write_project(self._client, spec, image, project, self._tmp)
        timeout = (spec.build_timeout_s or 1800) + _UP_SLACK_S
        started = run_compose(
            ["up", "-d"], project=project, files=[self._project_file], cwd=self._tmp, env={}, timeout=timeout
        )
        if started.exit_code != 0:
            raise SandboxError(
                f"task {spec.label}: the compose environment {spec.compose_file} did not start "
                f"(`docker compose up`): {last_line(started)}"
            )
        self._id = self._main_container(project)
        self._env = {"TERM": "dumb", "PAGER": "cat", "GIT_PAGER": "cat", **spec.env}

    def _main_container(self, project: str) -> str:
        labels = [f"{COMPOSE_PROJECT_LABEL}={project}", f"com.docker.compose.service={MAIN_SERVICE}"]
        running = self._api.containers(filters={"label": labels})
        if not running:
            stopped = self._api.containers(all=True, filters={"label": labels})
            logs = self._api.logs(stopped[0]["Id"], tail=5).decode(errors="replace").strip() if stopped else ""
            raise SandboxError(
                f"task {self._spec.label}: the compose environment's {MAIN_SERVICE} service is not running: "
                f"{logs[-300:]!r}"
            )
        return str(running[0]["Id"])

    def kill_all_processes(self) -> None:
        """Restart ``main`` (its idle ``sleep`` under Docker's init comes back; the files stay)."""
        try:
            self._api.restart(self._cid, timeout=0)
        except docker.errors.APIError as e:
            raise SandboxError(f"could not restart the compose environment's {MAIN_SERVICE}: {api_reason(e)}") from None

    def close(self) -> None:
        project = self._project
        try:
            if project is not None:
                self._down(project)
                self._project = None  # only once gone: an interrupted close runs again (close_even_if_interrupted)
            if self._watcher is not None:
                release(self._watcher)
                self._watcher = None
        finally:
            self._id = None  # removed with its project
            super().close()

    def _down(self, project: str) -> None:
        if self._project_file is not None and self._project_file.is_file():
            with contextlib.suppress(OSError):
                run_compose(
                    ["down", "--volumes", "--remove-orphans", "--timeout", "0"],
                    project=project,
                    files=[self._project_file],
                    cwd=self._tmp,
                    env={},
                    timeout=_DOWN_TIMEOUT_S,
                )
        remove_project(self._api, project)  # whatever compose did not (or could not) remove
