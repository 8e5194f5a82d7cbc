"""Stuck models are stopped; every run writes lancer.log; a dead local server fails fast;
a run that ends in an error still reports its steps."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import docker

from lancer.agent.runner import run_task
from lancer.core.config import load_config
from lancer.core.tasks import load_task
from lancer.core.trajectory import read_trajectory
from lancer.models import create_model
from tests.conftest import run_lancer
from tests.test_run import IC_TASK, SUBMIT, bash_turn, run, script


def steps_of(out: Path) -> list[dict[str, Any]]:
    return [r for r in read_trajectory(out / "trajectory.jsonl") if r["type"] == "step"]


def test_a_model_repeating_itself_is_told_once_then_stopped_as_stuck(tmp_path: Path) -> None:
    result, out = run(tmp_path, [bash_turn("grep -n discount invoice.py")] * 20 + [SUBMIT], max_steps=20)
    assert (result["exit_status"], result["steps"]) == ("stuck", 5)
    steps = steps_of(out)
    assert [s.get("stuck") for s in steps] == [None, None, None, "warned", "ended"]
    assert read_trajectory(out / "trajectory.jsonl")[-1]["exit_status"] == "stuck"
    assert "repeating the same tool calls" in result["detail"]
    assert result["grade"] is not None  # a stuck run's patch is still graded


def test_two_calls_taking_turns_are_a_loop_too(tmp_path: Path) -> None:
    turns = [bash_turn("cat invoice.py"), bash_turn("ls")] * 10
    result, out = run(tmp_path, turns, max_steps=20, stuck_alternations=3)
    assert (result["exit_status"], result["steps"]) == ("stuck", 7)
    assert [s.get("stuck") for s in steps_of(out)][-2:] == ["warned", "ended"]


def test_the_model_is_told_in_words_and_breaking_the_loop_resets_the_warning(tmp_path: Path) -> None:
    same = bash_turn("echo same")
    turns = [same] * 4 + [bash_turn("echo different")] + [same] * 3 + [SUBMIT]
    result, out = run(tmp_path, turns, max_steps=20)
    assert result["exit_status"] == "submitted"
    assert [s.get("stuck") for s in steps_of(out)].count("warned") == 1


def test_a_repeated_command_whose_output_changes_is_not_stuck(tmp_path: Path) -> None:
    result, out = run(tmp_path, [bash_turn("date +%s%N; echo x >> grows.txt; wc -c < grows.txt")] * 12, max_steps=10)
    assert (result["exit_status"], result["steps"]) == ("step_limit", 10)
    assert all("stuck" not in s for s in steps_of(out))


def test_stuck_thresholds_are_config_and_checked(tmp_path: Path) -> None:
    result, _ = run(tmp_path, [bash_turn("echo same")] * 10, max_steps=10, stuck_repeats=2)
    assert (result["exit_status"], result["steps"]) == ("stuck", 3)
    bad = tmp_path / "bad.yaml"
    bad.write_text("limits: {stuck_repeats: 1}\n")
    proc = run_lancer("run", str(IC_TASK), "--model", "scripted:x.yaml", "--config", str(bad))
    assert proc.returncode == 2 and "limits.stuck_repeats" in proc.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_refused_local_base_url_fails_in_seconds_and_the_log_has_the_traceback_not_the_key(tmp_path: Path) -> None:
    key = "sk-lancer-test-" + "k3y" * 8
    out = tmp_path / "run"
    # A base URL carrying the key (some proxies want it so) puts it into every error text.
    base_url = f"http://127.0.0.1:{_closed_port()}/{key}/v1"
    started = time.monotonic()
    proc = run_lancer(
        "run", str(IC_TASK), "--model", "openai:gpt-4o", "--base-url", base_url, "--out", str(out),
        env={"OPENAI_API_KEY": key},
    )  # fmt: skip
    assert time.monotonic() - started < 30
    result = json.loads((out / "result.json").read_text())
    assert result["exit_status"] == "model_error"
    assert "nothing is listening at http://127.0.0.1:" in result["detail"]
    assert "start the model server there, or fix the base URL" in result["detail"]
    assert "nothing is listening" in proc.stderr
    log = (out / "lancer.log").read_text()
    assert "Traceback (most recent call last)" in log and "ModelCallError" in log
    assert "request failed after" in log and "ConnectError" in log  # each request, with its timing
    assert key not in log and key not in proc.stderr and key not in (out / "result.json").read_text()
    assert "[REDACTED]" in log


def test_verbose_prints_the_log_live(tmp_path: Path) -> None:
    proc = run_lancer(
        "run", str(IC_TASK), "--model", f"scripted:{IC_TASK / 'solution.yaml'}", "--out", str(tmp_path / "run"),
        "--verbose",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "lancer.loop: step 1: model answered in" in proc.stderr
    assert "lancer.loop: bash ran in" in proc.stderr
    log = (tmp_path / "run" / "lancer.log").read_text()
    assert "step 5: model answered in" in log and "run ended: submitted after 5 steps" in log


def test_a_run_ending_in_an_error_reports_its_steps_and_logs_the_traceback(tmp_path: Path) -> None:
    """The docker container vanishes under a running agent (an engine restart, a prune)."""
    turns = [bash_turn("echo one"), bash_turn("sleep 2; echo two"), bash_turn("sleep 30"), SUBMIT]
    config = load_config(None, {"sandbox.kind": "docker"})
    task = load_task(IC_TASK)
    out = tmp_path / "run"
    model = create_model(f"scripted:{script(tmp_path, turns)}")
    results: list[dict[str, Any]] = []
    runner = threading.Thread(target=lambda: results.append(run_task(task, model, config, out)))
    runner.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(steps_of(out) if (out / "trajectory.jsonl").exists() else []) < 2:
        time.sleep(0.1)
    client = docker.from_env()
    mine = client.containers.list(filters={"label": ["lancer.managed=1", f"lancer.pid={os.getpid()}"]})
    for container in mine:
        container.remove(force=True)
    runner.join(120)
    result = results[0]
    assert result["exit_status"] == "error" and result["steps"] == 2, result
    assert "the sandbox container is gone" in result["detail"]
    log = (out / "lancer.log").read_text()
    assert "Traceback (most recent call last)" in log and "SandboxError" in log
