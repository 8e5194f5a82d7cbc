"""A real two-node Ray cluster on one machine, for tests: a head and a second node.

Ray rewrites ``localhost`` and ``127.0.0.1`` to the machine's network address, so the nodes
use other loopback addresses (DESIGN.md, "This machine"). Each ``ray start`` runs in a
session of its own, and stopping the cluster ends exactly the processes of those sessions
(raylets, GCS, workers): ``ray stop --force`` would end every Ray process on the machine,
another test run's cluster included.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

HEAD_IP = "127.0.0.2"
SECOND_IP = "127.0.0.3"
RAY = Path(sys.executable).parent / "ray"
# No token to pass around on a test machine; ray start and every driver read this.
ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass
class RayCluster:
    address: str  # what `ray start --address` and `ray.init(address=...)` take
    node_ips: tuple[str, ...]
    sessions: list[int]  # the session id of each node's processes

    def processes(self) -> list[int]:
        return [pid for sid in self.sessions for pid in session_pids(sid)]


@contextmanager
def ray_cluster(cpus_per_node: int = 2, start_timeout: float = 120) -> Iterator[RayCluster]:
    """Start a head on HEAD_IP and a second node on SECOND_IP; always stop both."""
    env = {**os.environ, **ENV}
    port = _free_port(HEAD_IP)
    temp = Path(tempfile.mkdtemp(prefix="ray-cluster-"))
    common = ["--num-cpus", str(cpus_per_node), "--object-store-memory", str(200 * 2**20), "--disable-usage-stats"]
    cluster = RayCluster(f"{HEAD_IP}:{port}", (HEAD_IP, SECOND_IP), [])
    try:
        head = ["--head", "--node-ip-address", HEAD_IP, "--port", str(port), "--include-dashboard=false"]
        _ray_start(cluster, [*head, *common, "--temp-dir", str(temp / "head")], env, temp, start_timeout)
        second = ["--address", cluster.address, "--node-ip-address", SECOND_IP]
        _ray_start(cluster, [*second, *common, "--temp-dir", str(temp / "second")], env, temp, start_timeout)
        yield cluster
    finally:
        stop(cluster)
        shutil.rmtree(temp, ignore_errors=True)


def _ray_start(cluster: RayCluster, args: list[str], env: dict[str, str], temp: Path, timeout: float) -> None:
    log = temp / f"ray-start-{len(cluster.sessions)}.log"
    with log.open("wb") as out:  # a file, not a pipe: the daemons it leaves must not hold our end open
        proc = subprocess.Popen([str(RAY), "start", *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
    cluster.sessions.append(proc.pid)  # before waiting: a start that fails half-way is still stopped
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"ray start {' '.join(args)} failed ({code}):\n{tail}")


def stop(cluster: RayCluster, timeout: float = 30) -> None:
    """SIGKILL every process of the cluster's sessions, as ``ray stop --force`` does (raylet
    and GCS take many seconds to drain on SIGTERM, and a test's cluster has nothing to keep).
    """
    deadline = time.monotonic() + timeout
    while pids := cluster.processes():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Ray processes {pids} survived SIGKILL for {timeout:g} s")
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def session_pids(sid: int) -> list[int]:
    """The live processes (not zombies) whose session id is ``sid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
