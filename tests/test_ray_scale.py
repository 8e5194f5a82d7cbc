"""``lancer eval --executor ray`` losing a node mid-eval, on a real two-node Ray cluster on loopback.

The cluster is this test's own: the second node is killed (kill -9 of every process that
node's ``ray start`` left: its raylet and its Ray workers), as a machine that vanishes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import uuid
from contextlib import suppress
from pathlib import Path

from lancer.core.tarballs import digest, pack
from lancer.eval.ray_node import FETCH_LOG, cache_dir
from tests.conftest import EXAMPLES, ROOT, lancer_argv
from tests.ray_cluster import ENV, HEAD_IP, SECOND_IP, RayCluster, ray_cluster, session_pids
from tests.test_ray_executor import held_manager_script, unisolated, wait_for

ATTEMPTS = 6


def session_of_ancestor(pid: int, sessions: list[int]) -> int | None:
    """Which of ``sessions`` holds ``pid`` or one of its ancestors (an attempt's shell runs
    in a session of its own, below the Ray worker of its node)."""
    while pid > 1:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        if int(fields[3]) in sessions:
            return int(fields[3])
        pid = int(fields[1])
    return None


def kill_node(cluster: RayCluster, index: int) -> None:
    while pids := session_pids(cluster.sessions[index]):
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_node_killed_mid_eval_has_its_attempts_rerun_on_the_other_node_and_counted_once(tmp_path: Path) -> None:
    task = tmp_path / "manager-date-format"
    shutil.copytree(EXAMPLES / "manager-date-format", task)
    (task / "nonce.txt").write_text(uuid.uuid4().hex)  # new content: no node has it cached yet
    task_digest = digest(pack(task))
    submit = {"tool_calls": [{"name": "submit", "arguments": {"proposal_id": 2}}]}  # the right one
    scripts, started, hold = held_manager_script(tmp_path, submit)
    out, log = tmp_path / "eval", tmp_path / "eval.stderr"

    with ray_cluster(cpus_per_node=2) as cluster, log.open("w") as stderr:
        argv = lancer_argv(
            "eval", str(task), "--model", f"scripted:{scripts}", "--attempts", str(ATTEMPTS), "--workers", "4",
            "--executor", "ray", "--ray-address", cluster.address, "--out", str(out), *unisolated(tmp_path),
        )  # fmt: skip
        proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **ENV}, stderr=stderr, stdout=subprocess.DEVNULL)
        try:
            # Four attempts in flight on 2 CPUs a node: two on each node, all inside their wait.
            wait_for(lambda: len(list(started.iterdir())) == 4, proc)
            second = cluster.sessions[1]
            on_second = [m for m in started.iterdir() if session_of_ancestor(int(m.name), cluster.sessions) == second]
            assert len(on_second) == 2
            killed_sandboxes = [Path(m.read_text().strip()) for m in on_second]
            kill_node(cluster, 1)
            # The driver learns the node is gone (Ray's health checks) and says so per attempt.
            wait_for(lambda: len(re.findall(r"was lost with", log.read_text())) >= 2, proc, timeout=240)
            hold.unlink()
            assert proc.wait(timeout=300) == 0, log.read_text()
        except AssertionError as e:
            raise AssertionError(f"{e}; the eval's stderr:\n{log.read_text()[-5000:]}") from None
        finally:
            if proc.poll() is None:
                proc.kill()
        stderr_text = log.read_text()
        # The killed attempts ended on their own (their Ray worker's death reached them).
        wait_for(lambda: not any(p.exists() for p in killed_sandboxes), None, 60)

    # Both attempts on the killed node, said lost with it. (Ray may also hand a rerun to the
    # dead node before every node has heard of its death: that one is lost and run again too.)
    lost = set(re.findall(rf"manager-date-format #(\d+) was lost with {re.escape(SECOND_IP)} \(", stderr_text))
    assert len(lost) >= 2, stderr_text
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    # Every attempt exactly once, the two lost ones included, each finished on the head.
    assert sorted(r["attempt"] for r in rows) == list(range(1, ATTEMPTS + 1))
    assert all((r["exit_status"], r["resolved"], r["node"]) == ("submitted", True, HEAD_IP) for r in rows), rows
    for attempt in lost:
        run_dir = out / "runs" / "manager-date-format" / attempt
        assert json.loads((run_dir / "result.json").read_text())["resolved"] is True
    overall = json.loads((out / "summary.json").read_text())["overall"]
    assert (overall["attempts"], overall["graded"], overall["resolved"], overall["errors"]) == (
        ATTEMPTS,
        ATTEMPTS,
        ATTEMPTS,
        0,
    )
    assert overall["pass_at"]["1"] == 1.0 and overall["not_run"] == 0

    # The task folder went to each node once, not once per attempt.
    for node in (HEAD_IP, SECOND_IP):
        fetches = (cache_dir(node) / FETCH_LOG).read_text().splitlines()
        assert len([line for line in fetches if line.startswith(task_digest)]) == 1, node
