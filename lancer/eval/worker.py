"""A worker process of a local eval, many attempts at once.

Each is forked from the eval's fork server (``python -m lancer.eval.worker FD [MODEL]``, see
``lancer.eval.forks``), which imported lancer and the SDKs once for all of them: the
executor (``lancer.eval.local``) writes one job (``AttemptJob`` as JSON) per line on its
stdin, and each job runs in a thread of its own (an attempt spends nearly all its time
waiting on the model's HTTP reply or a command in its sandbox, so threads are enough).
Each finished attempt comes back as one line ``{"row": ...}`` on stdout; ``{"alive": 1}``
every ``HEARTBEAT_S`` tells the executor that the process is not stuck (a C call holding
the interpreter stops it). Anything else that would reach stdout goes to stderr, and what
an attempt's thread writes to ``sys.stderr`` goes to its run directory's ``worker.log``.
When stdin closes, the process ends once its attempts have.

Signals: the first SIGINT or SIGTERM interrupts every attempt: each attempt's thread gets
one KeyboardInterrupt (within a second while a command runs; a model reply in flight is
awaited first), and the run ends as ``interrupted`` (outputs written, sandbox removed), as
``lancer run`` ends on Ctrl-C; jobs arriving afterwards end at once as interrupted. The
process asks Linux to send it SIGTERM when its parent (the fork server, which in turn gets
it when the eval dies) dies, so a ``kill -9`` of the eval leaves no attempt running on.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from lancer.core.sandbox import TEMP_PREFIX, remove_abandoned
from lancer.eval.attempt import AttemptJob, error_row, run_attempt
from lancer.eval.forks import die_with_parent, serve
from lancer.eval.store import WORKER_PID_FILE

HEARTBEAT_S = 1.0
WORKER_LOG = "worker.log"  # what an attempt's thread wrote to stderr, in its run directory


class Attempts:
    """The attempts running in this process, one thread each, and their interruption."""

    def __init__(self, out_fd: int) -> None:
        self._out_fd = out_fd
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._running: dict[int, AttemptJob] = {}  # thread ident -> its job
        self._threads: list[threading.Thread] = []
        self._interrupt = threading.Event()
        self._interrupted: set[int] = set()

    def start(self, job: AttemptJob) -> None:
        run_dir = Path(job.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / WORKER_PID_FILE).write_text(str(os.getpid()))  # a resumed eval stops a stray process
        thread = threading.Thread(target=self._run, args=(job,), name=f"attempt-{job.task_id}-{job.attempt}")
        with self._lock:
            self._threads.append(thread)
            thread.start()
            self._running[thread.ident or 0] = job
            if self._interrupt.is_set():
                self._raise_in(thread.ident or 0)

    def _run(self, job: AttemptJob) -> None:
        started = time.monotonic()
        row: dict[str, Any] | None = None
        try:
            with STDERR.to_file(Path(job.run_dir) / WORKER_LOG):
                row = run_attempt(job)
        except KeyboardInterrupt:  # it landed outside the run's own handling
            pass
        self._retire()
        if row is None:
            row = error_row(job, "interrupted", time.monotonic() - started, "interrupted")
        self.send({"row": row})

    def _retire(self) -> None:
        """Leave the running set; afterwards no interrupt can reach this thread any more."""
        ident = threading.get_ident()
        while True:
            try:
                with self._lock:
                    self._running.pop(ident, None)
                _set_async_exc(ident, None)  # one sent just before, not raised yet: dropped
                return
            except KeyboardInterrupt:  # it arrived in between: retire again
                continue

    def interrupt_soon(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: only sets a flag (it may run while this thread holds a lock)."""
        self._interrupt.set()

    def interrupter(self) -> None:
        self._interrupt.wait()
        with self._lock:
            for ident in list(self._running):
                self._raise_in(ident)

    def _raise_in(self, ident: int) -> None:
        if ident not in self._interrupted:  # once: cleanup is never cut short by a second one
            self._interrupted.add(ident)
            _set_async_exc(ident, KeyboardInterrupt)

    def heartbeat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_S)
            self.send({"alive": 1})

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        with self._write_lock:
            try:
                while data:
                    data = data[os.write(self._out_fd, data) :]
            except BrokenPipeError:  # the eval is gone (killed); its resume runs these attempts again
                pass

    def join(self) -> None:
        for thread in list(self._threads):
            thread.join()


class ThreadStderr(io.TextIOBase):
    """``sys.stderr`` that sends each attempt thread's lines to that attempt's own file."""

    def __init__(self, fallback: TextIO) -> None:
        self._fallback = fallback
        self._files: dict[int, TextIO] = {}

    def to_file(self, path: Path) -> _Redirect:
        return _Redirect(self, path)

    def write(self, text: str) -> int:
        target = self._files.get(threading.get_ident(), self._fallback)
        target.write(text)
        target.flush()
        return len(text)

    def flush(self) -> None:
        self._fallback.flush()


class _Redirect:
    def __init__(self, stderr: ThreadStderr, path: Path) -> None:
        self._stderr, self._path = stderr, path

    def __enter__(self) -> None:
        self._stderr._files[threading.get_ident()] = self._path.open("a", encoding="utf-8")

    def __exit__(self, *exc: object) -> None:
        self._stderr._files.pop(threading.get_ident()).close()


STDERR = ThreadStderr(sys.__stderr__ or sys.stderr)


def main(parent: int) -> int:
    """A worker forked from the fork server ``parent``: jobs on stdin, rows on stdout."""
    out_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints go to the log, not into the rows
    sys.stdout = sys.stderr = STDERR
    die_with_parent(parent)
    attempts = Attempts(out_fd)
    signal.signal(signal.SIGINT, attempts.interrupt_soon)
    signal.signal(signal.SIGTERM, attempts.interrupt_soon)
    for target in (attempts.interrupter, attempts.heartbeat):
        threading.Thread(target=target, daemon=True).start()
    for line in sys.stdin:
        if line.strip():
            attempts.start(AttemptJob.from_dict(json.loads(line)))
    attempts.join()
    # An attempt interrupted at a bad moment (inside Playwright's start, say) can leave a temp
    # folder it owned; nobody else removes it while this process lives, and this process may
    # outlive the eval that would (a killed eval's worker can end after the resumed eval).
    remove_abandoned(TEMP_PREFIX, ending=True)
    return 0


def _set_async_exc(ident: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc) if exc else None)


if __name__ == "__main__":  # the fork server: socket FD, and the model spec to import for
    serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None, main)
