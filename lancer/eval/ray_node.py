"""What runs on a Ray node for ``--executor ray``: one attempt, the node's task cache, cleanup.

A task folder reaches a node once per content, not once per attempt: the driver packs and
hashes each folder once and puts the tar in Ray's object store once (``ShippedFolder``);
the first attempt of it on a node fetches and unpacks it into the node's cache
(``<tmp>/lancer-ray-tasks-<node ip>/<sha256>/``) and every later attempt there uses that
copy. Each fetch is one line in the cache's ``fetched.log``.

Each attempt runs in a child process of its Ray task, exactly as the local executor runs
it (``lancer.eval.local``), so it ends the same way: Ctrl-C of the eval sets a flag on the
eval's board (a small actor) that every attempt watches, and the attempt gets SIGINT
(``ray.cancel`` would only raise in the Ray task's own Python code): the run ends as
``interrupted``, writes its outputs and removes its sandbox. When the Ray worker dies (the
driver or the node was killed), the child gets SIGTERM and does the same; what a
``kill -9`` leaves is removed by the next eval on the cluster (``clean_node``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray

from lancer.core.errors import LancerError
from lancer.core.sandbox import pid_alive
from lancer.core.tarballs import pack, unpack
from lancer.eval.attempt import AttemptJob
from lancer.eval.local import LocalExecutor
from lancer.eval.store import WORKER_PID_FILE
from lancer.models.limiter import ADDRESS_ENV, LimiterServer
from lancer.models.ray_limiter import ActorLimiter
from lancer.sandbox import docker, local

# An attempt's folder on its node (its run directory until it travels back).
WORK_PREFIX = "lancer-ray-attempt-"
OWNER_FILE = "ray-worker.pid"
CACHE_PREFIX = "lancer-ray-tasks-"
FETCH_LOG = "fetched.log"  # one line per task folder fetched into a node's cache
# A cached task folder no attempt has used for this long is removed by the next clean_node.
CACHE_KEEP_S = 7 * 24 * 3600.0
_SETUP_GRACE_S = 60.0

AttemptKey = tuple[str, int]  # (task_id, attempt)


@dataclass(frozen=True)
class ShippedFolder:
    """A task folder on its way to the nodes: its tar in Ray's object store, and its hash."""

    digest: str
    tar: Any  # the ObjectRef of the folder's tar bytes (lancer.core.tarballs.pack)


@ray.remote(num_cpus=0)
class EvalBoard:
    """What the driver and every attempt share: the eval's Ctrl-C, and where attempts run."""

    def __init__(self) -> None:
        self._interrupted = asyncio.Event()
        self._nodes: dict[AttemptKey, str] = {}

    async def interrupt(self) -> None:
        self._interrupted.set()

    async def wait_interrupt(self) -> bool:
        await self._interrupted.wait()
        return True

    async def started(self, key: AttemptKey, node: str) -> None:
        self._nodes[key] = node

    async def forget(self, key: AttemptKey) -> None:
        self._nodes.pop(key, None)

    async def where(self) -> dict[AttemptKey, str]:
        return dict(self._nodes)


@ray.remote(max_retries=0)  # a lost attempt is the driver's to run again, never Ray's behind its back
def run_on_node(
    job: AttemptJob, shipped: ShippedFolder | None, board: Any, limiter: Any = None
) -> tuple[dict[str, Any], bytes]:
    """One attempt on whichever node Ray picked: its row, and its run directory as a tar.

    ``limiter``: the eval's ``RateLimitActor``, which the attempt's model calls go through."""
    node = node_ip()
    board.started.remote((job.task_id, job.attempt), node)
    _remove_abandoned_work()
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX))
    (work / OWNER_FILE).write_text(str(os.getpid()))
    try:
        folder = cached_task_folder(shipped, node) if shipped else None
        source = job.task_source if job.task_source and Path(job.task_source).exists() else None
        here = replace(
            job,
            task_folder=str(folder) if folder else None,
            task_source=str(folder) if folder else source,  # what the agent must not see, on this node
            run_dir=str(work / "run"),
        )
        with _rate_limit_through(limiter):
            row = _run_in_child(here, board)
        row["node"] = node
        return row, pack(work / "run")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def node_ip() -> str:
    return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]


def cache_dir(node: str) -> Path:
    """The node's task cache: per node address, as several nodes may share one machine."""
    return Path(tempfile.gettempdir()) / f"{CACHE_PREFIX}{node}"


def cached_task_folder(shipped: ShippedFolder, node: str) -> Path:
    """The task folder in this node's cache, fetched and unpacked by its first attempt here."""
    cache = cache_dir(node)
    folder = cache / shipped.digest
    if not folder.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        # Attempts of one task start together: one fetches, the others wait for its copy.
        with (cache / f".{shipped.digest}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not folder.is_dir():
                partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache))
                unpack(ray.get(shipped.tar), partial)
                partial.rename(folder)  # whole or absent, even if this worker dies half-way
                with (cache / FETCH_LOG).open("a") as log:
                    log.write(f"{shipped.digest} {time.time():.3f} {os.getpid()}\n")
    with contextlib.suppress(OSError):
        os.utime(folder)  # in use: kept by clean_node
    return folder


def _run_in_child(job: AttemptJob, board: Any) -> dict[str, Any]:
    """The attempt in a child process, as the local executor runs it, until done or interrupted.

    The child outlives this Ray worker if it must: when Ray kills the worker (the driver
    died), the child gets SIGTERM, ends its run as ``interrupted`` and removes its sandbox.
    """
    attempt = LocalExecutor(workers=1, model=job.model)
    attempt.submit(job)
    flag = board.wait_interrupt.remote()
    try:
        while not (rows := attempt.wait(timeout=0.2)):
            if ray.wait([flag], timeout=0)[0]:
                if _said_yes(flag):
                    attempt.interrupt()
                else:  # the board was out of reach (a node lost): no Ctrl-C, ask again
                    flag = board.wait_interrupt.remote()
        return rows[0]
    finally:
        attempt.close()


def _said_yes(flag: Any) -> bool:
    try:
        return bool(ray.get(flag))
    except ray.exceptions.RayError:
        return False


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
    until this runs, at the start of the next eval (a resumed one first of all). Cached
    task folders unused for a week go too.
    """
    removed = _remove_abandoned_work() + _remove_stale_cache(cache_dir(node_ip())) + local.prune()
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


def _remove_stale_cache(cache: Path) -> int:
    stale = [p for p in cache.glob("*") if p.is_dir() and _age_s(p) > CACHE_KEEP_S] if cache.is_dir() else []
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return len(stale)


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0
