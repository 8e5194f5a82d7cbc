"""Checks made before a run starts, so a task that cannot run as configured is refused with
one line saying how to fix it, instead of running on nothing (or failing minutes in)."""

from __future__ import annotations

from lancer.core.config import SandboxConfig
from lancer.core.errors import SandboxError, TaskError
from lancer.core.tasks import Task


def check_runnable(task: Task, sandbox: SandboxConfig) -> None:
    """Raise TaskError if ``task`` cannot run in ``sandbox``: its code is only in an image
    the local sandbox cannot use, or that image is not on this machine (and cannot be pulled)."""
    if task.runs_eval_script:
        _check_instance_image(task, sandbox)
        return
    if task.compose is not None:
        _check_compose(task, sandbox)
    if task.swebench is not None and sandbox.kind == "docker":
        # Its own image when this machine has it, else (None) lancer's, its environment built there.
        from lancer.sandbox.docker import resolve_image

        image = resolve_image(task.sandbox_spec(for_agent=True, config=sandbox)).image
    elif task.repo_dir is not None:  # its code travels with it; an image, if any, is only a runtime
        image = (sandbox.image or task.image) if sandbox.kind == "docker" else None
    elif task.image or task.dockerfile:
        if sandbox.kind == "local":
            raise TaskError(
                f"task {task.id}'s code is in its image ({task.image or task.dockerfile}), "
                "which the local sandbox cannot use: run it with --sandbox docker"
            )
        image = sandbox.image or task.image
    else:  # no code at all (a manager task): an empty working tree does
        image = sandbox.image if sandbox.kind == "docker" else None
    if image is None:
        return
    from lancer.sandbox.docker import require_image

    try:
        require_image(image, _how_to_get(task, image))
    except SandboxError as e:
        raise TaskError(f"task {task.id}: {e}") from None


def _check_compose(task: Task, sandbox: SandboxConfig) -> None:
    """A compose environment runs in docker only, through the docker compose v2 plugin."""
    if sandbox.kind != "docker":
        raise TaskError(
            f"task {task.id}'s environment is a docker-compose file ({task.compose}), "
            "which the local sandbox cannot run: run it with --sandbox docker"
        )
    from lancer.sandbox.docker.composefile import require_compose

    try:
        require_compose()
    except SandboxError as e:
        raise TaskError(f"task {task.id}: {e}") from None


def _how_to_get(task: Task, image: str) -> str | None:
    from lancer.formats.swelancer import IC_IMAGE, how_to_get_image

    return how_to_get_image(task.id) if image == IC_IMAGE.format(task_id=task.id) else None


def _check_instance_image(task: Task, sandbox: SandboxConfig) -> None:
    """A SWE-bench instance with its eval_script runs in its own image, in docker only; the
    image is pulled with --pull (sandbox.pull), never silently."""
    image = task.image or f"built from {task.dockerfile}"
    if sandbox.kind == "local":
        raise TaskError(
            f"task {task.id} runs its eval_script in its image {image}, "
            "which the local sandbox cannot use: run it with --sandbox docker"
        )
    if sandbox.image:
        raise TaskError(f"task {task.id} runs in its own image {image}: drop --image (sandbox.image)")
    from lancer.formats.swebench_package import require_swebench

    require_swebench()  # its parsers and rules grade it
    from lancer.sandbox.docker import connect
    from lancer.sandbox.docker.engine import ensure_image, has_image, pull_image

    client = connect()
    try:
        if task.image is None:  # a task repo's: built from its Dockerfile once, before any attempt
            try:
                ensure_image(client, task.sandbox_spec(for_agent=True, config=sandbox))
            except SandboxError as e:
                raise TaskError(f"task {task.id}: {e}") from None
            return
        if has_image(client, task.image):
            return
        if not sandbox.pull:
            raise TaskError(
                f"task {task.id}: its image {task.image} is not on this machine: "
                f"`docker pull {task.image}`, or give --pull"
            )
        try:
            pull_image(client, task.image)
        except SandboxError as e:
            raise TaskError(f"task {task.id}: {e}") from None
    finally:
        client.close()
