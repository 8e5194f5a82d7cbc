"""The task's web app: started in the sandbox, reached from the host, stopped without leftovers.

``task.yaml``'s ``app.command`` runs from the working tree root in a session of its own
(``setsid``), so stopping it kills that whole session: the server and every process it
started (SWE-Lancer's harness leaked node processes). ``{port}`` in the command becomes a
port that is free on the host; ``PORT`` is set too. It is launched from a shell like the
agent's, so it sees what the agent sees: the agent wrote its code, and in the local
sandbox that shell hides the task folder (hidden tests, answers).

Where the app is reached from the host:
- local sandbox with ``isolation: none``: the app runs on this machine, at ``http://127.0.0.1:PORT``;
- any other (bubblewrap, docker: a network of their own): through a ``PortRelay`` over the sandbox's exec
  channel, listening on the same port number on the host's loopback when it is free, so
  the URL is the same one the app believes it has.

The app's output goes to a log file in the sandbox's /tmp (never the working tree, so it
stays out of the patch); ``log_tail`` reads it for error messages.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import shlex
import socket
import time
import urllib.error
import urllib.request

from lancer.core.errors import SandboxError
from lancer.core.sandbox import Sandbox
from lancer.core.tasks import AppSpec
from lancer.sandbox.relay import PortRelay
from lancer.sandbox.shell import KILL_SESSION_SCRIPT, PersistentShell

# Starts $3 in a new session with its output in $2; prints the session id, which the
# session leader writes to $1 itself (``$!`` would be wrong if setsid had to fork).
# $4, if set, is lancer's pid: a watchdog in the session kills the app's process group
# (and removes its log) once lancer is gone (or a zombie nobody reaps), so even a lancer killed
# with -9 leaves no app running on the host.
_LAUNCH_SCRIPT = r"""
pidfile=$1; log=$2; cmd=$3; owner=${4:-}
setsid sh -c '
  echo $$ > "$0"
  if [ -n "$2" ]; then
    (while kill -0 "$2" 2>/dev/null && ! grep -qs ") Z " "/proc/$2/stat"; do sleep 1; done
     rm -f "${0%.pid}"; kill -9 -$$) > /dev/null 2>&1 &
  fi
  exec sh -c "$1"' "$pidfile" "$cmd" "$owner" > "$log" 2>&1 < /dev/null &
i=0
while [ ! -s "$pidfile" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done
cat "$pidfile" 2>/dev/null; rm -f "$pidfile"
"""
# Exit 0 if process $1 exists and is not a zombie (an exited app nobody reaped).
_ALIVE_SCRIPT = r"""
s=$(cat "/proc/$1/stat" 2>/dev/null) || exit 1
s=${s##*) }
set -- $s
[ "$1" != Z ]
"""
_POLL_S = 0.1
_PROBE_TIMEOUT_S = 3.0
# urllib must not send requests for the app to a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class AppError(SandboxError):
    """The app did not start or stopped answering; the message ends with its log's tail."""


class App:
    """One app per sandbox. Not started until ``start`` (or ``ensure_started``) is called."""

    def __init__(self, sandbox: Sandbox, spec: AppSpec) -> None:
        if "{port}" not in spec.command and spec.port is None:
            raise AppError("task.yaml app: put {port} in the command, or give the port the app listens on")
        self.spec = spec
        self._sandbox = sandbox
        self._port = spec.port if "{port}" not in spec.command else None
        self._sid: int | None = None
        self._relay: PortRelay | None = None
        self._url: str | None = None
        self.log_path = f"/tmp/lancer-app-{secrets.token_hex(4)}.log"
        # Only an unisolated local sandbox shares the host's processes and network.
        self._on_host: bool = getattr(sandbox, "on_host", False)

    @property
    def url(self) -> str:
        """The app's address on the host, e.g. ``http://127.0.0.1:8123`` (no trailing slash)."""
        if self._url is None:
            raise AppError("the app has not been started")
        return self._url

    @property
    def started(self) -> bool:
        return self._sid is not None

    def start(self) -> str:
        """Start the app and wait until it answers; returns its URL. Raises AppError."""
        if self._sid is not None:
            return self.url
        port = self._port or _free_host_port()
        self._port = port  # a restart keeps the port, so open pages keep their URL
        command = self.spec.command.replace("{port}", str(port))
        owner = str(os.getpid()) if self._on_host else ""
        words = [_LAUNCH_SCRIPT, "launch", f"{self.log_path}.pid", self.log_path, command, owner]
        # Launched from the agent's kind of shell, not a bare exec: the app runs the agent's
        # code, so it gets the same view (the local sandbox's shell hides the task folder).
        shell = PersistentShell(self._sandbox)
        try:
            result = shell.run(f"PORT={port} sh -c {' '.join(shlex.quote(w) for w in words)}", timeout=30)
        finally:
            shell.close()
        sid = result.output.strip().splitlines()[-1] if result.output.strip() else ""
        if result.exit_code != 0 or not sid.isdigit():
            raise AppError(f"could not start the app ({command!r}): {result.output.strip()[-500:]}")
        self._sid = int(sid)
        try:
            self._url = self._reach(port)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self._url

    def ensure_started(self) -> str | None:
        """Start the app if it is not running; returns a note for the model if it had to."""
        if self._sid is None:
            self.start()
            return None
        if self.is_running():
            return None
        log = self.log_tail()
        self._kill()
        self.start()
        return f"the app had exited and was started again; its last output:\n{log}"

    def restart(self) -> str:
        """Stop and start again (after code changes a server does not reload by itself)."""
        self._kill()
        return self.start()

    def is_running(self) -> bool:
        if self._sid is None:
            return False
        return self._sandbox.exec(["sh", "-c", _ALIVE_SCRIPT, "alive", str(self._sid)], timeout=30).exit_code == 0

    def log_tail(self, max_chars: int = 2000) -> str:
        try:
            text = self._sandbox.read_file(self.log_path).decode("utf-8", errors="replace")
        except (FileNotFoundError, IsADirectoryError):
            return "(no output)"
        return text[-max_chars:].strip() or "(no output)"

    def stop(self) -> None:
        """Kill the app's whole session and close the relay; idempotent."""
        self._kill()
        if self._relay is not None:
            self._relay.close()
            self._relay = None
        self._url = None
        with contextlib.suppress(SandboxError):  # the sandbox is already gone: so is the log
            self._sandbox.exec(["rm", "-f", self.log_path], timeout=30)

    close = stop

    def _kill(self) -> None:
        if self._sid is None:
            return
        sid, self._sid = self._sid, None
        kill = ["sh", "-c", KILL_SESSION_SCRIPT, "kill-session", str(sid), "include-leader"]
        with contextlib.suppress(SandboxError):  # the sandbox is already gone, and its processes with it
            self._sandbox.exec(kill, timeout=30)

    def _reach(self, port: int) -> str:
        if self._url is not None:
            return self._url
        if self._on_host:
            return f"http://127.0.0.1:{port}"
        self._relay = PortRelay(self._sandbox, port, host_port=port)
        return f"http://127.0.0.1:{self._relay.port}"

    def _wait_ready(self) -> None:
        probe = self.url + "/" + self.spec.ready_path.lstrip("/")
        deadline = time.monotonic() + self.spec.ready_timeout_s
        next_alive_check = 0.0
        while not _answers(probe):
            now = time.monotonic()
            if now > deadline:
                raise AppError(
                    f"the app did not answer at {probe} within {self.spec.ready_timeout_s:g} s; "
                    f"its output:\n{self.log_tail()}"
                )
            if now >= next_alive_check:
                if not self.is_running():
                    raise AppError(f"the app exited before it answered at {probe}; its output:\n{self.log_tail()}")
                next_alive_check = now + 0.5
            time.sleep(_POLL_S)


def _answers(url: str) -> bool:
    """Any HTTP response counts, errors included: the server is up, its bugs are the task."""
    try:
        with _OPENER.open(url, timeout=_PROBE_TIMEOUT_S):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, http.client.HTTPException):
        return False


def _free_host_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
