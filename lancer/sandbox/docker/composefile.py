"""A task's docker-compose file made into the project lancer starts: Harbor's variables and
``main`` service, merged with the task's file, then lancer's labels and limits.

Harbor starts a task's environment as ``docker compose -p NAME --project-directory
environment/ -f base -f build -f environment/docker-compose.yaml up -d``: its own files make
the ``main`` service (built from environment/Dockerfile, or the prebuilt image, idling on
``sleep infinity``, with the task's cpus and memory) and the task's file adds its sidecars
and overrides to ``main``. lancer sets the variables Harbor sets for that interpolation
(:func:`harbor_variables`) and merges the same way, with ``docker compose config``. To the
merged project it adds:

- labels naming the owner process on every service, network and volume, so that a killed
  lancer's project is found and removed (lancer.sandbox.docker.prune);
- an image name for each sidecar built from a folder, so later sandboxes reuse it
  (compose would build one per project) and ``lancer sandbox prune --images`` removes it;
- ``main``'s limits and hardening as lancer's docker sandbox has them;
- without the network, ``internal`` networks: the services reach each other, not the internet.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import docker

from lancer.core.errors import SandboxError
from lancer.core.hostproc import HostResult, run_tagged
from lancer.core.sandbox import SandboxSpec
from lancer.sandbox.docker.engine import MANAGED_LABEL, base_image, base_images, context_hash, has_image, slug

MAIN_SERVICE = "main"
# On every container, network and volume of a project lancer starts: the project's name.
COMPOSE_LABEL = "lancer.compose"
# Where Harbor's log folders are inside the task's containers (its ENV_*_PATH variables).
LOGS_IN_CONTAINER = {"VERIFIER_LOGS": "/logs/verifier", "AGENT_LOGS": "/logs/agent", "ARTIFACTS": "/logs/artifacts"}
TESTS_IN_CONTAINER = "/tests"
_MISSING = (
    "docker compose v2 is not installed (`docker compose version` fails), and this task's environment is a "
    "docker-compose file: run `bash scripts/setup.sh`, or install the docker compose v2 plugin"
)


def require_compose() -> None:
    """SandboxError (one line saying how to install it) unless ``docker compose`` v2 runs here."""
    try:
        proc = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        raise SandboxError(_MISSING) from None
    words = proc.stdout.split()
    version = words[-1].lstrip("v") if words else ""
    if proc.returncode != 0 or not version[:1].isdigit() or int(version.split(".")[0]) < 2:
        raise SandboxError(_MISSING)


def project_name(label: str) -> str:
    """A name no other sandbox has (compose's: lowercase letters, digits, - and _)."""
    stem = slug(label or "sandbox").replace(".", "-")[:30].strip("-_") or "sandbox"
    return f"lancer-{stem}-{os.getpid()}-{os.urandom(3).hex()}"


def owner_labels(spec: SandboxSpec, project: str) -> dict[str, str]:
    return {
        MANAGED_LABEL: "1",
        "lancer.task": spec.label,
        "lancer.pid": str(os.getpid()),
        "lancer.host": socket.gethostname(),
        COMPOSE_LABEL: project,
    }


def harbor_variables(spec: SandboxSpec, image: str, logs: Path) -> dict[str, str]:
    """The variables Harbor sets for its compose files and the task's (its
    DockerEnvironmentEnvVars): the host folders are made in ``logs``."""
    assert spec.compose_file is not None
    variables = {
        "MAIN_IMAGE_NAME": image,
        "PREBUILT_IMAGE_NAME": image,
        "CONTEXT_DIR": str(spec.compose_file.parent),
        "TEST_DIR": TESTS_IN_CONTAINER,
        "CPUS": f"{spec.cpus:g}",
        "MEMORY": spec.memory,
    }
    for name, inside in LOGS_IN_CONTAINER.items():
        host = logs / inside.rsplit("/", 1)[1]
        host.mkdir(parents=True, exist_ok=True)
        variables[f"HOST_{name}_PATH"] = str(host)
        variables[f"ENV_{name}_PATH"] = inside
    return variables


def run_compose(
    args: list[str], *, project: str, files: list[Path], cwd: Path, env: dict[str, str], timeout: float
) -> HostResult:
    """``docker compose -p PROJECT -f FILE... ARGS``; every process it started is gone afterwards."""
    argv = ["docker", "compose", "--ansi", "never", "-p", project]
    for file in files:
        argv += ["-f", str(file)]
    return run_tagged([*argv, *args], cwd=cwd, env={**os.environ, **env}, timeout=timeout)


def write_project(client: docker.DockerClient, spec: SandboxSpec, image: str, project: str, tmp: Path) -> Path:
    """The merged project as a file in ``tmp`` (and the variables it was made with beside it)."""
    assert spec.compose_file is not None
    compose_file = spec.compose_file
    variables = harbor_variables(spec, image, tmp / "logs")
    base = tmp / "harbor-base.json"
    base.write_text(json.dumps({"services": {MAIN_SERVICE: _harbor_main(spec)}}, indent=2))
    merged = run_compose(
        ["--project-directory", str(compose_file.parent), "config", "--format", "json"],
        project=project,
        files=[base, compose_file],
        cwd=tmp,
        env=variables,
        timeout=120,
    )
    who = f"task {spec.label}: " if spec.label else ""
    if merged.exit_code != 0:
        raise SandboxError(f"{who}{compose_file} is not a compose file docker compose reads: {last_line(merged)}")
    lines = merged.output.splitlines()
    try:  # stdout and stderr are merged: warnings may come before the project
        start = next(i for i, line in enumerate(lines) if line.startswith("{"))
        model = json.loads("\n".join(lines[start:]))
    except (StopIteration, ValueError):
        raise SandboxError(f"{who}`docker compose config` printed no project for {compose_file}") from None
    _add_lancer(client, model, spec, project)
    path = tmp / "project.json"
    path.write_text(json.dumps(model, indent=2))
    return path


def _harbor_main(spec: SandboxSpec) -> dict[str, Any]:
    """Harbor's docker-compose-base.yaml with its build (or prebuilt) file, for ``main``."""
    main: dict[str, Any] = {
        "image": "${MAIN_IMAGE_NAME}" if spec.dockerfile is not None else "${PREBUILT_IMAGE_NAME}",
        "command": ["sh", "-c", "sleep infinity"],
        "environment": {"TEST_DIR": "${TEST_DIR}"},
        "deploy": {"resources": {"limits": {"cpus": "${CPUS}", "memory": "${MEMORY}"}}},
    }
    if spec.dockerfile is not None:
        # lancer has built it already (engine.build_image: its cache, its checks), under the
        # name given, so compose finds the image and builds nothing.
        main["build"] = {"context": "${CONTEXT_DIR}"}
    return main


def _add_lancer(client: docker.DockerClient, model: dict[str, Any], spec: SandboxSpec, project: str) -> None:
    labels = owner_labels(spec, project)
    services: dict[str, Any] = model.get("services") or {}
    for name, service in services.items():
        service["labels"] = {**(service.get("labels") or {}), **labels}
        build = service.get("build")
        if name != MAIN_SERVICE and isinstance(build, dict):
            _name_sidecar_image(client, spec, name, service, build)
    main = services[MAIN_SERVICE]
    main.update(
        init=True,  # reaps the agent's orphans; its processes die with the container
        memswap_limit=spec.memory,  # no swap, as lancer's docker sandbox
        security_opt=["no-new-privileges"],
    )
    limits = main.setdefault("deploy", {}).setdefault("resources", {}).setdefault("limits", {})
    limits["pids"] = spec.pids_limit
    for kind in ("networks", "volumes"):
        for resource in (model.get(kind) or {}).values():
            if resource.get("external"):
                continue
            resource["labels"] = {**(resource.get("labels") or {}), **labels}
            if kind == "networks" and not spec.network:
                resource["internal"] = True  # the services reach each other, nothing outside


def _name_sidecar_image(
    client: docker.DockerClient, spec: SandboxSpec, name: str, service: dict[str, Any], build: dict[str, Any]
) -> None:
    context = Path(str(build.get("context", "")))
    if not context.is_dir():
        return  # a git URL or the like: compose's business
    dockerfile = context / str(build.get("dockerfile") or "Dockerfile")
    if dockerfile.is_file():
        for base in base_images(dockerfile.read_text(errors="replace")):
            if not has_image(client, base):  # else the engine would try a registry, unreachable here
                raise SandboxError(
                    f"task {spec.label}: the base image {base} of service {name} ({dockerfile}) is not on this "
                    f"machine: build or load it first (`docker build -t {base} DIR`, `docker load -i FILE`), "
                    f"or build FROM {base_image()}"
                )
    if not service.get("image"):
        service["image"] = f"lancer-compose-{slug(spec.label or 'task')}-{slug(name)}:{context_hash(context)}"
    build["labels"] = {**(build.get("labels") or {}), MANAGED_LABEL: "built", "lancer.task": spec.label}


def last_line(result: HostResult) -> str:
    """What a failed compose command said last (its error)."""
    lines = [line.strip() for line in result.output.splitlines() if line.strip()]
    if result.timed_out:
        return "timed out"
    return lines[-1] if lines else f"exit code {result.exit_code}"
