"""``lancer sandbox prune``: containers whose lancer process ended, and optionally built images."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

import docker.errors

from lancer.core.errors import SandboxError
from lancer.core.sandbox import pid_alive
from lancer.sandbox.docker.engine import ENV_BUILT_LABEL, ENV_IMAGE_LABEL, MANAGED_LABEL, api_reason, connect


def prune(everything: bool = False, images: bool = False, envs: bool = False) -> int:
    """Remove lancer's containers whose lancer process has ended; returns how many went.

    ``everything``: also containers of processes still running (and of other machines
    sharing the engine). ``images``: also the images lancer built from task Dockerfiles;
    ``envs``: also the images holding tasks' setup done (lancer.sandbox.docker.envimage).
    """
    client = connect()
    try:
        removed = 0
        here = socket.gethostname()
        for info in client.api.containers(all=True, filters={"label": MANAGED_LABEL}):
            labels = info.get("Labels") or {}
            if labels.get(MANAGED_LABEL) != "1":
                continue
            alive = labels.get("lancer.host") == here and pid_alive(labels.get("lancer.pid", ""))
            foreign = labels.get("lancer.host") != here
            if everything or not (alive or foreign):
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


def remove_container(api: Any, container_id: str) -> int:
    """Remove a container and wait until it is gone; 1 if it was there."""
    try:
        api.remove_container(container_id, force=True)
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
