"""``lancer eval --executor ray`` on a real Ray cluster: a head and a second node on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from lancer.core.sandbox import OWNER_FILE as SANDBOX_OWNER_FILE
from lancer.core.sandbox import pid_alive
from lancer.core.tarballs import digest, pack
from lancer.core.tasks import load_task
from lancer.eval.attempt import AttemptJob
from lancer.eval.ray_node import OWNER_FILE, WORK_PREFIX, EvalBoard, ShippedFolder, run_on_node
from tests.conftest import EXAMPLES, ROOT, lancer_argv, run_lancer
from tests.ray_cluster import ENV, HEAD_IP, SECOND_IP, RayCluster, ray_cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    with ray_cluster(cpus_per_node=2) as started:
        yield started


def lancer_eval(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return run_lancer("eval", *args, env=ENV, timeout=timeout)


def results(out: Path) -> dict[tuple[str, int], dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {(r["task_id"], r["attempt"]): r for r in rows}


SUBMIT = {"tool_calls": [{"name": "submit", "arguments": {"proposal_id": 1}}]}


def unisolated(tmp_path: Path) -> list[str]:
    """--config for attempts whose commands mark files in the test's folder on the host,
    which an isolated (bubblewrap) sandbox cannot see."""
    config = tmp_path / "unisolated.yaml"
    config.write_text("sandbox:\n  isolation: none\n")
    return ["--config", str(config)]


def held_manager_script(tmp_path: Path, submit: dict[str, Any]) -> tuple[Path, Path, Path]:
    """Scripts for manager-date-format whose attempts each record their sandbox as a file
    ``started/<shell pid>``, wait while the file ``hold`` exists, then ``submit``."""
    started, hold, scripts = tmp_path / "started", tmp_path / "hold", tmp_path / "scripts"
    started.mkdir()
    hold.touch()
    scripts.mkdir()
    wait = f"pwd > {started}/$$; while [ -e {hold} ]; do sleep 0.2; done"
    turns = [{"tool_calls": [{"name": "bash", "arguments": {"command": wait, "timeout": 600}}]}, submit]
    (scripts / "manager-date-format.yaml").write_text(json.dumps({"turns": turns}))
    return scripts, started, hold


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[Any] | None, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        assert proc is None or proc.poll() is None, "the eval ended first"
        time.sleep(0.3)


def attempt_owners() -> list[str]:
    """The Ray worker pids of the attempts' work folders on this machine."""
    owners = Path(tempfile.gettempdir()).glob(f"{WORK_PREFIX}*/{OWNER_FILE}")
    return [f.read_text().strip() for f in owners if f.is_file()]


def leftovers(cluster: RayCluster) -> list[Path]:
    """Local sandboxes of the cluster's processes, and attempts' work folders, still on disk."""
    ours = {str(pid) for pid in cluster.processes()}
    tmp = Path(tempfile.gettempdir())
    owned = [(p, p / SANDBOX_OWNER_FILE) for p in tmp.glob("lancer-*")]
    sandboxes = [p for p, owner in owned if owner.is_file() and owner.read_text() in ours]
    return sandboxes + list(tmp.glob(f"{WORK_PREFIX}*"))


def test_an_eval_on_two_ray_nodes_matches_the_local_executor(cluster: RayCluster, tmp_path: Path) -> None:
    tasks = str(EXAMPLES)
    on_ray, local = tmp_path / "ray", tmp_path / "local"
    common = ["--model", "oracle", "--workers", "4"]
    proc = lancer_eval(tasks, *common, "--executor", "ray", "--ray-address", cluster.address, "--out", str(on_ray))
    assert proc.returncode == 0, proc.stderr
    proc_local = lancer_eval(tasks, *common, "--out", str(local))
    assert proc_local.returncode == 0, proc_local.stderr

    ray_rows, local_rows = results(on_ray), results(local)
    verdict = ("resolved", "earned", "exit_status", "grade_status", "steps", "price", "run_dir")
    assert {k: [r[f] for f in verdict] for k, r in ray_rows.items()} == {
        k: [r[f] for f in verdict] for k, r in local_rows.items()
    }
    assert len(ray_rows) == len(list(EXAMPLES.glob("*/task.yaml"))) and all(r["resolved"] for r in ray_rows.values())
    # 4 attempts ran at once on 2 CPUs a node, so on both nodes, and each row names its node.
    assert {r["node"] for r in ray_rows.values()} == {HEAD_IP, SECOND_IP}
    # Every run directory came back to the driver's eval directory, whichever node ran it.
    for (task_id, attempt), row in ray_rows.items():
        run_dir = on_ray / row["run_dir"]
        result = json.loads((run_dir / "result.json").read_text())
        assert (result["task_id"], result["resolved"], result["steps"]) == (task_id, True, row["steps"])
        local_dir = local / local_rows[(task_id, attempt)]["run_dir"]
        assert (run_dir / "patch.diff").read_bytes() == (local_dir / "patch.diff").read_bytes()
    ray_summary = json.loads((on_ray / "summary.json").read_text())["overall"]
    local_summary = json.loads((local / "summary.json").read_text())["overall"]
    timing = "mean_time_s"  # how long the attempts took is the machine's, not the eval's figure
    assert {k: v for k, v in ray_summary.items() if k != timing} == {
        k: v for k, v in local_summary.items() if k != timing
    }
    assert ray_summary["earned"] == ray_summary["possible"] == sum(r["price"] for r in ray_rows.values())
    assert "on 127.0.0.3" in proc.stderr
    done_by_node = re.search(r"attempts done by node: 127\.0\.0\.2 (\d+), 127\.0\.0\.3 (\d+)", proc.stderr)
    assert done_by_node and sum(map(int, done_by_node.groups())) == len(ray_rows), proc.stderr
    assert leftovers(cluster) == []


def test_a_node_without_the_task_folder_runs_the_shipped_copy(
    cluster: RayCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = load_task(EXAMPLES / "invoice-discount")
    elsewhere = "/nonexistent/driver/invoice-discount"  # the driver's path, absent on this node
    job = AttemptJob(
        task_id=task.id,
        attempt=1,
        task=task.model_dump(mode="json"),
        task_folder=elsewhere,
        task_source=elsewhere,
        task_set=None,
        model="oracle",
        config={},
        run_dir=str(tmp_path / "run"),
    )
    tar = pack(EXAMPLES / "invoice-discount")
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        row, run_tar = ray.get(run_on_node.remote(job, ShippedFolder(digest(tar), ray.put(tar)), EvalBoard.remote()))
    finally:
        ray.shutdown()
    assert (row["resolved"], row["exit_status"]) == (True, "submitted"), row
    assert row["node"] in (HEAD_IP, SECOND_IP)
    assert b"trajectory.jsonl" in run_tar and b"result.json" in run_tar


def test_ctrl_c_ends_the_attempts_on_the_cluster_as_interrupted(cluster: RayCluster, tmp_path: Path) -> None:
    started = tmp_path / "started"
    started.mkdir()
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    slow = {"command": f"touch {started}/$$ && sleep 300", "timeout": 600}
    (scripts / "invoice-discount.yaml").write_text(
        json.dumps({"turns": [{"tool_calls": [{"name": "bash", "arguments": slow}]}]})
    )
    out = tmp_path / "eval"
    argv = lancer_argv(
        "eval", str(EXAMPLES / "invoice-discount"), "--model", f"scripted:{scripts}", "--attempts", "3",
        "--workers", "3", "--executor", "ray", "--ray-address", cluster.address, "--out", str(out),
        *unisolated(tmp_path),
    )  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **ENV}, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(list(started.iterdir())) == 3, proc)  # every attempt is inside its `sleep`
        interrupted_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert time.monotonic() - interrupted_at < 60  # not the 300 s of the sleeps
    assert "interrupted: run the same command with --out" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert (out / "results.jsonl").read_text() == ""  # interrupted attempts run again on resume
    for attempt in (1, 2, 3):  # each came back with its outputs written
        run_dir = out / "runs" / "invoice-discount" / str(attempt)
        assert json.loads((run_dir / "result.json").read_text())["exit_status"] == "interrupted"
        final = json.loads((run_dir / "trajectory.jsonl").read_text().splitlines()[-1])
        assert final["type"] == "final" and final["exit_status"] == "interrupted"
    for shell in started.iterdir():  # each attempt's shell (named by its pid) and its sleep are gone
        assert not Path(f"/proc/{shell.name}").exists() or " Z " in Path(f"/proc/{shell.name}/stat").read_text()
    assert leftovers(cluster) == []


def test_a_killed_eval_continues_on_the_cluster_and_the_nodes_are_cleaned(cluster: RayCluster, tmp_path: Path) -> None:
    scripts, started, hold = held_manager_script(tmp_path, SUBMIT)
    out = tmp_path / "eval"
    argv = lancer_argv(
        "eval", str(EXAMPLES / "manager-date-format"), "--model", f"scripted:{scripts}", "--attempts", "2",
        "--workers", "2", "--executor", "ray", "--ray-address", cluster.address, "--out", str(out),
        *unisolated(tmp_path),
    )  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **ENV}, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(list(started.iterdir())) == 2, proc)
    finally:
        proc.kill()  # kill -9 of the eval: Ray kills its attempts with it
        proc.wait()
    sandboxes = [Path(f.read_text().strip()).parent for f in started.iterdir()]
    wait_for(lambda: not any(pid_alive(pid) for pid in attempt_owners()), None, 60)  # Ray killed them
    hold.unlink()

    again = subprocess.run(argv, cwd=ROOT, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted((r["task_id"], r["attempt"]) for r in rows) == [("manager-date-format", a) for a in (1, 2)]
    assert all(r["exit_status"] == "submitted" for r in rows)
    assert [p for p in sandboxes if p.exists()] == []  # the killed attempts' sandboxes were removed
    assert leftovers(cluster) == []


def test_an_address_where_no_cluster_answers_is_one_line_in_seconds(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = lancer_eval(
        str(EXAMPLES / "manager-date-format"), "--model", "oracle", "--executor", "ray",
        "--ray-address", f"{HEAD_IP}:1", "--out", str(tmp_path / "eval"), timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"lancer: error: no Ray cluster answers at {HEAD_IP}:1 (Connection refused)")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 30
