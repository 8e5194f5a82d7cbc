"""One rate limit per model endpoint, shared by every attempt that calls it.

``model.max_connections`` (requests in flight at once), ``model.requests_per_minute`` and
``model.tokens_per_minute`` bound what all the runs of one eval send to one endpoint (the
provider and its base URL), and a 429 with Retry-After pauses every one of them, not only
the run that got it (``lancer.models.retry``). A limiter is anything with the ``Limiter``
shape below:

- ``LocalLimiter``: the state itself, for the threads of one process (``lancer run``).
- ``RemoteLimiter``: a client of a ``LimiterServer`` on a Unix socket, which holds a
  limiter for several processes (the eval's worker processes, Ray's attempts on a node).
  A slot is a connection: a process that dies holding one gives it back.

``limiter_for(config)`` is what a provider uses: the limiter named by ``LANCER_LIMITER``
(``unix:PATH``, set by the eval for its workers), else this process's own. Waiting for a
slot is measured apart from waiting on the model and recorded in the trajectory
(``limiter_wait_s``). On a Ray cluster: ``lancer.models.ray_limiter``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import socket
import socketserver
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from lancer.core.config import ModelConfig
from lancer.core.sandbox import owned_temp_dir

ADDRESS_ENV = "LANCER_LIMITER"
WINDOW_S = 60.0
# The longest a waiter sleeps before it looks again (so an interrupt reaches it).
_POLL_S = 0.2


@dataclass(frozen=True)
class Limits:
    max_connections: int | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    @classmethod
    def from_config(cls, config: ModelConfig) -> Limits:
        return cls(config.max_connections, config.requests_per_minute, config.tokens_per_minute)

    def __bool__(self) -> bool:
        return any(v is not None for v in asdict(self).values())


class Slot(Protocol):
    waited_s: float  # how long acquiring it took

    def release(self, tokens: int) -> None:
        """Give the slot back; ``tokens``: what the request really took (input and output)."""


class Limiter(Protocol):
    def acquire(self, endpoint: str, limits: Limits, tokens: int) -> Slot:
        """Block until a request of about ``tokens`` tokens may go to ``endpoint``."""

    def pause(self, endpoint: str, seconds: float) -> None:
        """The endpoint said to wait (429 Retry-After): no request goes to it for ``seconds``."""


class _Endpoint:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.in_flight = 0
        self.paused_until = 0.0
        self.requests: deque[float] = deque()
        self.tokens: deque[tuple[float, int]] = deque()

    def wait_needed(self, now: float, tokens: int) -> float:
        """Seconds until a request may start (0: now)."""
        limits = self.limits
        while self.requests and self.requests[0] <= now - WINDOW_S:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= now - WINDOW_S:
            self.tokens.popleft()
        waits = [self.paused_until - now]
        if limits.max_connections is not None and self.in_flight >= limits.max_connections:
            waits.append(_POLL_S)  # a release wakes the waiters sooner
        if limits.requests_per_minute is not None and len(self.requests) >= limits.requests_per_minute:
            waits.append(self.requests[0] + WINDOW_S - now)
        used = sum(n for _, n in self.tokens)
        if limits.tokens_per_minute is not None and self.tokens and used + tokens > limits.tokens_per_minute:
            waits.append(self.tokens[0][0] + WINDOW_S - now)
        return max([*waits, 0.0])


class LocalLimiter:
    """The limits' state, for the threads of this process."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._endpoints: dict[str, _Endpoint] = {}

    def acquire(self, endpoint: str, limits: Limits, tokens: int) -> Slot:
        started = time.monotonic()
        with self._cond:
            state = self._endpoints.setdefault(endpoint, _Endpoint(limits))
            while (wait := state.wait_needed(time.monotonic(), tokens)) > 0:
                self._cond.wait(min(wait, _POLL_S))
            now = time.monotonic()
            state.in_flight += 1
            state.requests.append(now)
            state.tokens.append((now, tokens))
        return _LocalSlot(self, state, tokens, time.monotonic() - started)

    def pause(self, endpoint: str, seconds: float) -> None:
        with self._cond:
            state = self._endpoints.get(endpoint)
            if state is not None:
                state.paused_until = max(state.paused_until, time.monotonic() + seconds)

    def _release(self, state: _Endpoint, estimated: int, tokens: int) -> None:
        with self._cond:
            state.in_flight -= 1
            if tokens != estimated:
                state.tokens.append((time.monotonic(), tokens - estimated))
            self._cond.notify_all()


class _LocalSlot:
    def __init__(self, limiter: LocalLimiter, state: _Endpoint, estimated: int, waited_s: float) -> None:
        self._limiter, self._state, self._estimated, self.waited_s = limiter, state, estimated, waited_s
        self._released = False

    def release(self, tokens: int) -> None:
        if not self._released:
            self._released = True
            self._limiter._release(self._state, self._estimated, tokens)


# --- across processes: a server on a Unix socket -------------------------------------------


class LimiterServer:
    """Serves ``limiter`` on a Unix socket; ``address`` is what ``LANCER_LIMITER`` takes."""

    def __init__(self, limiter: Limiter | None = None) -> None:
        self.limiter = limiter or LocalLimiter()
        # Owned: what a killed eval leaves, the next eval (or `lancer sandbox prune`) removes.
        self._dir = str(owned_temp_dir("lancer-limiter-"))
        self.path = Path(self._dir) / "socket"
        self._server = socketserver.ThreadingUnixStreamServer(str(self.path), _handler(self.limiter))
        self._server.daemon_threads = True
        # Polls 20 times a second for close(), which waits for it: an eval's shutdown.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def address(self) -> str:
        return f"unix:{self.path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _handler(limiter: Limiter) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            request = json.loads(self.rfile.readline() or b"{}")
            if request.get("op") == "pause":
                limiter.pause(request["endpoint"], float(request["seconds"]))
                return
            if request.get("op") != "acquire":
                return
            slot = limiter.acquire(request["endpoint"], Limits(**request["limits"]), int(request["tokens"]))
            used = int(request["tokens"])
            try:
                self.wfile.write(json.dumps({"waited_s": slot.waited_s}).encode() + b"\n")
                self.wfile.flush()
                # Held until the client says what the request took, or goes away (died).
                with contextlib.suppress(ValueError, KeyError):
                    used = int(json.loads(self.rfile.readline())["tokens"])
            except OSError:
                pass
            finally:
                slot.release(used)

    return Handler


class RemoteLimiter:
    """A ``LimiterServer``'s limiter, from another process."""

    def __init__(self, path: str) -> None:
        self.path = path

    def acquire(self, endpoint: str, limits: Limits, tokens: int) -> Slot:
        started = time.monotonic()
        conn = self._send({"op": "acquire", "endpoint": endpoint, "limits": asdict(limits), "tokens": tokens})
        try:
            conn.settimeout(_POLL_S)  # short waits, so that an interrupt reaches this thread
            reply = b""
            while not reply.endswith(b"\n"):
                with contextlib.suppress(TimeoutError):
                    chunk = conn.recv(256)
                    if not chunk:
                        raise ConnectionError(f"the rate limiter at {self.path} went away")
                    reply += chunk
        except BaseException:
            conn.close()
            raise
        return _RemoteSlot(conn, time.monotonic() - started)

    def pause(self, endpoint: str, seconds: float) -> None:
        self._send({"op": "pause", "endpoint": endpoint, "seconds": seconds}).close()

    def _send(self, request: dict[str, Any]) -> socket.socket:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
            conn.sendall(json.dumps(request).encode() + b"\n")
        except OSError as e:
            conn.close()
            raise ConnectionError(f"the rate limiter at {self.path} does not answer: {e}") from None
        return conn


class _RemoteSlot:
    def __init__(self, conn: socket.socket, waited_s: float) -> None:
        self._conn, self.waited_s = conn, waited_s

    def release(self, tokens: int) -> None:
        with contextlib.suppress(OSError):
            self._conn.sendall(json.dumps({"tokens": tokens}).encode() + b"\n")
        self._conn.close()


def limiter_for(config: ModelConfig) -> tuple[Limiter, Limits]:
    """The limiter this process's model calls go through, and the config's limits (a limiter
    without limits still makes every run wait out a server's Retry-After)."""
    return _shared_limiter(os.environ.get(ADDRESS_ENV, "")), Limits.from_config(config)


@functools.cache
def _shared_limiter(address: str) -> Limiter:
    if address.startswith("unix:"):
        return RemoteLimiter(address.removeprefix("unix:"))
    return LocalLimiter()
