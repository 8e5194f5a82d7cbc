"""``--executor local``: each attempt in a child process of its own, ``workers`` at once.

A child per attempt (not a thread) so one attempt that crashes, hangs in C code or eats
memory never harms the others, and Ctrl-C reaches each run as the runner expects it: the
children live in their own sessions (a terminal's Ctrl-C reaches only the eval), and
``interrupt`` sends each exactly one SIGINT.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from lancer.eval.attempt import AttemptJob, error_row, node_name

WORKER_LOG = "worker.log"  # the child's stderr, in its run directory


class LocalExecutor:
    def __init__(self, workers: int, address: str | None = None) -> None:
        self.slots = workers
        self._done: queue.Queue[dict[str, Any]] = queue.Queue()
        self._running: dict[int, subprocess.Popen[bytes]] = {}
        self._keys: dict[int, tuple[str, int]] = {}  # pid -> (task_id, attempt)
        self._lock = threading.Lock()
        self._interrupted = False

    def submit(self, job: AttemptJob) -> None:
        run_dir = Path(job.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        with (run_dir / WORKER_LOG).open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lancer.eval.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                env={**os.environ, "LANCER_EVAL_PARENT": str(os.getpid())},
            )
        with self._lock:
            self._running[proc.pid] = proc
            self._keys[proc.pid] = (job.task_id, job.attempt)
            if self._interrupted:
                proc.send_signal(signal.SIGINT)
        threading.Thread(target=self._collect, args=(job, proc), daemon=True).start()

    def _collect(self, job: AttemptJob, proc: subprocess.Popen[bytes]) -> None:
        started = time.monotonic()
        try:
            out, _ = proc.communicate(json.dumps(job.to_dict()).encode())
            row = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError, OSError):
            reason = f"the attempt's process ended (exit code {proc.wait()}) without a result; see {WORKER_LOG}"
            # Interrupted before it could catch the signal (still starting): not an error.
            status = "interrupted" if self._interrupted else "error"
            row = error_row(job, reason, time.monotonic() - started, status)
        with self._lock:
            self._running.pop(proc.pid, None)
            self._keys.pop(proc.pid, None)
        self._done.put(row)

    def wait(self, timeout: float) -> list[dict[str, Any]]:
        rows = []
        with contextlib.suppress(queue.Empty):
            rows.append(self._done.get(timeout=timeout))
            while True:
                rows.append(self._done.get_nowait())
        return rows

    def placement(self) -> dict[tuple[str, int], str]:
        with self._lock:
            return dict.fromkeys(self._keys.values(), node_name())

    def notices(self) -> list[str]:
        return []

    def interrupt(self) -> None:
        with self._lock:
            if self._interrupted:
                return
            self._interrupted = True
            for proc in self._running.values():
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)

    def close(self) -> None:
        self.interrupt()
        with self._lock:
            procs = list(self._running.values())
        for proc in procs:
            proc.wait()
