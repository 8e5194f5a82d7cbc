"""``--executor ray``: each attempt a Ray task on a Ray cluster (``pip install 'lancer-bench[ray]'``).

A node needs lancer and a Docker engine (for ``--sandbox docker``), nothing else: the task
folder travels with the job (a tar through Ray's object store, put once per task), and the
attempt's run directory travels back (a tar in the task's return value), to the driver's
eval directory, whichever node ran it. A node that already has the same task folder at the
same path (the driver's machine, a shared file system) uses it in place, so the local
sandbox hides it from the agent as in a local eval. ``node`` in each row is the Ray node's
IP address.

Each attempt runs in a child process of its Ray task, exactly as the local executor runs
it (``lancer.eval.local``), so it ends the same way: Ctrl-C of the eval sets a flag (a small
actor) that every attempt watches, and the attempt gets SIGINT (``ray.cancel`` would only
raise in the Ray task's own Python code): the run ends as ``interrupted``, writes its
outputs and removes its sandbox. When the driver dies (kill -9), Ray kills its tasks and
their children at once, with no time to clean up: the next eval on the cluster first
removes what they left on every node (``clean_node``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import shutil
import signal
import socket
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from lancer.core.errors import ConfigError, LancerError
from lancer.core.sandbox import pid_alive
from lancer.eval.attempt import AttemptJob, error_row
from lancer.eval.local import LocalExecutor
from lancer.eval.store import WORKER_PID_FILE
from lancer.models.limiter import ADDRESS_ENV, LimiterServer
from lancer.models.ray_limiter import MAX_WAITERS, ActorLimiter, RateLimitActor
from lancer.sandbox import docker, local

# Each attempt takes one CPU of the cluster: `ray start --num-cpus N` is how many attempts
# a node runs at once (they wait on the model and the sandbox far more than they compute).
CPUS_PER_ATTEMPT = 1
# An attempt's folder on its node (the task folder if shipped, the run directory).
WORK_PREFIX = "lancer-ray-attempt-"
OWNER_FILE = "ray-worker.pid"
_CONNECT_TIMEOUT_S = 5.0
_SETUP_GRACE_S = 60.0


class RayExecutor:
    def __init__(self, workers: int, address: str | None = None) -> None:
        self.slots = workers
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            _check_reachable(address)
        # Ray's own lines (connecting, worker logs) would tear the progress display.
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot join the Ray cluster at {address or 'this machine'}: {e}") from None
        self._interrupts = Interrupts.remote()  # type: ignore[attr-defined]
        # The model's rate limit, cluster-wide.
        self._limiter = RateLimitActor.options(max_concurrency=MAX_WAITERS).remote()  # type: ignore[attr-defined]
        _clean_every_node()  # what attempts of a killed eval left on the nodes
        self._running: dict[Any, AttemptJob] = {}  # ObjectRef -> its job
        self._task_folders: dict[str, tuple[str, Any]] = {}  # folder -> (digest, ObjectRef of its tar)

    def submit(self, job: AttemptJob) -> None:
        shipped = self._ship(job.task_folder) if job.task_folder else None
        ref = run_on_node.options(num_cpus=CPUS_PER_ATTEMPT).remote(job, shipped, self._interrupts, self._limiter)
        self._running[ref] = job

    def _ship(self, folder: str) -> tuple[str, Any]:
        if folder not in self._task_folders:
            data = pack(Path(folder))
            self._task_folders[folder] = (digest(data), ray.put(data))
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
        except ray.exceptions.RayTaskError as e:  # lancer's code raised on the node
            row = error_row(job, f"the attempt failed on node {e.ip}: {type(e.cause).__name__}: {e.cause}")
            return {**row, "node": e.ip}
        except ray.exceptions.RayError as e:  # its worker or node died, its objects were lost ...
            first_line = next(iter(str(e).strip().splitlines()), "")
            return error_row(job, f"the attempt's Ray task failed: {type(e).__name__}: {first_line}")
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
            ray.kill(self._limiter)
        finally:
            ray.shutdown()


def _clean_every_node() -> int:
    nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"]]  # type: ignore[no-untyped-call]
    on = [NodeAffinitySchedulingStrategy(node, soft=False) for node in nodes]
    return sum(ray.get([clean_node.options(scheduling_strategy=where).remote() for where in on]))


@ray.remote(num_cpus=0)
class Interrupts:
    """The eval's Ctrl-C, as seen by every attempt on every node."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    async def set(self) -> None:
        self._event.set()

    async def wait(self) -> bool:
        await self._event.wait()
        return True


@ray.remote(max_retries=0)  # a lost attempt is an error row, never run twice behind the driver's back
def run_on_node(
    job: AttemptJob, shipped: tuple[str, Any] | None, interrupts: Any, limiter: Any = None
) -> tuple[dict[str, Any], bytes]:
    """One attempt on whichever node Ray picked: its row, and its run directory as a tar.

    ``limiter``: the eval's ``RateLimitActor``, which the attempt's model calls go through."""
    _remove_abandoned_work()
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX))
    (work / OWNER_FILE).write_text(str(os.getpid()))
    try:
        folder = _task_folder_here(job.task_folder, shipped, work / "task") if job.task_folder else None
        source = job.task_source if job.task_source and Path(job.task_source).exists() else None
        here = replace(
            job,
            task_folder=str(folder) if folder else None,
            task_source=str(folder) if folder else source,  # what the agent must not see, on this node
            run_dir=str(work / "run"),
        )
        with _rate_limit_through(limiter):
            row = _run_in_child(here, interrupts)
        row["node"] = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        return row, pack(work / "run")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _task_folder_here(original: str | None, shipped: tuple[str, Any] | None, dest: Path) -> Path:
    """The node's own copy of the task folder when it is the same, else the shipped one."""
    assert original is not None and shipped is not None
    shipped_digest, ref = shipped
    same_path = Path(original)
    if same_path.is_dir() and digest(pack(same_path)) == shipped_digest:
        return same_path
    unpack(ray.get(ref), dest)
    return dest


def _run_in_child(job: AttemptJob, interrupts: Any) -> dict[str, Any]:
    """The attempt in a child process, as the local executor runs it, until done or interrupted.

    The child outlives this Ray worker if it must: when Ray kills the worker (the driver
    died), the child gets SIGTERM, ends its run as ``interrupted`` and removes its sandbox.
    """
    attempt = LocalExecutor(workers=1)
    # Ray blocks SIGINT in its workers, and a child inherits that: unblocked for the start,
    # so that the interrupt below reaches the run.
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        attempt.submit(job)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    flag = interrupts.wait.remote()
    try:
        while not (rows := attempt.wait(timeout=0.2)):
            if ray.wait([flag], timeout=0)[0]:
                attempt.interrupt()
        return rows[0]
    finally:
        attempt.close()


@contextlib.contextmanager
def _rate_limit_through(actor: Any) -> Iterator[None]:
    """The attempt's process reaches the cluster's rate limit through a server on this node."""
    if actor is None:
        yield
        return
    server = LimiterServer(ActorLimiter(actor))
    os.environ[ADDRESS_ENV] = server.address  # a Ray worker runs one task at a time
    try:
        yield
    finally:
        del os.environ[ADDRESS_ENV]
        server.close()


@ray.remote(num_cpus=0)
def clean_node() -> int:
    """Remove what attempts killed with their Ray worker left on this node; how many things.

    When a driver dies (kill -9), Ray kills its tasks' workers and their child processes
    with them, so those attempts cannot clean up: their sandboxes and work folders stay
    until this runs, at the start of the next eval (a resumed one first of all).
    """
    removed = _remove_abandoned_work() + local.prune()
    with contextlib.suppress(LancerError):  # no Docker engine on this node: no containers either
        removed += docker.prune()
    return removed


def _remove_abandoned_work() -> int:
    removed = 0
    for work in Path(tempfile.gettempdir()).glob(f"{WORK_PREFIX}*"):
        pids = [f.read_text().strip() for f in (work / OWNER_FILE, work / "run" / WORKER_PID_FILE) if f.is_file()]
        # No pid yet: one being set up, unless it has been so for long (its worker was killed first).
        if not any(pid_alive(pid) for pid in pids) and (pids or _age_s(work) > _SETUP_GRACE_S):
            shutil.rmtree(work, ignore_errors=True)
            removed += 1
    return removed


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


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


def digest(data: bytes) -> str:
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
