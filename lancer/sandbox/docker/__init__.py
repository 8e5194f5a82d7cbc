"""The docker sandbox: the task's repo in a container of its own, through the docker SDK.

The container's PID 1 is Docker's tini with a tiny ``sh`` loop under it that reads the
container's stdin, which lancer holds open through an attach connection. When the lancer
process ends in any way (even SIGKILL) the connection closes, the loop reads end of file
and exits, and Docker removes the container (``auto_remove``): nothing is left behind.
The same loop turns SIGUSR1 into ``kill -KILL -1``, the reset used when a fork bomb has
used up the process limit so that nothing else can start in the container.

Every ``docker exec`` is started through a one-line ``sh`` wrapper that prints its pid
(which is also its session id: Docker makes every exec a session leader) before it
``exec``s the command, so a command past its timeout is killed with its whole session
inside the container, the way the local backend kills it on the host.

The package, by job: ``engine`` (the connection and images), ``boot`` (starting a
container), ``container`` (the Sandbox protocol), ``streams`` (exec streams), ``prune``.
"""

from lancer.sandbox.docker.boot import SANDBOX_USER
from lancer.sandbox.docker.container import DockerSandbox
from lancer.sandbox.docker.engine import (
    DEFAULT_BASE_IMAGE,
    MANAGED_LABEL,
    base_image,
    build_image,
    connect,
    require_image,
    resolve_image,
)
from lancer.sandbox.docker.envimage import with_setup_image
from lancer.sandbox.docker.prune import prune

__all__ = [
    "DEFAULT_BASE_IMAGE",
    "MANAGED_LABEL",
    "SANDBOX_USER",
    "DockerSandbox",
    "base_image",
    "build_image",
    "connect",
    "prune",
    "require_image",
    "resolve_image",
    "with_setup_image",
]
