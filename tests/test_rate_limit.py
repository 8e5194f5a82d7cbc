"""One rate limit per model API, shared by every attempt of an eval: --max-connections, and a
429's Retry-After that every worker waits out. The openai SDK against tests/fakes/llm_server.py."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from lancer.core.config import ModelConfig
from lancer.core.model import Message
from lancer.models.limiter import LimiterServer, Limits, LocalLimiter, RemoteLimiter
from lancer.models.openai import OpenAIModel
from lancer.models.scripted import ScriptedTurn
from tests.conftest import EXAMPLES, run_lancer
from tests.fakes.llm_server import FakeLLMServer

MANAGER_TASK = EXAMPLES / "manager-date-format"


def bash(command: str) -> ScriptedTurn:
    return ScriptedTurn.model_validate({"tool_calls": [{"name": "bash", "arguments": {"command": command}}]})


def pick(proposal: int) -> ScriptedTurn:
    return ScriptedTurn.model_validate({"tool_calls": [{"name": "submit", "arguments": {"proposal_id": proposal}}]})


def manager_tasks(root: Path, count: int) -> Path:
    """``count`` copies of the bundled manager task; every third is titled WRONG (its model picks badly)."""
    for i in range(1, count + 1):
        dest = root / f"m{i}"
        shutil.copytree(MANAGER_TASK, dest, ignore=shutil.ignore_patterns("solution.yaml"))
        data = yaml.safe_load((dest / "task.yaml").read_text())
        title = f"WRONG {data['title']}" if i % 3 == 0 else data["title"]
        (dest / "task.yaml").write_text(yaml.safe_dump({**data, "id": f"m{i}", "title": title}))
    return root


def serve(**options: Any) -> FakeLLMServer:
    """Per conversation: two cheap commands, then proposal 2 (1 for tasks titled WRONG)."""
    right = [bash("echo look"), bash("ls"), pick(2)]
    wrong = [bash("echo look"), bash("ls"), pick(1)]
    return FakeLLMServer(right, routes={"WRONG": wrong, "": right}, **options)


def lancer_eval(tasks: Path, out: Path, server: FakeLLMServer, *options: str) -> dict[str, Any]:
    env = {"OPENAI_BASE_URL": server.openai_base_url, "OPENAI_API_KEY": "sk-test"}
    argv = ["eval", str(tasks), "--model", "openai:gpt-4o", "--out", str(out), *options]
    proc = run_lancer(*argv, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "summary.json").read_text())["overall"]  # type: ignore[no-any-return]


def figures(overall: dict[str, Any]) -> dict[str, Any]:
    return {k: overall[k] for k in ("attempts", "graded", "resolved", "errors", "pass_at", "earned", "earned_at_k")}


@pytest.mark.timeout(900)  # a 1-worker run of 32 attempts, on a machine other test runs load
def test_32_workers_never_send_more_than_max_connections(tmp_path: Path) -> None:
    tasks = manager_tasks(tmp_path / "tasks", 8)
    with serve(delay_s=0.3, max_concurrent=4, retry_after_s=1) as server:
        many = lancer_eval(
            tasks, tmp_path / "32", server, "--attempts", "4", "--workers", "32", "--max-connections", "4"
        )
        assert server.peak_in_flight <= 4 and server.rate_limited_at == []
        assert len(server.served) == 32 * 3  # every turn of every attempt, none retried
    with serve(delay_s=0.05) as server:
        one = lancer_eval(tasks, tmp_path / "1", server, "--attempts", "4", "--workers", "1")
    assert many["errors"] == 0 and many["attempts"] == 32
    assert figures(many) == figures(one)
    assert (many["resolved"], many["earned"]) == (24, 3000)  # m3 and m6 pick the wrong proposal


def test_a_retry_after_makes_every_worker_wait(tmp_path: Path) -> None:
    tasks = manager_tasks(tmp_path / "tasks", 4)
    retry_after = 3.0
    with serve(delay_s=0.3, throttle_request=12, retry_after_s=retry_after) as server:
        overall = lancer_eval(tasks, tmp_path / "eval", server, "--attempts", "2", "--workers", "8")
    assert overall["errors"] == 0 and overall["resolved"] == 6
    (throttled,) = server.rate_limited_at
    # Requests already on their way when the 429 was answered may still arrive just after it;
    # then none until Retry-After has passed, from any worker.
    quiet = [t - throttled for t in server.request_times if throttled + 0.5 < t < throttled + retry_after - 0.1]
    assert quiet == [], f"requests {quiet} s after the 429"
    assert any(t > throttled + retry_after - 0.1 for t in server.request_times)
    # The other attempts' steps say they waited for the rate limit, apart from the model.
    steps = [json.loads(line) for f in (tmp_path / "eval").glob("runs/*/*/trajectory.jsonl") for line in f.open()]
    waits = [s["limiter_wait_s"] for s in steps if s.get("type") == "step"]
    assert sum(w > 1.0 for w in waits) >= 2
    finals = [s for s in steps if s.get("type") == "final"]
    assert sum(f["limiter_wait_s"] for f in finals) >= sum(waits) - 0.01


def test_the_limiter_server_gives_back_the_slot_of_a_client_that_went_away() -> None:
    server = LimiterServer()
    try:
        remote = RemoteLimiter(server.address.removeprefix("unix:"))
        one = Limits(max_connections=1)
        slot = remote.acquire("api", one, 10)
        slot._conn.close()  # type: ignore[attr-defined]  # as a process killed mid-request
        again = remote.acquire("api", one, 10)  # would block for ever if the slot were still held
        again.release(10)
    finally:
        server.close()


def test_requests_and_tokens_per_minute_are_counted_in_a_sliding_minute() -> None:
    limiter = LocalLimiter()
    rpm = Limits(requests_per_minute=2)
    for _ in range(2):
        limiter.acquire("api", rpm, 0).release(0)
    state = limiter._endpoints["api"]
    assert state.wait_needed(state.requests[0] + 1, 0) == pytest.approx(59, abs=0.01)
    assert state.wait_needed(state.requests[0] + 60.5, 0) == 0
    tpm = Limits(tokens_per_minute=1000)
    limiter.acquire("tok", tpm, 800).release(900)  # it took more than estimated
    tokens = limiter._endpoints["tok"]
    assert tokens.wait_needed(tokens.tokens[0][0], 150) > 59  # 900 used + 150 > 1000
    assert tokens.wait_needed(tokens.tokens[0][0], 50) == 0


def test_a_run_records_limiter_waits_apart_from_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with serve(delay_s=0.0) as server:
        model = OpenAIModel("gpt-4o", ModelConfig(max_connections=1, base_url=server.openai_base_url))
        limiter, limits = model.limiter
        held = limiter.acquire(model.endpoint, limits, 0)  # another run's request in flight
        threading.Timer(0.5, held.release, args=(0,)).start()
        response = model.query([Message("system", "s"), Message("user", "task")], [])
    assert response.tool_calls[0].name == "bash"
    assert response.limiter_wait_s >= 0.4


@pytest.mark.timeout(900)
def test_the_limit_holds_across_two_ray_nodes(tmp_path: Path) -> None:
    from tests.ray_cluster import ENV, ray_cluster

    tasks = manager_tasks(tmp_path / "tasks", 4)
    with serve(delay_s=0.3, max_concurrent=2, retry_after_s=1) as server:
        # The nodes were started without the eval's environment: the base URL travels in the config.
        options = ["--attempts", "2", "--workers", "4", "--max-connections", "2", "--base-url", server.openai_base_url]
        with ray_cluster(cpus_per_node=2) as cluster:
            argv = ["eval", str(tasks), "--model", "openai:gpt-4o", "--out", str(tmp_path / "ray"), *options]
            proc = run_lancer(*argv, "--executor", "ray", "--ray-address", cluster.address, env=ENV, timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert server.peak_in_flight <= 2 and server.rate_limited_at == []
    on_ray = json.loads((tmp_path / "ray" / "summary.json").read_text())["overall"]
    nodes = {json.loads(line)["node"] for line in (tmp_path / "ray" / "results.jsonl").read_text().splitlines()}
    assert len(nodes) == 2  # both nodes ran attempts
    with serve(delay_s=0.05) as server:
        one = lancer_eval(tasks, tmp_path / "1", server, "--attempts", "2", "--workers", "1")
    assert on_ray["errors"] == 0 and figures(on_ray) == figures(one)
