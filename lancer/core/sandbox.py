"""The Sandbox protocol: where the agent's commands run and its files live.

Backends (``local``, ``docker``) implement a few primitives; everything built on them
(the git baseline and diff, the persistent shell, the editor) is written once, against
this protocol, in ``lancer.sandbox.git`` and ``tools``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable


@dataclass
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False

    @property
    def text(self) -> str:
        """stdout then stderr, decoded for people and models."""
        return (self.stdout + self.stderr).decode("utf-8", errors="replace")


@dataclass
class SandboxSpec:
    """What a backend needs to build a sandbox; filled from a task and the run config."""

    # The task's code, copied in as the working tree (None: it is already in the image).
    repo_dir: Path | None
    # Host paths the agent must never see (the task's hidden tests).
    hidden_paths: list[Path] = field(default_factory=list)
    # Environment variables for every command run in the sandbox.
    env: dict[str, str] = field(default_factory=dict)
    # Docker: the image to run, or a Dockerfile to build it from.
    image: str | None = None
    dockerfile: Path | None = None
    # Where the working tree lives inside the sandbox (docker; local picks a temp dir).
    workdir: str = "/repo"
    network: bool = False
    # Local: "bwrap" (bubblewrap isolation; refuses to start without it) or "none".
    isolation: Literal["bwrap", "none"] = "bwrap"
    # Local: the Python version the task's environment is made from ("3.11"); None: the system's.
    python: str | None = None
    label: str = ""  # for people reading `docker ps`: the task id
    # The task's setup commands, run in the working tree before anyone uses the sandbox.
    # Local: their result is cached (lancer.sandbox.envcache) and every sandbox starts from a copy.
    setup: list[str] = field(default_factory=list)
    setup_timeout_s: float = 1800
    # What defines the working tree for the environment cache's key, when not its
    # content (e.g. a repository and commit); None: a hash of repo_dir's content.
    env_key_parts: list[str] | None = None
    # The cached environment holds only what the setup installed (built on the working tree
    # of the first sandbox of its key); every sandbox keeps its own working tree. Local: a
    # copy of the venv; docker: an image whose working tree is replaced by the sandbox's.
    # For tasks of different trees sharing one environment (SWE-bench instances of one
    # repo and environment_setup_commit, env_key_parts naming it).
    env_venv_only: bool = False
    # Docker: limits, so a fork bomb or a memory hog harms only its own container.
    memory: str = "4g"
    cpus: float = 2.0
    pids_limit: int = 1024
    # Docker: who runs commands. "auto": a non-root user made in the container (root if
    # the image cannot have one); "root"; or a user name or uid[:gid] the image has.
    user: str = "auto"
    # Docker, for images that bring their own setup (SWE-Lancer's): run the image's own
    # entrypoint instead of lancer's idle init, with the network on until that setup has
    # written ``ready_file``; then run ``prepare`` (as root), remove ``remove_paths`` (the
    # agent's sandbox: e.g. tests baked into the image) and make a fresh git baseline.
    # ``setup_network`` also gives the container that runs ``setup`` for the cached
    # environment image the network (lancer.sandbox.docker.envimage); later ones have none.
    image_command: bool = False
    ready_file: str | None = None
    ready_timeout_s: float = 3600
    setup_network: bool = False
    prepare: list[str] = field(default_factory=list)
    remove_paths: list[str] = field(default_factory=list)
    # Docker: how long building ``dockerfile``'s image may take (None: no limit).
    build_timeout_s: float | None = None
    # Docker: ``dockerfile``'s image is kept as a task environment (lancer-env-*, removed by
    # ``prune --envs``), not as a built image (a SWE-bench task repo's instance image).
    dockerfile_env: bool = False
    # Docker: what runs instead when ``image`` is not on this machine (never pulled for
    # it): a SWE-bench instance without its own image gets lancer's base image and an
    # environment built there (lancer.sandbox.docker.engine.resolve_image).
    without_image: SandboxSpec | None = None
    # Docker, a tree that came with the image: keep its git history instead of a fresh
    # baseline (the grader of a SWE-bench instance whose eval_script checks out base_commit).
    keep_history: bool = False
    # Docker: a docker-compose file (Harbor's environment/docker-compose.yaml): the sandbox is
    # its ``main`` service, built from ``dockerfile`` (or ``image``), its sidecars beside it
    # (lancer.sandbox.docker.compose).
    compose_file: Path | None = None


class Closeable(Protocol):
    def close(self) -> None: ...


def close_even_if_interrupted(part: Closeable) -> None:
    """``part.close()``; cut short by Ctrl-C (or an eval worker's SIGTERM, which it turns into
    one), it is closed again before the interrupt goes on: a sandbox half closed leaves its
    temp tree or container behind (found by the soak: kill -9 of an eval mid-close)."""
    try:
        part.close()
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            part.close()
        raise


def pid_alive(pid: str) -> bool:
    """Whether process ``pid`` (a string, as stored in labels and files) still runs here."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    # A zombie (exited, its parent not reaping it: e.g. a soak or a container's PID 1) is gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2 :].split()[0] != "Z"
    return True


# A folder lancer makes in the host's temp dir holds this file, naming the process that owns
# it, so `lancer sandbox prune` and a resumed eval remove what a killed lancer (kill -9) left.
OWNER_FILE = "lancer.pid"
TEMP_PREFIX = "lancer-"


def owned_temp_dir(prefix: str = TEMP_PREFIX, parent: str | None = None) -> Path:
    """A new temp folder (in ``parent``, else the temp dir), marked as this process's
    before anything else goes in it."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    (root / OWNER_FILE).write_text(str(os.getpid()))
    return root


def remove_owned_dir(root: Path, tries: int = 10) -> None:
    """Remove an owned temp folder, its owner file last. A process still writing in it (a
    browser shutting down) can make the last ``rmdir`` fail; the folder then keeps its owner
    file, so a later prune still finds it, and is tried again shortly."""
    owner = root / OWNER_FILE
    pid = owner.read_text() if owner.is_file() else str(os.getpid())
    for _ in range(tries):
        for entry in [e for e in _entries(root) if e.name != OWNER_FILE]:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
        try:
            owner.unlink(missing_ok=True)
            root.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # written to meanwhile: owned again, and another go
            with contextlib.suppress(OSError):
                owner.write_text(pid)
            time.sleep(0.1)


def _entries(root: Path) -> list[Path]:
    try:
        return list(root.iterdir())
    except OSError:
        return []


def remove_abandoned(prefix: str = TEMP_PREFIX, everything: bool = False, ending: bool = False) -> int:
    """Remove the owned temp folders named ``prefix*`` whose process has ended (or all, with
    ``everything``; this process's too, with ``ending``: it is about to end), in the temp
    dir and in /tmp (where Chromium's go when the temp dir's path is too long for it); the
    number removed."""
    removed = 0
    me = str(os.getpid())
    for parent in {tempfile.gettempdir(), "/tmp"}:
        for root in Path(parent).glob(f"{prefix}*"):
            owner = root / OWNER_FILE
            with contextlib.suppress(OSError):  # gone meanwhile: removed by its owner
                pid = owner.read_text().strip() if owner.is_file() else None
                if pid is not None and (everything or (ending and pid == me) or not pid_alive(pid)):
                    remove_owned_dir(root)
                    removed += 1
    return removed


class OutputChunks:
    """Output a reader thread pushes and a shell's ``recv`` takes, with ShellProcess.recv's
    contract: b"" when nothing came within the timeout, None once the stream has ended.

    At most ``_MAX_CHUNKS`` wait here: a command printing faster than lancer reads is held
    back by its pipe, so memory stays bounded whatever it prints. Once the reader is gone
    (``discard``), chunks are dropped instead, so the pushing thread never blocks for good.
    """

    _MAX_CHUNKS = 64  # of up to 64 KiB each

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(self._MAX_CHUNKS)
        self._ended = False
        self._discarded = False

    def put(self, chunk: bytes | None) -> None:
        """A chunk of output, or None for the end of the stream."""
        while not self._discarded:
            try:
                self._queue.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue

    def get(self, timeout: float) -> bytes | None:
        if self._ended:
            return None
        try:
            chunk = self._queue.get(timeout=timeout)
        except queue.Empty:
            return b""
        if chunk is None:
            self._ended = True
        return chunk

    def discard(self) -> None:
        """Nobody reads any more: drop what waits and what comes."""
        self._discarded = True
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()


@runtime_checkable
class ShellProcess(Protocol):
    """A long-lived ``bash`` in the sandbox, stdout and stderr merged, driven by its stdin."""

    def send(self, data: bytes) -> None:
        """Write to the shell's stdin. Raises BrokenPipeError if the shell has exited."""

    def recv(self, timeout: float) -> bytes | None:
        """Output that arrived within ``timeout`` seconds: b"" if none, None once the shell exited."""

    def close(self) -> None:
        """Kill the shell (and its session); idempotent."""


@runtime_checkable
class ProcessReset(Protocol):
    """A sandbox that can kill every process in it at once, even when none can start."""

    def kill_all_processes(self) -> None:
        """Kill every process in the sandbox (its files stay); SandboxError if that fails."""


@runtime_checkable
class KillReporter(Protocol):
    """A sandbox that can say why a command was killed (its memory limit), as the command ends."""

    def memory_kill_note(self) -> str | None:
        """A message for the model if the memory limit killed a process since last asked."""


@runtime_checkable
class Sandbox(Protocol):
    """An isolated working tree plus a way to run commands in it.

    ``workdir`` is the repo root as seen inside the sandbox. Paths given to the file
    methods are absolute paths inside the sandbox. Every method raises
    ``lancer.core.errors.SandboxError`` when the sandbox itself fails (gone, engine down);
    a command that fails or times out is not an error, it is an ``ExecResult``.
    """

    workdir: str

    def exec(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        """Run one command to completion (killed with its process group at ``timeout``)."""

    def open_shell(self) -> ShellProcess:
        """Start ``bash`` in ``workdir`` with the sandbox environment."""

    def read_file(self, path: str) -> bytes:
        """Raises FileNotFoundError or IsADirectoryError as Python's open() does."""

    def write_file(self, path: str, data: bytes) -> None:
        """Create or replace a file, creating missing parent directories."""

    def copy_in(self, host_path: Path, dest: str) -> None:
        """Copy a host file or directory tree to ``dest`` inside the sandbox."""

    def copy_out(self, src: str, host_path: Path) -> None:
        """Copy a file or directory tree from the sandbox to the host."""

    def close(self) -> None:
        """Stop every process and remove everything the sandbox made; idempotent."""
