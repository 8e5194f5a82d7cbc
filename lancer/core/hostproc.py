"""Commands lancer itself runs on the host (the hidden browser tests), with nothing left behind.

A process group or session is not enough to find everything such a command starts:
Playwright starts Chromium in a session of its own, so killing the test's session would
miss it. Every process of the command is instead tagged with an environment variable,
which every descendant inherits whatever session it moves to, and after the command
ends every process carrying the tag is killed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TAG_VARIABLE = "LANCER_PROC_TAG"


@dataclass
class HostResult:
    exit_code: int | None  # None: timed out
    output: str  # stdout and stderr merged

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None


def run_tagged(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float) -> HostResult:
    """Run ``argv`` to completion or ``timeout``; then kill every process it started."""
    tag = secrets.token_hex(8)
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env={**env, TAG_VARIABLE: tag},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return HostResult(proc.returncode, out.decode("utf-8", errors="replace"))
    except subprocess.TimeoutExpired:
        kill_tagged(tag)
        out, _ = proc.communicate()
        return HostResult(None, out.decode("utf-8", errors="replace"))
    finally:
        kill_tagged(tag)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def tagged_pids(tag: str) -> list[int]:
    """Live processes whose environment carries ``tag`` (zombies have no environment)."""
    needle = f"{TAG_VARIABLE}={tag}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def kill_tagged(tag: str, wait_s: float = 5.0) -> None:
    """SIGKILL every process carrying ``tag``, again while new ones appear (a fork race),
    until none is left or ``wait_s`` has passed: on return they are gone, so what they
    owned (a temp folder marked with their pid) can be told abandoned."""
    deadline = time.monotonic() + wait_s
    while pids := tagged_pids(tag):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            return
        time.sleep(0.02)
