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

With ``SandboxSpec.env_venv_only`` (SWE-bench instances of one repository and version)
the image is shared by tasks of different trees: built on the first one's, named for the
key they share, and every container from it gets its own task's tree at the same
``workdir``, where the setup's editable install looks. With ``setup_network`` the
container that runs the setup has the network (to install dependencies); no other does.
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
        # Shared: named for what its tasks share, not for the first of them.
        name = " ".join(spec.env_key_parts or []) if spec.env_venv_only else spec.label or "task"
        tag = f"lancer-env-{slug(name)}:{key}"
        # The image holds the setup and the prepare commands' work already, and the repo
        # unless each container brings its own.
        repo_dir = spec.repo_dir if spec.env_venv_only else None
        ready = dataclasses.replace(
            spec, image=tag, dockerfile=None, repo_dir=repo_dir, setup=[], prepare=[], setup_network=False
        )
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
    network = spec.network or spec.setup_network  # the network stays for the whole build
    sandbox = DockerSandbox(dataclasses.replace(spec, setup=[], remove_paths=[], network=network, setup_network=False))
    try:
        run_setup(sandbox, spec.setup, spec.setup_timeout_s)
        sandbox.hand_over_tree()  # what root's prepare commands made is the user's too
        sandbox.commit(tag, {MANAGED_LABEL: ENV_IMAGE_LABEL, "lancer.task": spec.label})
    finally:
        close_even_if_interrupted(sandbox)
