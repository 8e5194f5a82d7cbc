"""One persistent bash per run, on any backend: cd and exported variables survive.

A command costs no process of its own beyond what it runs: it is sent as a quoted
here-document that bash's ``read`` builtin takes into a variable, ``eval``ed inside the
shell itself (so its state persists; a syntax error in an ``eval`` is an error message,
and the shell goes on), stdin closed, and followed by a marker line the ``printf``
builtin prints with the exit code and the working directory. On timeout every process in
the shell's session but the shell is killed; if the shell itself is stuck (a builtin
loop), it is replaced by a new one in the same directory. When the sandbox can start no
more processes (a fork bomb filled its process limit), every process in it is killed and
a new shell started, and the model is told so.
"""

from __future__ import annotations

import secrets
import shlex
import time
from dataclasses import dataclass

from lancer.core.errors import SandboxError
from lancer.core.sandbox import KillReporter, ProcessReset, Sandbox, ShellProcess

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
# The marker's line (exit code, working directory) is looked for in this much of the end.
_END_BYTES = 8192
# What bash prints when fork() fails with EAGAIN: the sandbox's process limit is full.
_FORK_FAILED = b"fork: retry: Resource temporarily unavailable"


@dataclass
class ShellOutput:
    output: str
    exit_code: int | None  # None: timed out or the shell died
    timed_out: bool = False
    omitted_bytes: int = 0  # dropped from the middle of a huge output before decoding
    note: str = ""  # what happened to the shell itself, for the model


class _Capture:
    """Keeps the head and tail of a stream of any size, and watches its end."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.omitted = 0
        self._end = bytearray()  # the last _END_BYTES or more: where the marker shows up
        self.fork_failed = False

    def add(self, chunk: bytes) -> None:
        self._end += chunk
        if len(self._end) > 4 * _END_BYTES:
            del self._end[: -2 * _END_BYTES]
        if not self.fork_failed and _FORK_FAILED in self._end[-(len(chunk) + len(_FORK_FAILED)) :]:
            self.fork_failed = True
        room = _KEEP_BYTES - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > 2 * _KEEP_BYTES:
            cut = len(self.tail) - _KEEP_BYTES
            self.omitted += cut
            del self.tail[:cut]

    def end(self) -> bytes:
        return bytes(self._end[-_END_BYTES:])

    def text(self, end_marker: bytes | None = None) -> str:
        data = bytes(self.head + self.tail)
        if end_marker is not None:
            data = data[: data.rfind(end_marker)]
        return data.decode("utf-8", errors="replace")


class PersistentShell:
    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        nonce = secrets.token_hex(8)
        self._marker = f"__LANCER_DONE_{nonce}__".encode()
        # Printed in two pieces, so that even a `set -x` trace of this line holds no marker.
        self._epilogue = f'builtin printf \'\\n%s%s %s %s\\n\' __LANCER_DONE_ {nonce}__ "$?" "$PWD"\n'
        self._ready = f"__LANCER_READY_{nonce}__"
        self._shell: ShellProcess | None = None
        self._pid = 0
        self.cwd = sandbox.workdir
        self._start()

    def _start(self) -> None:
        try:
            self._open()
        except SandboxError as failure:
            if not isinstance(self._sandbox, ProcessReset):
                raise
            # Perhaps nothing can start in the sandbox (a fork bomb): empty it, try once more.
            try:
                self._sandbox.kill_all_processes()
            except SandboxError:
                raise failure from None
            self._open()

    def _open(self) -> None:
        if self._shell is not None:
            self._shell.close()
        self._shell = self._sandbox.open_shell()
        self._shell.send(f"cd {shlex.quote(self.cwd)} 2>/dev/null; echo {self._ready} $$\n".encode())
        capture = _Capture()
        deadline = time.monotonic() + 30
        while self._ready.encode() not in capture.end():
            chunk = self._shell.recv(0.5)
            if chunk is None or time.monotonic() > deadline:
                raise SandboxError(f"the sandbox shell did not start: {capture.text()[-300:]!r}")
            capture.add(chunk)
        self._pid = int(capture.text().split(self._ready, 1)[1].split()[0])

    def run(self, command: str, timeout: float) -> ShellOutput:
        """Run ``command`` in the shell; never raises for what the command does."""
        if self._shell is None:
            self._start()
        assert self._shell is not None
        # A quoted here-document reaches ``read`` verbatim; its delimiter is new each time,
        # so no line of a command can end it early. ``|| :`` keeps a `set -e` shell alive;
        # ``builtin`` keeps a function the command defines (say, ``read``) out of the frame.
        delimiter = f"__LANCER_CMD_{secrets.token_hex(8)}__"
        body = command.replace("\0", "")
        try:
            self._shell.send(
                f"IFS= builtin read -r -d '' __lancer_c <<'{delimiter}' || :\n{body}\n{delimiter}\n"
                f'builtin eval "$__lancer_c" < /dev/null 2>&1; {self._epilogue}'.encode()
            )
        except BrokenPipeError:
            return ShellOutput("", None, note=self._restart("the shell had exited"))
        capture = _Capture()
        if self._read_until(capture, time.monotonic() + timeout):
            return self._finish(capture)
        if capture.fork_failed:
            return ShellOutput(capture.text(), None, False, capture.omitted, self._contain())
        if self._shell is None:  # the command ended the shell (``exit``)
            return ShellOutput(capture.text(), None, note=self._restart("the shell exited"))
        self._kill_children()
        if self._read_until(capture, time.monotonic() + _GRACE_S):
            result = self._finish(capture)
            result.exit_code, result.timed_out = None, True
            return result
        note = self._restart("the shell itself did not respond after the kill")
        return ShellOutput(capture.text(), None, True, capture.omitted, note)

    def _read_until(self, capture: _Capture, deadline: float) -> bool:
        """Read until the marker's whole line came (True), or the deadline, the shell's end
        or a full process table (False)."""
        assert self._shell is not None
        marker = self._marker + b" "
        while True:
            end = capture.end()
            at = end.rfind(marker)
            if at >= 0 and b"\n" in end[at:]:
                return True
            if capture.fork_failed:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            chunk = self._shell.recv(min(remaining, 1.0))
            if chunk is None:
                self._shell.close()
                self._shell = None
                return False
            capture.add(chunk)

    def _finish(self, capture: _Capture) -> ShellOutput:
        end = capture.end()
        line = end[end.rfind(self._marker + b" ") + len(self._marker) :].split(b"\n", 1)[0]
        fields = line.decode(errors="replace").strip().split(" ", 1)
        self.cwd = fields[1] if len(fields) > 1 else self.cwd
        text = capture.text(b"\n" + self._marker)
        code = int(fields[0])
        # SIGKILL: asked now, since a watcher polling the limits may not have told the shell yet.
        note = self._sandbox.memory_kill_note() if code == 137 and isinstance(self._sandbox, KillReporter) else None
        return ShellOutput(text, code, omitted_bytes=capture.omitted, note=note or "")

    def _kill_children(self) -> None:
        self._sandbox.exec(["sh", "-c", KILL_SESSION_SCRIPT, "kill-session", str(self._pid)], timeout=30)

    def _contain(self) -> str:
        """The sandbox can start no more processes: kill them all, start a fresh shell."""
        what = "every process the shell had started was killed"
        if isinstance(self._sandbox, ProcessReset):
            self._sandbox.kill_all_processes()
            what = "every process in the sandbox was killed"
        return self._restart(
            f"the sandbox could start no more processes (its process limit was reached, e.g. by a fork bomb); {what}"
        )

    def _restart(self, why: str) -> str:
        if self._shell is not None:
            self._shell.close()
            self._shell = None
        self._start()
        return f"{why}; a new shell was started in {self.cwd} (variables set earlier are gone)"

    def close(self) -> None:
        if self._shell is not None:
            self._shell.close()
            self._shell = None
