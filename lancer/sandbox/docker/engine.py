"""The Docker engine: the connection, and the images a sandbox starts from (found, pulled or built)."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from pathlib import Path

import docker
import docker.errors
import requests
import urllib3.exceptions

from lancer.core.errors import SandboxError
from lancer.core.sandbox import SandboxSpec

# Every container lancer makes carries this label (value "1"); images it builds carry it
# with the value "built" (and the base image from scripts/docker-up.sh "base").
MANAGED_LABEL = "lancer.managed"
ENV_IMAGE_LABEL = "env"  # MANAGED_LABEL's value on images holding a task's setup done (envimage)
# ... and on a task's environment built from its dockerfile (a SWE-bench task repo's image,
# its tree and history its own): pruned with --envs too, but no setup image (boot.py).
ENV_BUILT_LABEL = "env-built"
DEFAULT_BASE_IMAGE = "lancer-base:bookworm"

_API_TIMEOUT_S = 120  # one Docker API call (not a command: those stream without a timeout)


def connect() -> docker.DockerClient:
    """A client for the engine DOCKER_HOST (or the default socket) names; SandboxError if none answers."""
    where = os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"
    try:
        client = docker.from_env(timeout=_API_TIMEOUT_S)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        raise SandboxError(
            f"no Docker engine answers at {where} ({first_line(e)}); start one with "
            "`bash scripts/docker-up.sh` (as root), or point DOCKER_HOST at a running engine"
        ) from None
    return client


def base_image() -> str:
    return os.environ.get("LANCER_BASE_IMAGE") or DEFAULT_BASE_IMAGE


def ensure_image(client: docker.DockerClient, spec: SandboxSpec) -> str:
    if spec.image:
        return _present_or_pulled(client, spec.image)
    if spec.dockerfile is not None:
        return build_image(client, spec.dockerfile, spec.label, spec.build_timeout_s, spec.dockerfile_env)
    image = base_image()
    if not has_image(client, image):
        raise SandboxError(f"lancer's base image {image} is missing: build it with `bash scripts/docker-up.sh`")
    return image


def resolve_image(spec: SandboxSpec) -> SandboxSpec:
    """``spec``, or ``spec.without_image`` when ``spec.image`` is not on this machine: such an
    image (a SWE-bench instance's, gigabytes) is used when present, never pulled."""
    if spec.without_image is None or spec.image is None:
        return spec
    client = connect()
    try:
        return spec if has_image(client, spec.image) else spec.without_image
    finally:
        client.close()


def require_image(image: str, how_to_get: str | None = None) -> None:
    """Make sure ``image`` is here before a run starts, pulling it once if it can be; else
    SandboxError saying ``how_to_get`` it (default: build, pull or load it)."""
    client = connect()
    try:
        _present_or_pulled(client, image, how_to_get)
    finally:
        client.close()


def _present_or_pulled(client: docker.DockerClient, image: str, how_to_get: str | None = None) -> str:
    if has_image(client, image):
        return image
    how_to_get = how_to_get or (
        f"build it (`docker build -t {image} DIR`), pull or load it (`docker pull {image}`, `docker load -i FILE`)"
    )
    pull_image(client, image, f"; {how_to_get}, or name another with --image")
    return image


def pull_image(client: docker.DockerClient, image: str, how_to_get: str = "") -> None:
    """Pull ``image``, saying so; SandboxError (one line) if it cannot be."""
    print(f"lancer: image {image} is not here; pulling it", file=sys.stderr)
    try:
        client.images.pull(image)
    except docker.errors.APIError as e:
        why = f"image {image} is not on this machine and could not be pulled ({api_reason(e)})"
        raise SandboxError(why + how_to_get) from None


def build_image(
    client: docker.DockerClient, dockerfile: Path, label: str, timeout_s: float | None = None, env: bool = False
) -> str:
    """Build (or reuse) the image of ``dockerfile``; its build context is the file's folder.

    The tag holds a hash of the context, so an unchanged task reuses its image and a
    changed one gets a new one. Images lancer builds are labelled for ``prune --images``;
    with ``env``, as task environments (``lancer-env-*``, ``prune --envs``).
    """
    dockerfile = Path(dockerfile)
    if not dockerfile.is_file():
        raise SandboxError(f"the task's dockerfile {dockerfile} does not exist")
    context = dockerfile.parent
    kind = ENV_BUILT_LABEL if env else "built"
    tag = f"lancer-{'env' if env else 'task'}-{slug(label or context.name)}:{context_hash(context)}"
    if has_image(client, tag):
        return tag
    who = f"task {label}: " if label else ""
    for base in base_images(dockerfile.read_text(errors="replace")):
        if not has_image(client, base):  # else the engine would try a registry, unreachable here
            raise SandboxError(
                f"{who}the base image {base} of {dockerfile} is not on this machine: build or load it first "
                f"(`docker build -t {base} DIR`, `docker load -i FILE`), or build FROM {base_image()}"
            )
    print(f"lancer: building {tag} from {dockerfile}", file=sys.stderr)
    building = f"{who}building an image from {dockerfile}"
    deadline = time.monotonic() + timeout_s if timeout_s else None
    too_long = f"{building} took longer than {timeout_s or 0:g} s"
    try:
        log = client.api.build(
            path=str(context),
            dockerfile=dockerfile.name,
            tag=tag,
            labels={MANAGED_LABEL: kind, "lancer.task": label},
            rm=True,
            forcerm=True,  # no intermediate container is left, even after a failed step
            decode=True,
            timeout=int(timeout_s or _API_TIMEOUT_S * 30) + 1,  # a silent step ends the read after this long
        )
        last = ""
        for entry in log:
            if "error" in entry:
                raise SandboxError(f"{building} failed: {str(entry['error']).strip()}")
            if entry.get("stream", "").strip():
                last = str(entry["stream"]).strip()
            if deadline is not None and time.monotonic() > deadline:
                raise SandboxError(too_long)  # closing the stream cancels the build
    # A read that outlasts the timeout: requests raises its own error, or urllib3's mid-stream.
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError):
        raise SandboxError(too_long if timeout_s else f"{building} stalled") from None
    except docker.errors.APIError as e:
        raise SandboxError(f"{building} failed: {api_reason(e)}") from None
    if not has_image(client, tag):
        raise SandboxError(f"{building} produced no image: {last}")
    return tag


# FROM [--platform=...] image [AS stage]
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)


def base_images(dockerfile_text: str) -> list[str]:
    """The images a Dockerfile builds FROM: not its own stages, scratch, or names made of ARGs."""
    stages: set[str] = set()
    images: list[str] = []
    for match in _FROM.finditer(dockerfile_text):
        name, stage = match.group(1), match.group(2)
        if name.lower() not in stages and name != "scratch" and "$" not in name and name not in images:
            images.append(name)
        if stage:
            stages.add(stage.lower())
    return images


def has_image(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def context_hash(context: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(path.relative_to(context).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0" if not os.access(path, os.X_OK) else b"\1")
    return digest.hexdigest()[:12]


def slug(text: str) -> str:
    slug = "".join(c if c.isalnum() or c in "_.-" else "-" for c in text.lower()).strip("-.")
    return slug or "task"


def api_reason(error: docker.errors.APIError) -> str:
    return first_line(error.explanation or error)


def first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
