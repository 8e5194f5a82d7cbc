"""One persistent bash per run, on any backend: cd and exported variables survive.

Each command is sent base64-encoded, syntax-checked, and run with ``eval`` inside the shell
itself (so its state persists, and a syntax error is an error message, not a shell waiting
for more input), stdin closed, and followed by a marker line carrying the exit code and the
working directory. On timeout every process in the shell's session but the shell is
killed; if the shell itself is stuck (a builtin loop), it is replaced by a new one in the
same directory.
"""

from __future__ import annotations

import base64
import secrets
import shlex
import time
from dataclasses import dataclass

from agent.errors import SandboxError
from sandbox.base import Sandbox, ShellProcess

# Kills every process whose session id is $1 (and $1 itself only if $2 is given). Plain
# POSIX sh reading /proc, so the same script serves every backend. It forks nothing (only
# builtins), so it still works when a fork bomb has used up the container's process limit,
# and it repeats its pass while it finds processes, since a dying fork bomb still forks.
KILL_SESSION_SCRIPT = r"""
sid=$1; leader=${2:-}
for pass in 1 2 3 4 5 6 7 8 9 10; do
  found=
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$sid" ] && [ -z "$leader" ] && continue
    read -r s 2>/dev/null < "$d/stat" || continue
    s=${s##*) }
    set -- $s
    if [ "$4" = "$sid" ]; then kill -9 "$p" 2>/dev/null; found=1; fi
  done
  [ -z "$found" ] && break
done
exit 0
"""

# How long a killed command gets to hand control back before the shell is replaced.
_GRACE_S = 5.0
# Output kept in memory per command: the first and the last this many bytes.
_KEEP_BYTES = 512 * 1024


@dataclass
class ShellOutput:
    output: str
    exit_code: int | None  # None: timed out or the shell died
    timed_out: bool = False
    omitted_bytes: int = 0  # dropped from the middle of a huge output before decoding
    note: str = ""  # what happened to the shell itself, for the model


class _Capture:
    """Keeps the head and tail of a stream of any size."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.omitted = 0

    def add(self, chunk: bytes) -> None:
        room = _KEEP_BYTES - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > 2 * _KEEP_BYTES:
            cut = len(self.tail) - _KEEP_BYTES
            self.omitted += cut
            del self.tail[:cut]

    def window(self) -> bytes:
        """The end of the stream, where the marker shows up."""
        return bytes(self.head[-256:] + self.tail[-(_KEEP_BYTES + 256) :]) if self.tail else bytes(self.head)

    def text(self, end_marker: bytes | None = None) -> str:
        data = bytes(self.head + self.tail)
        if end_marker is not None:
            data = data[: data.rfind(end_marker)]
        return data.decode("utf-8", errors="replace")


class PersistentShell:
    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._nonce = secrets.token_hex(8)
        self._shell: ShellProcess | None = None
        self._pid = 0
        self.cwd = sandbox.workdir
        self._start()

    def _start(self) -> None:
        self._shell = self._sandbox.open_shell()
        ready = f"__LANCER_READY_{self._nonce}__"
        self._shell.send(f"cd {shlex.quote(self.cwd)} 2>/dev/null; echo {ready} $$\n".encode())
        capture = _Capture()
        deadline = time.monotonic() + 30
        while ready.encode() not in capture.window():
            chunk = self._shell.recv(0.5)
            if chunk is None or time.monotonic() > deadline:
                raise SandboxError(f"the sandbox shell did not start: {capture.text()[-300:]!r}")
            capture.add(chunk)
        self._pid = int(capture.text().split(ready, 1)[1].split()[0])

    def run(self, command: str, timeout: float) -> ShellOutput:
        """Run ``command`` in the shell; never raises for what the command does."""
        assert self._shell is not None
        marker = f"__LANCER_DONE_{self._nonce}__".encode()
        encoded = base64.b64encode(command.encode()).decode()
        # Syntax is checked in a child first: an eval that hits a syntax error can leave
        # bash's own parser confused, and a non-interactive bash exits on that.
        self._shell.send(
            f"__lancer_c=$(printf %s {encoded} | base64 -d); "
            "if printf '%s' \"$__lancer_c\" | bash -n 2>&1; "
            'then eval "$__lancer_c" < /dev/null 2>&1; else (exit 2); fi; '
            f'printf \'\\n%s %s %s\\n\' {marker.decode()} "$?" "$PWD"\n'.encode()
        )
        capture = _Capture()
        if self._read_until(capture, marker, time.monotonic() + timeout):
            return self._finish(capture, marker)
        if self._shell is None:  # the command ended the shell (``exit``)
            return ShellOutput(capture.text(), None, note=self._restart("the shell exited"))
        self._kill_children()
        if self._read_until(capture, marker, time.monotonic() + _GRACE_S):
            result = self._finish(capture, marker)
            result.exit_code, result.timed_out = None, True
            return result
        note = self._restart("the shell itself did not respond after the kill")
        return ShellOutput(capture.text(), None, True, capture.omitted, note)

    def _read_until(self, capture: _Capture, marker: bytes, deadline: float) -> bool:
        assert self._shell is not None
        while marker + b" " not in capture.window():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            chunk = self._shell.recv(min(remaining, 1.0))
            if chunk is None:
                self._shell.close()
                self._shell = None
                return False
            capture.add(chunk)
        # The marker's line (exit code and cwd) may still be arriving.
        while not capture.window().rstrip(b" ").endswith(b"\n"):
            chunk = self._shell.recv(1.0)
            if not chunk:
                break
            capture.add(chunk)
        return True

    def _finish(self, capture: _Capture, marker: bytes) -> ShellOutput:
        tail = capture.window()
        fields = tail[tail.rfind(marker) + len(marker) :].decode(errors="replace").strip().split(" ", 1)
        self.cwd = fields[1] if len(fields) > 1 else self.cwd
        text = capture.text(b"\n" + marker)
        return ShellOutput(text, int(fields[0]), omitted_bytes=capture.omitted)

    def _kill_children(self) -> None:
        self._sandbox.exec(["sh", "-c", KILL_SESSION_SCRIPT, "kill-session", str(self._pid)], timeout=30)

    def _restart(self, why: str) -> str:
        if self._shell is not None:
            self._shell.close()
        self._start()
        return f"{why}; a new shell was started in {self.cwd} (variables set earlier are gone)"

    def close(self) -> None:
        if self._shell is not None:
            self._shell.close()
            self._shell = None
