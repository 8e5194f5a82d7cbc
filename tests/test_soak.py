"""The soak (scripts/soak.py) at its CI size: both sandboxes, model faults, a fork bomb, a
memory hog, 1 GB of output, a crashing app, a ``kill -9`` of the eval and its resume, and the
Docker engine restarted in the middle; every attempt counted exactly once, nothing left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from lancer.agent.runner import run_task
from lancer.core.config import load_config
from lancer.core.sandbox import close_even_if_interrupted, pid_alive
from lancer.core.tasks import load_task
from lancer.core.trajectory import read_trajectory
from lancer.models import create_model
from lancer.sandbox import SandboxSpec
from tests.conftest import EXAMPLES, ROOT, make_repo


@pytest.mark.timeout(1800)
def test_soak_at_ci_size_loses_nothing_and_leaves_nothing(tmp_path: Path) -> None:
    figures = tmp_path / "soak.json"
    command = [sys.executable, "scripts/soak.py", "--attempts", "8", "--kills", "1", "--hang-rate", "0.05"]
    # The soak stops its evals by itself after --time-limit; SIGTERM (never SIGKILL) if it
    # overran even that, so it still stops its private Docker engine.
    proc = subprocess.Popen(
        [*command, "--json", str(figures), "--time-limit", "1200"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=1500)
    except subprocess.TimeoutExpired:
        proc.terminate()
        stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    report = json.loads(figures.read_text())
    total = report["total"]
    assert total["attempts"] == 16 and total["results_written"] == 16
    for invariant in ("lost", "double_counted", "containers_left", "processes_left", "temp_folders_left"):
        assert total[invariant] == 0, (invariant, report)
    assert total["chromium_left"] == 0
    # The faults really happened: a kill and resume per sandbox, an engine restart, model errors and hangs.
    assert [p["kills"] for p in report["passes"]] == [1, 1]
    assert all(p["eval_runs"] == 2 for p in report["passes"])
    assert total["engine_restarts"] == 1
    assert total["model_errors_served"] > 0 and total["model_hangs_served"] > 0
    # Most attempts resolve despite it all (the engine restart may break the ones it finds running);
    # lancer's own memory stays bounded under 1 GB printed.
    assert sum(p["resolved"] for p in report["passes"]) >= 8, report["passes"]
    assert total["peak_rss_lancer_process_mb"] < 200
    assert "soak: attempts 16, results written 16, lost 0, double-counted 0" in stdout


def test_a_local_sandbox_interrupted_while_it_is_made_leaves_no_temp_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the soak: an eval worker's SIGTERM (its eval killed with -9) raises
    KeyboardInterrupt; arriving while the sandbox made its baseline commit, it left the tree."""
    import lancer.sandbox.local

    def interrupted(repo: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(lancer.sandbox.local, "make_baseline", interrupted)
    repo = make_repo(tmp_path / "task")
    with pytest.raises(KeyboardInterrupt):
        lancer.sandbox.local.LocalSandbox(SandboxSpec(repo_dir=repo))
    assert [p.name for p in tmp_path.iterdir()] == ["task"]


def test_a_sandbox_or_grader_broken_by_an_engine_restart_still_leaves_a_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the soak: when the Docker engine restarted under a run, closing its sandbox
    or grading raised past the runner, so the attempt had no result.json or final record."""
    import lancer.agent.runner
    import lancer.sandbox.local

    task = load_task(EXAMPLES / "invoice-discount")
    config = load_config(None, {})
    really_close = lancer.sandbox.local.LocalSandbox.close

    def close_then_fail(self: lancer.sandbox.local.LocalSandbox) -> None:
        really_close(self)
        raise ConnectionError("('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))")

    def engine_gone(*args: object) -> None:
        raise ConnectionError("the grader's engine is gone")

    monkeypatch.setattr(lancer.sandbox.local.LocalSandbox, "close", close_then_fail)
    monkeypatch.setattr(lancer.agent.runner, "grade", engine_gone)
    out = tmp_path / "run"
    result = run_task(task, create_model("oracle", config.model, task), config, out)
    assert json.loads((out / "result.json").read_text()) == result
    assert result["exit_status"] == "submitted" and not result["resolved"]
    assert result["grade"]["status"] == "error" and "the grader's engine is gone" in result["grade"]["detail"]
    final = read_trajectory(out / "trajectory.jsonl")[-1]
    assert [e["type"] for e in final["events"]] == ["cleanup_error"]
    assert "closing the LocalSandbox failed" in (out / "lancer.log").read_text()


def test_a_sandbox_close_cut_short_by_an_interrupt_is_finished_first(tmp_path: Path) -> None:
    """Found by the soak: an eval worker's SIGTERM (its eval killed with -9) arriving while the
    run closed its docker sandbox cut the close short and left the sandbox's temp tree."""

    class HalfClosed:
        def __init__(self) -> None:
            self.tree = tmp_path / "lancer-repo-x"
            self.tree.mkdir()
            self.calls = 0

        def close(self) -> None:
            self.calls += 1
            if self.calls == 1:
                raise KeyboardInterrupt  # before it removed anything
            self.tree.rmdir()

    part = HalfClosed()
    with pytest.raises(KeyboardInterrupt):
        close_even_if_interrupted(part)
    assert not part.tree.exists() and part.calls == 2


def test_a_zombie_owner_counts_as_gone() -> None:
    """Found by the soak: a killed eval's worker whose exit nobody reaped (a zombie) still
    answered ``kill -0``, so its sandboxes were never pruned and its app's watchdog waited on."""
    proc = subprocess.Popen(["true"])
    stat = Path(f"/proc/{proc.pid}/stat")
    deadline = time.monotonic() + 10
    while ") Z " not in stat.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert not pid_alive(str(proc.pid))
        assert pid_alive(str(os.getpid()))
    finally:
        proc.wait()


def test_a_local_command_interrupted_does_not_run_on(tmp_path: Path) -> None:
    """An interrupt (Ctrl-C, an eval worker's SIGTERM) while the local sandbox runs a command
    (the grader's tests, say) ends the command's whole session too."""
    import lancer.sandbox.local

    box = lancer.sandbox.local.LocalSandbox(SandboxSpec(repo_dir=make_repo(tmp_path / "task")))
    marker = tmp_path / "still-running"
    try:
        timer = threading.Timer(0.5, lambda: signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            box.exec(["sh", "-c", f"(sleep 2; touch {marker}) & sleep 30"], timeout=60)
        time.sleep(2.5)
        assert not marker.exists()
    finally:
        box.close()


def test_a_docker_sandbox_host_tree_left_by_a_dead_lancer_is_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the soak: an eval worker killed while the Docker engine restarted left the
    docker sandbox's host copy of the repo (lancer-repo-*), which nothing could prune."""
    import lancer.sandbox.local
    from lancer.sandbox import create_sandbox

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    box = create_sandbox("docker", SandboxSpec(repo_dir=make_repo(tmp_path / "task"), label="pytest-soak-prune"))
    try:
        [tree] = (tmp_path / "tmp").glob("lancer-repo-*")
        assert (tree / "lancer.pid").read_text() == str(os.getpid())
        assert lancer.sandbox.local.prune() == 0  # its lancer is alive
    finally:
        box.close()
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = tmp_path / "tmp" / "lancer-repo-orphan"
    (orphan / "repo").mkdir(parents=True)
    (orphan / "lancer.pid").write_text(str(dead.pid))
    assert lancer.sandbox.local.prune() == 1 and not orphan.exists()
