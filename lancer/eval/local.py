"""``--executor local``: attempts run in a few worker processes, up to ``workers`` at once.

Each worker process (``lancer.eval.worker``) runs up to ``ATTEMPTS_PER_PROCESS`` attempts
at once as threads, so an attempt costs a thread, not a Python start-up (see README
"Benchmarks" for the figures); the processes are forked from one fork server
(``lancer.eval.forks``), started when the executor is made, which imports lancer and the
model's SDK once for all of them. What a child per attempt bought is kept where it matters:

- Ctrl-C: the processes live in their own sessions (a terminal's Ctrl-C reaches only the
  eval), and ``interrupt`` sends each exactly one SIGINT, which ends each of its attempts
  as ``interrupted``.
- A process that dies (a crash in C code, the kernel's OOM killer, SIGKILL) or hangs (no
  heartbeat for ``HANG_S``: it is killed) takes its attempts with it, but never the eval:
  an attempt that was alone in it is an error row (a harness fault, counted once); when
  several were, the crash cannot be pinned on one, so each of them runs again, from the
  start, in a process of its own, where a second crash is its own error row. What their
  first run had cost is handed back with the row (``discarded``) for the budget.

The model's rate limit (``model.max_connections`` ..., and a server's Retry-After) is
shared by every worker process through one ``lancer.models.limiter.LimiterServer`` in
the eval's process.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from lancer.core.sandbox import TEMP_PREFIX, remove_abandoned
from lancer.eval.attempt import AttemptJob, error_row, node_name, usage_so_far
from lancer.eval.forks import ForkServer
from lancer.eval.worker import WORKER_LOG
from lancer.models.limiter import ADDRESS_ENV, LimiterServer

ATTEMPTS_PER_PROCESS = 16
HANG_S = float(os.environ.get("LANCER_WORKER_HANG_S", "60"))  # no heartbeat this long: the process is stuck

Key = tuple[str, int]


class WorkerProcess:
    """One worker process (forked by ``forks``) and the jobs it runs."""

    def __init__(self, capacity: int, executor: LocalExecutor, forks: ForkServer, alone: bool = False) -> None:
        self.capacity = capacity
        self.alone = alone  # runs one attempt again, after a crash, apart from all others
        self.jobs: dict[Key, AttemptJob] = {}
        self.heard = time.monotonic()
        self.hung = False
        self._executor = executor
        self._forks = forks
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by its reader); no name: gone with the process, even after kill -9
        jobs_r, jobs_w = os.pipe()
        rows_r, rows_w = os.pipe()
        try:
            self.pid = forks.fork(jobs_r, rows_w, self._log.fileno())
        except BaseException:
            for fd in (jobs_w, rows_r):
                os.close(fd)
            self._log.close()
            raise
        finally:
            os.close(jobs_r)
            os.close(rows_w)
        self._stdin = open(jobs_w, "wb")  # noqa: SIM115 (closed by finish())
        self._stdout = open(rows_r, "rb")  # noqa: SIM115 (closed by its reader)
        self._write_lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def run(self, job: AttemptJob) -> None:
        self.jobs[(job.task_id, job.attempt)] = job
        line = (json.dumps(job.to_dict()) + "\n").encode()
        with self._write_lock, contextlib.suppress(OSError, ValueError):  # it died: its reader hands the job back
            self._stdin.write(line)
            self._stdin.flush()

    def signal(self, signum: int) -> None:
        self._forks.kill(self.pid, signum)

    def kill_hung(self) -> None:
        self.hung = True
        self.signal(signal.SIGKILL)

    def finish(self) -> None:
        """No more jobs: the process ends when its attempts have."""
        with self._write_lock, contextlib.suppress(OSError):
            self._stdin.close()

    def _read(self) -> None:
        for line in self._stdout:
            self.heard = time.monotonic()
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if "row" in message:
                    row = message["row"]
                    self.jobs.pop((row["task_id"], row["attempt"]), None)
                    self._executor.deliver(row)
        self._stdout.close()
        code = self._forks.wait(self.pid)
        self._log.seek(0)
        log = self._log.read()
        self._log.close()
        self._executor.ended(self, code, log)


class LocalExecutor:
    def __init__(self, workers: int, address: str | None = None, model: str | None = None) -> None:
        """``model``: the attempts' model spec, whose provider the fork server imports up front."""
        self.slots = workers
        self._done: queue.Queue[dict[str, Any]] = queue.Queue()
        self._processes: list[WorkerProcess] = []
        # A condition, so that close() hears when a process is handed back.
        self._lock = threading.Condition()
        self._interrupted = False
        self._closing = threading.Event()
        # Attempts run again after a crash took them: what their first runs had cost.
        self._discarded: dict[Key, list[dict[str, Any]]] = {}
        # One limiter for every worker process (its limits, and a server's Retry-After),
        # unless one was handed down already (a Ray node's).
        self._limiter = None if ADDRESS_ENV in os.environ else LimiterServer()
        env = {**os.environ, **({ADDRESS_ENV: self._limiter.address} if self._limiter else {})}
        self._forks = ForkServer(env, model)
        threading.Thread(target=self._watch_hangs, daemon=True).start()

    def submit(self, job: AttemptJob) -> None:
        Path(job.run_dir).mkdir(parents=True, exist_ok=True)
        with self._lock:
            shared = [p for p in self._processes if not p.alone and len(p.jobs) < p.capacity]
            process = min(shared, key=lambda p: len(p.jobs)) if shared else None
            if process is None:
                process = self._start(min(self.slots, ATTEMPTS_PER_PROCESS))
            process.run(job)

    def _start(self, capacity: int, alone: bool = False) -> WorkerProcess:
        process = WorkerProcess(capacity, self, self._forks, alone)
        self._processes.append(process)
        if self._interrupted:
            process.signal(signal.SIGINT)
        return process

    def deliver(self, row: dict[str, Any]) -> None:
        with self._lock:
            discarded = self._discarded.pop((row["task_id"], row["attempt"]), [])
        if discarded:
            row["discarded"] = discarded
        self._done.put(row)

    def ended(self, process: WorkerProcess, code: int | None, log: bytes) -> None:
        """A worker process ended; the attempts it still held come back or run again."""
        with self._lock:
            if process in self._processes:
                self._processes.remove(process)
                self._lock.notify_all()
            orphans = list(process.jobs.values())
            process.jobs.clear()
        if orphans:  # it died holding attempts: their temp folders (sandboxes, Chromium's) are abandoned
            remove_abandoned(TEMP_PREFIX)
        with self._lock:
            rerun = len(orphans) > 1 and not process.alone and not self._interrupted and self._forks.alive()
            for job in orphans:
                _append_log(Path(job.run_dir) / WORKER_LOG, log)
                if rerun:
                    self._discard(job)
                    apart = self._start(1, alone=True)
                    apart.run(job)
                    apart.finish()
        if rerun:
            return
        if process.hung:
            why = f"the attempt's worker process stopped answering for {HANG_S:g} s and was killed; see {WORKER_LOG}"
        else:
            exit_code = "unknown" if code is None else code
            why = f"the attempt's process ended (exit code {exit_code}) without a result; see {WORKER_LOG}"
        for job in orphans:
            # Interrupted before it could catch the signal (still starting): not an error.
            status = "interrupted" if self._interrupted else "error"
            self.deliver(error_row(job, why, 0.0, status))

    def _discard(self, job: AttemptJob) -> None:
        run_dir = Path(job.run_dir)
        cost = usage_so_far(run_dir / "trajectory.jsonl")["cost_usd"]
        run = {"task_id": job.task_id, "attempt": job.attempt, "cost_usd": cost}
        self._discarded.setdefault((job.task_id, job.attempt), []).append(run)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True, exist_ok=True)

    def _watch_hangs(self) -> None:
        while not self._closing.wait(1.0):
            with self._lock:
                stuck = [p for p in self._processes if p.jobs and time.monotonic() - p.heard > HANG_S]
            for process in stuck:
                process.kill_hung()

    def wait(self, timeout: float) -> list[dict[str, Any]]:
        rows = []
        with contextlib.suppress(queue.Empty):
            rows.append(self._done.get(timeout=timeout))
            while True:
                rows.append(self._done.get_nowait())
        return rows

    def placement(self) -> dict[tuple[str, int], str]:
        with self._lock:
            return dict.fromkeys((key for process in self._processes for key in process.jobs), node_name())

    def notices(self) -> list[str]:
        return []

    def interrupt(self) -> None:
        with self._lock:
            if self._interrupted:
                return
            self._interrupted = True
            for process in self._processes:
                process.signal(signal.SIGINT)

    def close(self) -> None:
        self.interrupt()
        with self._lock:
            while self._processes:
                for process in self._processes:
                    process.finish()  # all at once: they end side by side (and reruns started meanwhile)
                self._lock.wait()
        self._closing.set()
        self._forks.close()
        if self._limiter is not None:
            self._limiter.close()
        remove_abandoned(TEMP_PREFIX)  # whatever an ended worker process could not remove itself


def _append_log(path: Path, log: bytes) -> None:
    with contextlib.suppress(OSError), path.open("ab") as f:
        f.write(log[-20_000:])
