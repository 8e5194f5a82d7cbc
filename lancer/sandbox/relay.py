"""A TCP port inside a sandbox, reachable from the host without giving the sandbox a network.

The docker sandbox runs with no network at all, so an app listening inside it cannot be
published. Instead a small Python relay runs inside the sandbox on one ``open_shell``
channel (a ``docker exec`` stream), and the host listens on 127.0.0.1: each host
connection is carried over that channel as base64 lines to a connection the relay makes
to the app's port on the sandbox's own loopback. Only the Sandbox protocol is used, so
this works for any backend; the sandbox needs ``python3``.

Line protocol, both ways: ``O id`` (open: host to sandbox only), ``D id base64`` (data),
``C id`` (the sender's side of the connection reached end of file).
"""

from __future__ import annotations

import base64
import contextlib
import shlex
import socket
import threading
import time

from lancer.core.errors import SandboxError
from lancer.core.sandbox import Sandbox, ShellProcess

_READY = b"LANCER_RELAY_READY"

# Runs in the sandbox; stdin carries the host's lines, stdout the relay's.
_RELAY_SCRIPT = r"""
import base64, socket, sys, threading
port = int(sys.argv[1]); out = sys.stdout.buffer; lock = threading.Lock(); socks = {}
def send(line):
    with lock:
        out.write(line); out.flush()
def pump(cid, s):
    try:
        while True:
            data = s.recv(65536)
            if not data: break
            send(b"D %d %s\n" % (cid, base64.b64encode(data)))
    except OSError: pass
    send(b"C %d\n" % cid)
send(b"LANCER_RELAY_READY\n")
for line in sys.stdin.buffer:
    f = line.split()
    if len(f) < 2: continue
    cid = int(f[1])
    if f[0] == b"O":
        try: s = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError: send(b"C %d\n" % cid); continue
        s.settimeout(None); socks[cid] = s
        threading.Thread(target=pump, args=(cid, s), daemon=True).start()
    elif f[0] == b"D" and cid in socks and len(f) > 2:
        try: socks[cid].sendall(base64.b64decode(f[2]))
        except OSError: pass
    elif f[0] == b"C" and cid in socks:
        try: socks.pop(cid).shutdown(socket.SHUT_WR)
        except OSError: pass
"""


class PortRelay:
    """Host ``127.0.0.1:self.port`` carried to ``127.0.0.1:port`` inside ``sandbox``.

    Raises SandboxError if the relay cannot start (no python3 in the sandbox).
    """

    def __init__(self, sandbox: Sandbox, port: int, host_port: int = 0, start_timeout: float = 30) -> None:
        self._listener = _listen(host_port)
        self.port: int = self._listener.getsockname()[1]
        self._conns: dict[int, socket.socket] = {}
        self._next_id = 0
        self._lock = threading.Lock()  # guards the channel's stdin and _conns
        self._closed = False
        self._shell: ShellProcess = sandbox.open_shell()
        try:
            command = f"exec python3 -u -c {shlex.quote(_RELAY_SCRIPT)} {port} 2>/dev/null\n"
            self._shell.send(command.encode())
            self._buffer = self._wait_ready(start_timeout)
        except BaseException:
            self.close()
            raise
        threading.Thread(target=self._accept_loop, daemon=True, name="relay-accept").start()
        threading.Thread(target=self._channel_loop, daemon=True, name="relay-channel").start()

    def _wait_ready(self, timeout: float) -> bytes:
        buffer = b""
        deadline = time.monotonic() + timeout
        while _READY + b"\n" not in buffer:
            chunk = self._shell.recv(0.5)
            if chunk is None or time.monotonic() > deadline:
                raise SandboxError(
                    f"the port relay did not start in the sandbox (is python3 there?): {buffer[-200:]!r}"
                )
            buffer += chunk
        return buffer.split(_READY + b"\n", 1)[1]

    def _send(self, line: bytes) -> None:
        with self._lock:
            if not self._closed:
                self._shell.send(line)

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # the listener was closed
                return
            with self._lock:
                cid = self._next_id
                self._next_id += 1
                self._conns[cid] = client
            try:
                self._send(b"O %d\n" % cid)
            except OSError:
                client.close()
                return
            threading.Thread(target=self._client_loop, args=(cid, client), daemon=True).start()

    def _client_loop(self, cid: int, client: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                self._send(b"D %d %s\n" % (cid, base64.b64encode(data)))
            self._send(b"C %d\n" % cid)
        except OSError:
            pass
        with self._lock:
            self._conns.pop(cid, None)
        client.close()

    def _channel_loop(self) -> None:
        buffer = self._buffer
        while True:
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self._handle(line.split())
            chunk = self._shell.recv(1.0)
            if chunk is None:  # the relay exited: no connection can be served any more
                self._drop_all()
                return
            buffer += chunk

    def _handle(self, fields: list[bytes]) -> None:
        if len(fields) < 2 or not fields[1].isdigit():
            return
        with self._lock:
            client = self._conns.get(int(fields[1]))
        if client is None:
            return
        try:
            if fields[0] == b"D" and len(fields) > 2:
                client.sendall(base64.b64decode(fields[2]))
            elif fields[0] == b"C":
                # The app closed the connection. SHUT_RDWR (not close) also wakes the
                # _client_loop blocked in recv, which then closes the socket.
                client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _drop_all(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for client in conns:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop listening, end every connection and the relay process; idempotent."""
        with self._lock:
            already, self._closed = self._closed, True
        if already:
            return
        with contextlib.suppress(OSError):  # close() alone does not wake a thread blocked in accept()
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._drop_all()
        self._shell.close()


def _listen(port: int) -> socket.socket:
    """A listener on the host's loopback at ``port``, or any free port if that one is taken."""
    try:
        return socket.create_server(("127.0.0.1", port))
    except OSError:
        if port == 0:
            raise
        return socket.create_server(("127.0.0.1", 0))
