"""``--executor ray``: each attempt a Ray task on a Ray cluster (``pip install 'lancer[ray]'``).

A node needs lancer and a Docker engine (for ``--sandbox docker``), nothing else: the task
folder travels with the job (a tar through Ray's object store, put once per task), and the
attempt's run directory travels back (a tar in the task's return value), to the driver's
eval directory, whichever node ran it. A node that already has the same task folder at the
same path (the driver's machine, a shared file system) uses it in place, so the local
sandbox hides it from the agent as in a local eval. ``node`` in each row is the Ray node's
IP address.

Interrupts: ``ray.cancel`` raises KeyboardInterrupt only when the task's Python code next
runs, not in a blocking call, so the executor keeps its own flag (a small actor). Each
attempt watches it from a thread and, when it is set, sends SIGINT to its own main thread:
the run ends as ``interrupted`` exactly as a local attempt does (outputs written, sandbox
removed), and its run directory still comes back.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import shutil
import signal
import socket
import tarfile
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import ray

from agent.errors import ConfigError
from agent.eval.attempt import AttemptJob, error_row, run_attempt

# Each attempt takes one CPU of the cluster: `ray start --num-cpus N` is how many attempts
# a node runs at once (they wait on the model and the sandbox far more than they compute).
CPUS_PER_ATTEMPT = 1
_CONNECT_TIMEOUT_S = 5.0


class RayExecutor:
    def __init__(self, workers: int, address: str | None = None) -> None:
        self.slots = workers
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            _check_reachable(address)
        # Ray's own lines (connecting, worker logs) would tear the progress display.
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        self._interrupts = _Interrupts.remote()  # type: ignore[attr-defined]
        self._running: dict[Any, AttemptJob] = {}  # ObjectRef -> its job
        self._task_folders: dict[str, tuple[str, Any]] = {}  # folder -> (digest, ObjectRef of its tar)

    def submit(self, job: AttemptJob) -> None:
        shipped = self._ship(job.task_folder) if job.task_folder else None
        ref = _run_on_node.options(num_cpus=CPUS_PER_ATTEMPT).remote(job, shipped, self._interrupts)
        self._running[ref] = job

    def _ship(self, folder: str) -> tuple[str, Any]:
        if folder not in self._task_folders:
            data = pack(Path(folder))
            self._task_folders[folder] = (_digest(data), ray.put(data))
        return self._task_folders[folder]

    def wait(self, timeout: float) -> list[dict[str, Any]]:
        refs = list(self._running)
        if not refs:
            time.sleep(timeout)
            return []
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:  # and whatever else has finished meanwhile
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        return [self._collect(ref, self._running.pop(ref)) for ref in ready]

    def _collect(self, ref: Any, job: AttemptJob) -> dict[str, Any]:
        try:
            row, run_tar = ray.get(ref)
        except Exception as e:  # the task died, its node vanished, or it was cancelled
            reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
            return error_row(job, f"the attempt's Ray task failed: {type(e).__name__}: {reason}")
        unpack(run_tar, Path(job.run_dir))
        row["run_dir"] = job.run_dir
        return dict(row)

    def interrupt(self) -> None:
        ray.get(self._interrupts.set.remote())

    def close(self) -> None:
        if not ray.is_initialized():
            return
        try:
            if self._running:
                self.interrupt()
                while self._running:
                    self.wait(1.0)
            ray.kill(self._interrupts)
        finally:
            ray.shutdown()


@ray.remote(num_cpus=0)
class _Interrupts:
    """The eval's Ctrl-C, as seen by every attempt on every node."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    async def set(self) -> None:
        self._event.set()

    async def wait(self) -> bool:
        await self._event.wait()
        return True


@ray.remote
def _run_on_node(job: AttemptJob, shipped: tuple[str, Any] | None, interrupts: Any) -> tuple[dict[str, Any], bytes]:
    """One attempt on whichever node Ray picked: its row, and its run directory as a tar."""
    work = Path(tempfile.mkdtemp(prefix="lancer-ray-"))
    try:
        folder = _task_folder_here(job.task_folder, shipped, work / "task") if job.task_folder else None
        source = job.task_source if job.task_source and Path(job.task_source).exists() else None
        here = replace(
            job,
            task_folder=str(folder) if folder else None,
            task_source=str(folder) if folder else source,  # what the agent must not see, on this node
            run_dir=str(work / "run"),
        )
        row = _run_interruptibly(here, interrupts)
        row["node"] = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        (work / "run").mkdir(exist_ok=True)  # an attempt that failed before its run made none
        return row, pack(work / "run")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _task_folder_here(original: str | None, shipped: tuple[str, Any] | None, dest: Path) -> Path:
    """The node's own copy of the task folder when it is the same, else the shipped one."""
    assert original is not None and shipped is not None
    digest, ref = shipped
    local = Path(original)
    if local.is_dir() and _digest(pack(local)) == digest:
        return local
    unpack(ray.get(ref), dest)
    return dest


def _run_interruptibly(job: AttemptJob, interrupts: Any) -> dict[str, Any]:
    """``run_attempt``, ended as ``interrupted`` by SIGINT once the eval's flag is set."""
    armed = True

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        nonlocal armed
        if armed:  # the first ends the run; later ones must not cut its cleanup short
            armed = False
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    finished = threading.Event()
    watcher = threading.Thread(target=_watch, args=(interrupts, finished, threading.get_ident()), daemon=True)
    watcher.start()
    try:
        return run_attempt(job)
    except KeyboardInterrupt:  # between the watcher's start and the run's own handling
        return error_row(job, "interrupted before the run began", exit_status="interrupted")
    finally:
        armed = False
        finished.set()
        watcher.join()
        signal.signal(signal.SIGINT, previous)  # the Ray worker process runs other tasks next


def _watch(interrupts: Any, finished: threading.Event, main_thread: int) -> None:
    flag = interrupts.wait.remote()
    while not finished.is_set():
        ready, _ = ray.wait([flag], timeout=0.2)
        if ready:
            # At the main thread itself: a signal at the process may land in one of Ray's
            # threads, and would then not break the run's blocking calls.
            signal.pthread_kill(main_thread, signal.SIGINT)
            return


# --- moving folders: tar bytes -------------------------------------------------------------


def pack(folder: Path) -> bytes:
    """``folder`` as an uncompressed tar: the same bytes for the same files, on any machine."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in [folder, *_walk(folder)]:
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if info.isfile():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def _walk(folder: Path) -> list[Path]:
    """Every file and folder under ``folder``, sorted; symlinks are entries, never followed."""
    found = []
    for parent, dirs, files in os.walk(folder):
        found += [Path(parent) / name for name in (*dirs, *files)]
    return sorted(found)


def unpack(data: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(dest, filter="data")  # no absolute paths, no escapes through ..


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes (ray.init retries an unreachable address for a long time)."""
    host, sep, port = address.rpartition(":")
    if address.startswith("ray://") or not sep or not port.isdigit():
        return  # "auto", a Ray Client address: ray.init says what is wrong itself
    try:
        with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        raise ConfigError(
            f"no Ray cluster answers at {address} ({e.strerror or e}): start one with "
            f"`ray start --head --port {port}` on that machine, or fix --ray-address"
        ) from None

