"""The parent of a local eval's worker processes: lancer imported once, every worker forked from it.

A worker process needs lancer, the model's SDK and all a run uses imported: well over a
second of CPU (``openai`` alone most of it), paid by every worker process on a machine
whose cores the attempts need. So the local executor starts one *fork server* per eval
(``python -m lancer.eval.worker FD [MODEL]``) as soon as it is made, which
imports all that (and the model's provider) while the eval still loads and checks its
tasks; each worker process is then a ``fork`` of it, ready in milliseconds, sharing the
imported code's memory.

The server only forks, from a single thread (a ``fork`` of a process with other threads
may copy a lock some thread held). A request on its socket (SOCK_SEQPACKET: one message
each) is ``fork`` with the new worker's stdin, stdout and stderr attached (SCM_RIGHTS),
answered ``pid N``; or ``kill PID SIGNUM``, which it sends only to a worker it has not
reaped yet, so a signal never reaches a stranger that got a dead worker's pid. When a
worker ends the server says ``exit PID CODE`` (negative: the signal that killed it).

Each worker starts a session of its own (a terminal's Ctrl-C reaches only the eval) and
gets SIGTERM when the server dies, which it does when the eval does, even killed with -9
(both ask Linux for that signal), or when the executor closes it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from typing import NoReturn

from lancer.core.errors import LancerError

PR_SET_PDEATHSIG = 1
PARENT_ENV = "LANCER_EVAL_PARENT"  # the eval's pid, for the server's check that it still lives
# What every worker imports, whatever its model: the run and all it uses.
PRELOAD = ("lancer.eval.attempt", "lancer.eval.task_models", "lancer.agent.runner")


class WorkerStartError(LancerError):
    """No worker process could be forked: the fork server is gone."""


# --- the server: python -m lancer.eval.worker FD [MODEL] ------------------------------------


def serve(fd: int, model: str | None, run_worker: Callable[[int], int]) -> NoReturn:
    """Import what workers need, then fork one per request, each running ``run_worker(server
    pid)``, until the executor closes its end of the socket ``fd``."""
    die_with_parent(int(os.environ.get(PARENT_ENV, "0")))
    sock = socket.socket(fileno=fd)
    _preload(model)
    me = os.getpid()
    alive: set[int] = set()

    def reap(signum: int = 0, frame: object = None) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            alive.discard(pid)
            with contextlib.suppress(OSError):
                sock.send(f"exit {pid} {os.waitstatus_to_exitcode(status)}".encode())

    signal.signal(signal.SIGCHLD, reap)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 256, 3)
        except OSError:
            break
        words = message.split()
        if not words:  # the executor closed its end: the eval is over (or gone)
            break
        if words[0] == b"fork" and len(fds) == 3:
            sys.stderr.flush()
            # Held until its pid is known and said: a worker that ends at once is reaped after.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
            pid = os.fork()
            if pid == 0:
                _become_worker(sock, fds, me, run_worker)
            alive.add(pid)
            with contextlib.suppress(OSError):
                sock.send(f"pid {pid}".encode())
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        elif words[0] == b"kill" and len(words) == 3 and int(words[1]) in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(words[1]), int(words[2]))
        for fd_ in fds:
            os.close(fd_)
    os._exit(0)  # nothing to tear down: skip the interpreter's slow exit


def _preload(model: str | None) -> None:
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    if model:
        from lancer.models import known_price

        # Imports the provider (and its SDK) and reads its prices, as each attempt would.
        with contextlib.suppress(Exception):  # the eval checked the spec; an attempt reports what fails
            known_price(model)


def _become_worker(sock: socket.socket, fds: list[int], server: int, run_worker: Callable[[int], int]) -> NoReturn:
    code = 1
    try:
        sock.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # The server may have inherited SIGINT blocked (a Ray worker blocks it, and a child
        # keeps its parent's mask): a worker's interrupt must reach it whatever started the eval.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD, signal.SIGINT, signal.SIGTERM})
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        code = run_worker(server)
        for thread in threading.enumerate():  # as the interpreter's exit would (a sandbox's files still going)
            if not thread.daemon and thread is not threading.current_thread():
                thread.join()
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)  # no interpreter teardown: all is written, and there is nothing else to free


def die_with_parent(parent: int) -> None:
    """Ask Linux for SIGTERM when the parent dies; ``parent`` (its pid): if it is gone already, now."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: an orphan runs to its own end
        return
    if parent and os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


# --- the executor's end --------------------------------------------------------------------


class ForkServer:
    """Starts the server (from the calling thread, which must outlive it: Linux signals the
    server when that thread ends), asks it for workers, hears when they end."""

    def __init__(self, env: dict[str, str], model: str | None = None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close()): its import errors
        argv = [sys.executable, "-m", "lancer.eval.worker", str(theirs.fileno()), *([model] if model else [])]
        self._proc = subprocess.Popen(
            argv,
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            start_new_session=True,
            env={**env, PARENT_ENV: str(os.getpid())},
        )
        theirs.close()
        self._sock = ours
        self._request = threading.Lock()  # one fork at a time: replies come in order
        self._pids: queue.Queue[int | None] = queue.Queue()
        self._ended = threading.Condition()
        self._exits: dict[int, int] = {}
        self._gone = False
        threading.Thread(target=self._listen, daemon=True, name="fork-server").start()

    def fork(self, stdin: int, stdout: int, stderr: int) -> int:
        """A new worker process with these three file descriptors; its pid."""
        with self._request:
            try:
                socket.send_fds(self._sock, [b"fork"], [stdin, stdout, stderr])
                pid = self._pids.get()
            except OSError:
                pid = None
        if pid is None:
            self._log.seek(0)
            last = self._log.read().decode(errors="replace").strip().splitlines()[-1:]
            raise WorkerStartError(
                f"the eval's worker processes cannot start: {last[0] if last else 'no reason given'}"
            )
        return pid

    def kill(self, pid: int, signum: int) -> None:
        with contextlib.suppress(OSError):
            self._sock.send(f"kill {pid} {signum}".encode())

    def wait(self, pid: int) -> int | None:
        """Worker ``pid``'s exit code once it has ended; None if the server died first."""
        with self._ended:
            self._ended.wait_for(lambda: pid in self._exits or self._gone)
            return self._exits.pop(pid, None)

    def alive(self) -> bool:
        return not self._gone

    def _listen(self) -> None:
        while True:
            try:
                words = self._sock.recv(256).split()
            except OSError:
                words = []
            if not words:
                break
            if words[0] == b"pid":
                self._pids.put(int(words[1]))
            elif words[0] == b"exit":
                with self._ended:
                    self._exits[int(words[1])] = int(words[2])
                    self._ended.notify_all()
        with self._ended:
            self._gone = True
            self._ended.notify_all()
        self._pids.put(None)

    def close(self) -> None:
        """Stop the server: call once every worker has ended (any still running get SIGTERM).
        Killed, as it has nothing left to do: an eval stopped by a bad task does not wait
        for its imports."""
        self._proc.kill()
        self._proc.wait()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._log.close()
