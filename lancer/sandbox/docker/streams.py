"""Exec streams: one hijacked ``docker exec`` connection per command or shell, demultiplexed."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from lancer.core.errors import SandboxError
from lancer.core.sandbox import OutputChunks

READY_PREFIX = b"lancer-ready "


class DockerShell:
    """A ``bash`` session leader in the container, on one exec stream (stdout and stderr merged)."""

    def __init__(self, stream: ExecStream, kill_session: Callable[[int | None], None]) -> None:
        self._stream = stream
        self._kill_session = kill_session
        self._closed = False

    def send(self, data: bytes) -> None:
        self._stream.send(data)

    def recv(self, timeout: float) -> bytes | None:
        return self._stream.recv_merged(timeout)

    def close(self, kill: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        if kill:
            with contextlib.suppress(SandboxError):
                self._kill_session(self._stream.pid_or_none(wait=1.0))
        self._stream.close()


class ExecStream:
    """One hijacked ``docker exec`` connection: stdin in, demultiplexed stdout/stderr out.

    A reader thread parses Docker's frames (8-byte header: stream id, size). The first
    stderr line is the wrapper's pid, kept apart from the command's output. Output is kept
    whole in ``stdout``/``stderr`` only with ``keep_output`` (commands lancer runs); a
    shell's output only passes through the bounded ``recv_merged`` queue.
    """

    def __init__(self, exec_id: str, sock: Any, keep_output: bool = True) -> None:
        self._keep = keep_output
        self.exec_id = exec_id
        self._sock = raw_socket(sock)
        self._sock.settimeout(None)
        self._read = buffered_reader(sock)
        self.stdout = bytearray()
        self.stderr = bytearray()
        self._pid: int | None = None
        self._pid_line = bytearray()
        self._pid_known = threading.Event()
        self._merged = OutputChunks()
        self._done = threading.Event()
        self._closed = False
        threading.Thread(target=self._pump, daemon=True, name=f"docker-exec-{exec_id[:8]}").start()

    def _pump(self) -> None:
        try:
            while (header := self._read_exact(8)) is not None:
                kind, size = struct.unpack(">BxxxL", header)
                data = self._read_exact(size) if size else b""
                if data is None:
                    break
                if kind == 2 and not self._pid_known.is_set():
                    data = self._take_pid(data)
                if not data:
                    continue
                if self._keep:
                    (self.stderr if kind == 2 else self.stdout).extend(data)
                else:
                    self._merged.put(data)
        except (OSError, ValueError):
            pass  # the connection was closed under us: same as the end of the stream
        finally:
            self._pid_known.set()
            self._done.set()
            self._merged.put(None)

    def _read_exact(self, size: int) -> bytes | None:
        return read_exact(self._read, size)

    def _take_pid(self, data: bytes) -> bytes:
        self._pid_line.extend(data)
        if b"\n" not in self._pid_line:
            return b""
        line, rest = bytes(self._pid_line).split(b"\n", 1)
        with contextlib.suppress(ValueError):
            self._pid = int(line)
        self._pid_known.set()
        return rest

    def pid_or_none(self, wait: float = 5.0) -> int | None:
        self._pid_known.wait(wait)
        return self._pid

    def wait(self, timeout: float | None) -> bool:
        return self._done.wait(timeout)

    def feed(self, data: bytes) -> None:
        """Write all of ``data`` to the command's stdin, then close it."""
        with contextlib.suppress(OSError):
            self._sock.sendall(data)
            self._sock.shutdown(socket.SHUT_WR)

    def send(self, data: bytes) -> None:
        if self._closed or self._done.is_set():
            raise BrokenPipeError("the sandbox shell has exited")
        try:
            self._sock.sendall(data)
        except OSError as e:
            raise BrokenPipeError(str(e)) from None

    def recv_merged(self, timeout: float) -> bytes | None:
        return self._merged.get(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._merged.discard()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader thread
        with contextlib.suppress(OSError):
            self._sock.close()


def raw_socket(sock: Any) -> socket.socket:
    """The socket under the SDK's SocketIO wrapper (what sendall and shutdown need)."""
    return getattr(sock, "_sock", sock)  # type: ignore[no-any-return]


def buffered_reader(sock: Any) -> Callable[[int], bytes]:
    """Read from the buffer the HTTP response was parsed through, not the bare socket.

    The engine may send the first output in the same packet as the upgrade response; that
    output then already sits in http.client's buffer, and reading the socket would lose it.
    """
    fp = getattr(getattr(getattr(getattr(sock, "_response", None), "raw", None), "_fp", None), "fp", None)
    if fp is not None and hasattr(fp, "read1"):
        return fp.read1  # type: ignore[no-any-return]
    raw = raw_socket(sock)
    return raw.recv


def read_exact(read: Callable[[int], bytes], size: int) -> bytes | None:
    """``size`` bytes from ``read``, or None if the stream ends first."""
    parts = bytearray()
    while len(parts) < size:
        chunk = read(size - len(parts))
        if not chunk:
            return None
        parts.extend(chunk)
    return bytes(parts)


def read_boot_line(lifeline: Any) -> str:
    """The boot script's ``lancer-ready ...`` line, from the attach connection's stdout."""
    read = buffered_reader(lifeline)
    sock = raw_socket(lifeline)
    sock.settimeout(60)
    text = bytearray()
    try:
        while READY_PREFIX not in text or not text.endswith(b"\n"):
            header = read_exact(read, 8)
            frame = read_exact(read, struct.unpack(">BxxxL", header)[1]) if header else None
            if frame is None:
                break
            text += frame
    except OSError as e:
        raise SandboxError(f"the container did not start its init: {e}") from None
    finally:
        sock.settimeout(None)
    line = bytes(text).partition(READY_PREFIX)[2].decode(errors="replace").strip()
    if not line:
        raise SandboxError(f"the container's init did not start: {bytes(text).decode(errors='replace')[-300:]!r}")
    return line
