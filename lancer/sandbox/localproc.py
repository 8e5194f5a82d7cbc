"""Processes of the local sandbox: the process protocol, a plain host child, the shell's pipes,
and feeding and draining a command's pipes without a thread per pipe."""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import threading
import time
from typing import Protocol

from lancer.core.sandbox import OutputChunks
from lancer.sandbox.shell import KILL_SESSION_SCRIPT


class Process(Protocol):
    """A process started in the sandbox, in a session of its own."""

    error: str  # why it did not start ("" if it did)

    def wait(self, timeout: float | None) -> int | None:
        """Exit code (negative: the signal that killed it), or None if running at ``timeout``."""

    def kill(self) -> None:
        """SIGKILL it and everything in its session."""

    def close(self) -> None: ...


class HostProcess:
    """``isolation: none``: a plain child process of lancer."""

    error = ""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.pid = popen.pid
        self._popen = popen

    def wait(self, timeout: float | None) -> int | None:
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self._popen.poll() is None:
            subprocess.run(["sh", "-c", KILL_SESSION_SCRIPT, "kill", str(self.pid), "include-leader"], check=False)

    def close(self) -> None:
        self._popen.wait()


class LocalShell:
    """A bash whose stdin and stdout are pipes to lancer; a reader thread queues its output."""

    def __init__(self, process: Process, stdin_fd: int, stdout_fd: int) -> None:
        self.process = process
        self._stdin = stdin_fd
        self._stdout = open(stdout_fd, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        self._chunks = OutputChunks()
        self.closed = False
        if process.error:
            self._chunks.put(f"{process.error}\n".encode())
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := self._stdout.read(65536):
                self._chunks.put(chunk)
        self._chunks.put(None)

    def note(self, text: str) -> None:
        """A message from lancer, shown to the model in the middle of the shell's output."""
        self._chunks.put(f"\n{text}\n".encode())

    def send(self, data: bytes) -> None:
        # A shell that has ended (killed with a fork bomb's session, or ``exit``) swallows the
        # write: ``recv`` then returns what it last said, and None, and the caller restarts it.
        with contextlib.suppress(BrokenPipeError):
            while data:
                data = data[os.write(self._stdin, data) :]

    def recv(self, timeout: float) -> bytes | None:
        return self._chunks.get(timeout)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._chunks.discard()
        self.process.kill()
        with contextlib.suppress(OSError):
            os.close(self._stdin)
        self._reader.join(timeout=2)
        self._stdout.close()
        self.process.close()


def close_fds(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)


def communicate(
    stdin_fd: int, data: bytes, out_fd: int, err_fd: int, deadline: float | None
) -> tuple[bytes, bytes, bool]:
    """Feed ``data`` to ``stdin_fd`` and read both pipes to their end or ``deadline``;
    returns (stdout, stderr, whether both ended)."""
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    with selectors.DefaultSelector() as selector:
        for fd in (out_fd, err_fd):
            with contextlib.suppress(ValueError, OSError):
                selector.register(fd, selectors.EVENT_READ)
        if stdin_fd >= 0:
            if data:
                os.set_blocking(stdin_fd, False)
                selector.register(stdin_fd, selectors.EVENT_WRITE)
            else:
                os.close(stdin_fd)
        view = memoryview(data)
        while selector.get_map():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            for key, _ in selector.select(remaining):
                fd = key.fd
                if fd == stdin_fd:
                    try:
                        view = view[os.write(fd, view[:65536]) :]
                    except BrokenPipeError:
                        view = view[:0]
                    if not view:
                        selector.unregister(fd)
                        os.close(fd)
                    continue
                chunk = os.read(fd, 65536)
                if chunk:
                    chunks[fd].append(chunk)
                else:
                    selector.unregister(fd)
        ended = not any(key.fd in (out_fd, err_fd) for key in selector.get_map().values())
        if stdin_fd >= 0 and stdin_fd in {key.fd for key in selector.get_map().values()}:
            os.close(stdin_fd)
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd]), ended
