"""A watcher that removes a container or a compose project when the lancer process that made it ends, even by kill -9.

A sandbox container under lancer's own init ends itself when lancer's attach connection
closes (lancer.sandbox.docker). A container running its image's own command (SWE-Lancer's)
has no such loop, nor has a compose project's sidecars, networks and volumes, so each of
these gets this watcher: a small process in a session of its own (a Ctrl-C at lancer's
terminal does not reach it) reading a pipe whose write end only lancer holds. End of file
means lancer is done or gone. If lancer wrote ``closed`` first, its close removed what the
watcher watches; otherwise the watcher removes it: the container, or the project (first
ending the ``docker compose`` commands still at work on it: an ``up`` outlives a killed
lancer) with its containers, networks and volumes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

_CLOSED = b"closed"


def start(kind: str, name: str) -> IO[bytes]:
    """Start the watcher of a ``container`` (an id) or a compose ``project`` (its name); the
    returned pipe goes to :func:`release` once lancer removed it."""
    from lancer.core.hostproc import TAG_VARIABLE

    read_end, write_end = os.pipe()  # not inheritable: only the watcher gets the read end, only lancer the write end
    # Untagged: a kill of the commands lancer tagged (lancer.core.hostproc) spares the watcher.
    env = {key: value for key, value in os.environ.items() if key != TAG_VARIABLE}
    try:
        subprocess.Popen(
            # By its path, not -m: no package of lancer's is imported (12 MB, not 33) until it reaps;
            # -P: its own folder is not put on sys.path.
            [sys.executable, "-P", __file__, kind, name],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd="/",
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return os.fdopen(write_end, "wb")


def release(pipe: IO[bytes]) -> None:
    """Tell the watcher the project is gone (close removed it): it exits without doing anything."""
    with contextlib.suppress(OSError):
        pipe.write(_CLOSED)
        pipe.flush()
    with contextlib.suppress(OSError):
        pipe.close()


def _compose_commands(project: str) -> list[int]:
    """Pids of the ``docker compose -p PROJECT`` commands still running."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"-p" in argv and project.encode() in argv:
                pids.append(int(entry.name))
    return pids


def reap(kind: str, name: str) -> None:
    """Remove the container, or end the project's compose commands and remove what it has,
    twice: a dying ``up`` may still add a container."""
    from lancer.sandbox.docker.engine import connect
    from lancer.sandbox.docker.prune import remove_container, remove_project

    client = connect()
    try:
        if kind == "container":
            remove_container(client.api, name)
            return
        for pid in _compose_commands(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for _ in range(2):
            remove_project(client.api, name)
            time.sleep(1)
    finally:
        client.close()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the project is removed whoever interrupts
    said = sys.stdin.buffer.read()  # blocks until lancer closes its end, or ends
    if said == _CLOSED:
        return 0
    with contextlib.suppress(Exception):  # nobody to tell: `lancer sandbox prune` remains
        reap(argv[0], argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
