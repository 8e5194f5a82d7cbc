"""``--executor ray``: each attempt a Ray task on a Ray cluster (``pip install 'lancer-bench[ray]'``).

A node needs lancer and a Docker engine (for ``--sandbox docker``), nothing else: each task
folder is packed and hashed once here and put in Ray's object store once, and a node
fetches it once into its cache (``lancer.eval.ray_node``); the attempt's run directory
travels back (a tar in the task's return value) to the driver's eval directory, whichever
node ran it. Rows come back as attempts finish. ``node`` in each row is the Ray node's IP
address.

A node that dies mid-attempt (its machine lost, its raylet killed) takes the attempt's
work with it: the attempt runs again on another node, up to ``MAX_RERUNS`` times, and is
counted once, when it finishes; each such loss is said in the eval's progress.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from lancer.core.errors import ConfigError
from lancer.core.tarballs import digest, pack, unpack
from lancer.eval.attempt import AttemptJob, error_row
from lancer.eval.ray_node import AttemptKey, EvalBoard, ShippedFolder, clean_node, run_on_node
from lancer.models.ray_limiter import MAX_WAITERS, RateLimitActor

# Each attempt takes one CPU of the cluster: `ray start --num-cpus N` is how many attempts
# a node runs at once (they wait on the model and the sandbox far more than they compute).
CPUS_PER_ATTEMPT = 1
# How many times one attempt is run again after losing its node, before it is an error.
MAX_RERUNS = 3
_CONNECT_TIMEOUT_S = 5.0
_BOARD_TIMEOUT_S = 10.0
HEAD_RESOURCE = "node:__internal_head__"  # the resource Ray gives its head node alone
# How Ray's NodeDiedError names the node (its message is its only field).
_NODE_IP = re.compile(r"Node IP: ([0-9A-Fa-f.:]+[0-9A-Fa-f])")
# The failures that mean the attempt's node (or its Ray worker) is gone, not that lancer failed.
_LOST = (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError)


class RayExecutor:
    def __init__(self, workers: int, address: str | None = None, model: str | None = None) -> None:
        # ``model`` is not needed here: each node's attempt imports its provider itself.
        self.slots = workers
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            _check_reachable(address)
        # Ray's own lines (connecting, worker logs) would tear the progress display.
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot join the Ray cluster at {address or 'this machine'}: {e}") from None
        # Shared with every attempt: Ctrl-C, and where each runs.
        # On the head node, so that losing any other node leaves it standing.
        self._board = EvalBoard.options(scheduling_strategy=_on_head()).remote()  # type: ignore[attr-defined]
        # The model's rate limit, cluster-wide.
        self._limiter = RateLimitActor.options(max_concurrency=MAX_WAITERS).remote()  # type: ignore[attr-defined]
        _clean_every_node()  # what attempts of a killed eval left on the nodes
        self._running: dict[Any, AttemptJob] = {}  # ObjectRef -> its job
        self._shipped: dict[str, ShippedFolder] = {}  # task folder -> its tar in the object store
        self._reruns: Counter[AttemptKey] = Counter()
        self._notices: list[str] = []
        self._nodes: dict[AttemptKey, str] = {}  # where attempts started, as last heard from the board
        self._asking: Any = None  # the board's answer to come, if asked
        self._interrupted = False

    def submit(self, job: AttemptJob) -> None:
        shipped = self._ship(job.task_folder) if job.task_folder else None
        ref = run_on_node.options(num_cpus=CPUS_PER_ATTEMPT).remote(job, shipped, self._board, self._limiter)
        self._running[ref] = job

    def _ship(self, folder: str) -> ShippedFolder:
        """The folder's tar, packed, hashed and put in the object store once per eval."""
        if folder not in self._shipped:
            data = pack(Path(folder))
            self._shipped[folder] = ShippedFolder(digest(data), ray.put(data))
        return self._shipped[folder]

    def wait(self, timeout: float) -> list[dict[str, Any]]:
        refs = list(self._running)
        if not refs:
            time.sleep(timeout)
            return []
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:  # and whatever else has finished meanwhile
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        rows = [self._collect(ref, self._running.pop(ref)) for ref in ready]
        return [row for row in rows if row is not None]

    def _collect(self, ref: Any, job: AttemptJob) -> dict[str, Any] | None:
        """The attempt's row, its run directory unpacked at ``job.run_dir``; None if it runs again."""
        try:
            row, run_tar = ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # lancer's code raised on the node
            row = error_row(job, f"the attempt failed on node {e.ip}: {type(e.cause).__name__}: {e.cause}")
            return {**row, "node": e.ip}
        except ray.exceptions.RayError as e:  # its worker or node died, its objects were lost ...
            return self._lost(job, e)
        self._nodes.pop((job.task_id, job.attempt), None)
        unpack(run_tar, Path(job.run_dir))
        row["run_dir"] = job.run_dir
        return dict(row)

    def _lost(self, job: AttemptJob, error: ray.exceptions.RayError) -> dict[str, Any] | None:
        key = (job.task_id, job.attempt)
        node = self._lost_on(key, error)
        reason = f"{type(error).__name__}: {next(iter(str(error).strip().splitlines()), '')}"
        if isinstance(error, _LOST) and self._reruns[key] < MAX_RERUNS and not self._interrupted:
            self._reruns[key] += 1
            self._notices.append(f"{job.task_id} #{job.attempt} was lost with {node} ({reason}): running it again")
            self._board.forget.remote(key)
            self.submit(job)
            return None
        # After Ctrl-C a lost attempt is an interrupted one: a resumed eval runs it again.
        status = "interrupted" if self._interrupted else "error"
        return error_row(job, f"the attempt's Ray task failed on {node}: {reason}", exit_status=status)

    def _lost_on(self, key: AttemptKey, error: ray.exceptions.RayError) -> str:
        """The node an attempt was lost with: the one Ray's error names, else where the board
        heard it started."""
        said = _NODE_IP.search(str(error))
        if said:  # a node's death names its IP: no need to wait on a board busy with that death
            self._nodes.pop(key, None)
            return said.group(1)
        # A question already pending may have been asked before this attempt said where it
        # started: its answer lacks the attempt, so ask again until the board knows it.
        deadline = time.monotonic() + _BOARD_TIMEOUT_S
        while key not in self._nodes and (left := deadline - time.monotonic()) > 0:
            self._ask_where(wait_s=left)
            if key not in self._nodes and self._asking is None:
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))  # answered without it
        return self._nodes.pop(key, "its node")

    def placement(self) -> dict[AttemptKey, str]:
        self._ask_where()
        running = {(job.task_id, job.attempt) for job in self._running.values()}
        return {key: node for key, node in self._nodes.items() if key in running}

    def _ask_where(self, wait_s: float = 0.0) -> None:
        """Update where attempts started from the board, waiting for its answer up to
        ``wait_s``: the display never blocks on it (it is slow while Ray counts a node dead)."""
        if self._asking is None:
            self._asking = self._board.where.remote()
        if ray.wait([self._asking], timeout=wait_s)[0]:
            # Added to what was heard before, not in its place: an attempt lost while the board
            # is slow to answer (Ray is busy counting a node dead) is still known by its node.
            with contextlib.suppress(ray.exceptions.RayError):
                self._nodes.update(ray.get(self._asking))
            self._asking = None

    def notices(self) -> list[str]:
        said, self._notices = self._notices, []
        return said

    def interrupt(self) -> None:
        self._interrupted = True
        ray.get(self._board.interrupt.remote())

    def close(self) -> None:
        if not ray.is_initialized():
            return
        try:
            if self._running:
                self.interrupt()
                while self._running:
                    self.wait(1.0)
            ray.kill(self._board)
            ray.kill(self._limiter)
        finally:
            ray.shutdown()


def _on_head() -> NodeAffinitySchedulingStrategy | None:
    """Scheduling on the head node (the cluster's one node that cannot die alone), if found."""
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if node["Alive"] and HEAD_RESOURCE in node.get("Resources", {}):
            return NodeAffinitySchedulingStrategy(node["NodeID"], soft=True)
    return None


def _clean_every_node() -> int:
    nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"]]  # type: ignore[no-untyped-call]
    on = [NodeAffinitySchedulingStrategy(node, soft=False) for node in nodes]
    return sum(ray.get([clean_node.options(scheduling_strategy=where).remote() for where in on]))


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
