"""The docker sandbox's cached task setup: an image committed once the setup has run.

The first sandbox of a task with ``setup`` commands runs them in a container made as
usual (its image, the repo copied in, the baseline), then commits that container as
``lancer-env-<task>:<key>``; every sandbox after it, the agent's and the grader's, starts
from that image, whose working tree and environment already hold what the setup left,
committed to the git baseline (so the setup's changes are never part of the patch) and
owned by the sandbox user: such a container needs no exec to be ready (boot.py). The
key is lancer.sandbox.envcache's, made from the image's id and what the local sandbox's
key holds. A host lock per key makes concurrent attempts on one machine build it once.
``lancer sandbox prune --envs`` removes these images.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json

from lancer.core.sandbox import SandboxSpec, close_even_if_interrupted
from lancer.sandbox.docker.container import DockerSandbox
from lancer.sandbox.docker.engine import ENV_IMAGE_LABEL, MANAGED_LABEL, connect, ensure_image, has_image, slug
from lancer.sandbox.envcache import env_key, envs_dir, spec_key_parts


def with_setup_image(spec: SandboxSpec) -> tuple[SandboxSpec, str]:
    """A spec whose container starts with ``spec.setup`` done, and "built KEY" or "reused
    KEY". Raises SetupError if a setup command fails (nothing is committed then)."""
    client = connect()
    try:
        image_id = str(client.images.get(ensure_image(client, spec)).id)
        key = env_key(
            [f"docker {image_id} {spec.workdir} {spec.user}", json.dumps(spec.prepare), *spec_key_parts(spec)]
        )
        tag = f"lancer-env-{slug(spec.label or 'task')}:{key}"
        # The image holds the repo, its setup and the prepare commands' work already.
        ready = dataclasses.replace(spec, image=tag, dockerfile=None, repo_dir=None, setup=[], prepare=[])
        if has_image(client, tag):
            return ready, f"reused {key}"
        envs_dir().mkdir(parents=True, exist_ok=True)
        with open(envs_dir() / f"docker-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if has_image(client, tag):
                return ready, f"reused {key}"
            _build(spec, tag)
        return ready, f"built {key}"
    finally:
        client.close()


def _build(spec: SandboxSpec, tag: str) -> None:
    from lancer.sandbox import run_setup

    # remove_paths stay in the image: only the agent's containers lose them.
    sandbox = DockerSandbox(dataclasses.replace(spec, setup=[], remove_paths=[]))
    try:
        run_setup(sandbox, spec.setup, spec.setup_timeout_s)
        sandbox.hand_over_tree()  # what root's prepare commands made is the user's too
        sandbox.commit(tag, {MANAGED_LABEL: ENV_IMAGE_LABEL, "lancer.task": spec.label})
    finally:
        close_even_if_interrupted(sandbox)
