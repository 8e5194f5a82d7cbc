"""The bundled web tasks end to end, as a new user would try them: a scripted model shows
the bug in the browser, fixes it and is graded resolved by the hidden Playwright test;
without the fix the task is not resolved; nothing outlives a run. Also the grader's web
path (harness errors, a broken app) and screenshots reaching real provider SDKs as images."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from lancer.agent.runner import run_task
from lancer.core.config import ModelConfig, RunConfig
from lancer.core.tasks import load_task
from lancer.grader import grade
from lancer.models import create_model
from tests.conftest import EXAMPLES, run_lancer
from tests.fakes.llm_server import FakeLLMServer
from tests.web_helpers import nothing_left_behind

pytestmark = pytest.mark.browser  # needs Chromium: CI installs it, and these never skip

WEB_TASKS = ["web-todo-delete", "web-notes-search"]
SECRET_KEY = "sk-test-browser-0123456789abcdef"


@pytest.fixture(autouse=True)
def _nothing_outlives_the_test() -> Iterator[None]:
    with nothing_left_behind():
        yield


def one_attempt(kind: str) -> RunConfig:
    config = RunConfig()
    config.sandbox.kind = kind  # type: ignore[assignment]
    config.grader.attempts = 1  # an unfixed web test waits out its timeouts: once is enough here
    return config


def lancer_containers() -> list[object]:
    client = docker.from_env()
    try:
        return list(client.containers.list(all=True, filters={"label": "lancer.task=web-todo-delete"}))
    finally:
        client.close()


@pytest.mark.parametrize("name", WEB_TASKS)
def test_a_web_task_is_resolved_by_its_scripted_solution(name: str, sandbox_kind: str, tmp_path: Path) -> None:
    task_dir = EXAMPLES / name
    out = tmp_path / "run"
    proc = run_lancer(
        "run", str(task_dir), "--model", f"scripted:{task_dir / 'solution.yaml'}",
        "--sandbox", sandbox_kind, "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["resolved"] is True and result["earned"] == load_task(task_dir).price
    assert result["grade"]["status"] == "passed"

    # The bug was shown in the browser (and a screenshot saved) before the code was edited.
    steps = [json.loads(line) for line in (out / "trajectory.jsonl").read_text().splitlines()]
    calls = [call["name"] for step in steps for call in step.get("tool_calls", [])]
    assert calls.index("browser") < calls.index("editor")
    shots = sorted((out / "screenshots").glob("*.png"))
    assert shots and all(shot.stat().st_size > 1000 for shot in shots)
    assert (out / "user_tool" / "call-1" / "flow-1.zip").is_file()
    assert b"casefold" in (out / "patch.diff").read_bytes() or b"todos[index]" in (out / "patch.diff").read_bytes()
    if sandbox_kind == "docker":
        assert lancer_containers() == []


@pytest.mark.parametrize("name", WEB_TASKS)
def test_without_the_fix_a_web_task_is_not_resolved(name: str, sandbox_kind: str) -> None:
    verdict = grade(load_task(EXAMPLES / name), b"", one_attempt(sandbox_kind))
    assert verdict.status == "failed" and not verdict.resolved
    assert "failed" in verdict.output_tail  # pytest's own report, for the person reading result.json
    # Per test, from lancer's pytest plugin in the host's test run.
    assert verdict.basis == "junit" and "failed" in {t.outcome for t in verdict.tests}


def test_a_patch_that_breaks_the_app_is_a_failed_fix_with_the_reason() -> None:
    task = load_task(EXAMPLES / "web-notes-search")
    patch = (
        b"--- a/server.py\n+++ b/server.py\n@@ -1,3 +1,4 @@\n+def broken(:\n"
        b' """The notes app: serves static/ and a JSON search API.\n \n     python3 server.py PORT\n'
    )
    verdict = grade(task, patch, one_attempt("local"))
    assert verdict.status == "failed" and verdict.detail == "the app did not start"
    assert "SyntaxError" in verdict.output_tail


def test_a_missing_chromium_is_a_harness_error_not_a_failed_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANCER_CHROMIUM", "/nonexistent/chromium")
    verdict = grade(load_task(EXAMPLES / "web-todo-delete"), b"", one_attempt("local"))
    assert verdict.status == "error" and "exited 3" in verdict.detail
    assert "cannot start Chromium" in verdict.output_tail


SCREENSHOT_TURNS = {
    "turns": [
        {
            "tool_calls": [
                {"name": "browser", "arguments": {"action": "goto", "url": "/"}},
                {"name": "browser", "arguments": {"action": "screenshot"}},
            ]
        },
        {"tool_calls": [{"name": "submit", "arguments": {}}]},
    ]
}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_screenshot_reaches_the_provider_as_an_image_part(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns = tmp_path / "turns.yaml"
    turns.write_text(yaml.safe_dump(SCREENSHOT_TURNS))
    key_env = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
    monkeypatch.setenv(key_env, SECRET_KEY)
    with FakeLLMServer.from_turns_file(turns, api_key=SECRET_KEY) as server:
        base_url = server.openai_base_url if provider == "openai" else server.url
        name = "gpt-4o" if provider == "openai" else "claude-opus-4-6"
        model = create_model(f"{provider}:{name}", ModelConfig(base_url=base_url, max_retries=0))
        config = RunConfig()
        config.grader.attempts = 1
        result = run_task(load_task(EXAMPLES / "web-todo-delete"), model, config, tmp_path / "run")
    assert result["exit_status"] == "submitted", result["detail"]
    second = json.dumps(server.requests[1].body)
    if provider == "openai":
        assert '"type": "image_url"' in second and "data:image/png;base64,iVBORw0KGgo" in second
    else:
        assert (
            '"type": "image"' in second and '"media_type": "image/png"' in second and '"data": "iVBORw0KGgo' in second
        )
    assert (tmp_path / "run" / "screenshots" / "shot-001.png").is_file()
