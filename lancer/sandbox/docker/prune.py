"""``lancer sandbox prune``: containers and compose projects whose lancer process ended, and built images."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

import docker.errors

from lancer.core.errors import SandboxError
from lancer.core.sandbox import pid_alive
from lancer.sandbox.docker.composefile import COMPOSE_LABEL
from lancer.sandbox.docker.engine import ENV_BUILT_LABEL, ENV_IMAGE_LABEL, MANAGED_LABEL, api_reason, connect

# What docker compose labels every container, network and volume of a project with.
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"


def prune(everything: bool = False, images: bool = False, envs: bool = False) -> int:
    """Remove lancer's containers whose lancer process has ended; returns how many went.

    ``everything``: also containers of processes still running (and of other machines
    sharing the engine). ``images``: also the images lancer built from task Dockerfiles;
    ``envs``: also the images holding tasks' setup done (lancer.sandbox.docker.envimage).
    """
    client = connect()
    try:
        removed = prune_projects(client.api, everything)
        for info in client.api.containers(all=True, filters={"label": MANAGED_LABEL}):
            labels = info.get("Labels") or {}
            if labels.get(MANAGED_LABEL) != "1" or COMPOSE_LABEL in labels:
                continue
            if everything or abandoned(labels):
                removed += remove_container(client.api, str(info["Id"]))
        wanted = (("built", images), (ENV_IMAGE_LABEL, envs), (ENV_BUILT_LABEL, envs))
        kinds = [kind for kind, asked in wanted if asked]
        for kind in kinds:
            for image in client.api.images(filters={"label": f"{MANAGED_LABEL}={kind}"}):
                with contextlib.suppress(docker.errors.NotFound):
                    client.api.remove_image(image["Id"], force=True)
                    removed += 1
        return removed
    except docker.errors.APIError as e:
        raise SandboxError(f"pruning failed: {api_reason(e)}") from None
    finally:
        client.close()


def abandoned(labels: dict[str, str]) -> bool:
    """Whether what carries these labels was made by a lancer process of this machine that has ended."""
    return labels.get("lancer.host") == socket.gethostname() and not pid_alive(labels.get("lancer.pid", ""))


def prune_projects(api: Any, everything: bool = False) -> int:
    """Remove the compose projects (lancer.sandbox.docker.compose) whose lancer process has
    ended (all, with ``everything``), whatever of them is left: a container, a network or a
    volume (a lancer killed while ``docker compose up`` ran); the containers removed."""
    owners: dict[str, dict[str, str]] = {}
    where = {"label": COMPOSE_LABEL}
    found = [
        *api.containers(all=True, filters=where),
        *api.networks(filters=where),
        *((api.volumes(filters=where) or {}).get("Volumes") or []),
    ]
    for info in found:
        labels = info.get("Labels") or {}
        owners.setdefault(labels.get(COMPOSE_LABEL, ""), labels)
    return sum(
        remove_project(api, project)
        for project, labels in owners.items()
        if project and (everything or abandoned(labels))
    )


def remove_project(api: Any, project: str) -> int:
    """Remove every container (with its anonymous volumes), network and volume of compose
    project ``project``; the number of containers removed."""
    where = {"label": f"{COMPOSE_PROJECT_LABEL}={project}"}
    try:
        removed = sum(
            remove_container(api, str(c["Id"]), volumes=True) for c in api.containers(all=True, filters=where)
        )
        for network in api.networks(filters=where):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_network(network["Id"])
        for volume in (api.volumes(filters=where) or {}).get("Volumes") or []:
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_volume(volume["Name"], force=True)
    except docker.errors.APIError as e:
        raise SandboxError(
            f"could not remove compose project {project}: {api_reason(e)}; run `lancer sandbox prune`"
        ) from None
    return removed


def remove_container(api: Any, container_id: str, volumes: bool = False) -> int:
    """Remove a container (and its anonymous volumes, with ``volumes``) and wait until it is gone; 1 if it was there."""
    try:
        api.remove_container(container_id, force=True, v=volumes)
    except docker.errors.NotFound:
        return 0
    except docker.errors.APIError as e:
        if e.status_code != 409:  # 409: auto-removal already under way
            raise SandboxError(f"could not remove container {container_id[:12]}: {api_reason(e)}") from None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            api.inspect_container(container_id)
        except docker.errors.NotFound:
            return 1
        time.sleep(0.05)
    raise SandboxError(f"container {container_id[:12]} was not removed within 30 s; run `lancer sandbox prune`")
