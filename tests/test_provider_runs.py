"""Whole runs through `lancer run` with real providers, as a user would try them.

The model is a local server speaking the OpenAI or Anthropic protocol, serving the task's
scripted solution as tool calls after a burst of rate limits; lancer reaches it through
OPENAI_BASE_URL / ANTHROPIC_BASE_URL. And a provider shipped as its own package, installed
with pip, used by name.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, ROOT, run_lancer
from tests.fakes.conversation import ANTHROPIC_KEY, OPENAI_KEY
from tests.fakes.llm_server import FakeLLMServer, anthropic_error, openai_error

IC_TASK = EXAMPLES / "invoice-discount"
MANAGER_TASK = EXAMPLES / "manager-date-format"


def write_config(path: Path, **model: Any) -> Path:
    settings = {"retry_initial_wait_s": 0.01, "retry_max_wait_s": 0.05, **model}
    path.write_text(json.dumps({"model": settings}))  # JSON is YAML
    return path


def every_file_text(*dirs: Path) -> str:
    return "".join(p.read_text(errors="replace") for d in dirs for p in d.rglob("*") if p.is_file())


def run_with_server(
    tmp_path: Path, provider: str, task: Path, rate_limits: int, stream: bool, extra_args: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], FakeLLMServer]:
    if provider == "openai":
        errors = [openai_error(429, retry_after=0) for _ in range(rate_limits)]
        spec, key = "openai:gpt-4o", OPENAI_KEY
    else:
        errors = [anthropic_error(429, retry_after=0) for _ in range(rate_limits)]
        spec, key = "anthropic:claude-sonnet-4-5", ANTHROPIC_KEY
    out = tmp_path / "run"
    with FakeLLMServer.from_turns_file(task / "solution.yaml", errors, api_key=key) as server:
        env = {
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": server.openai_base_url,
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "ANTHROPIC_BASE_URL": server.url,
        }
        config = write_config(tmp_path / "config.yaml", stream=stream)
        proc = run_lancer(
            "run", str(task), "--model", spec, "--out", str(out), "--config", str(config), *extra_args, env=env
        )
    result = json.loads((out / "result.json").read_text()) if (out / "result.json").exists() else {}
    return proc, result, server


@pytest.mark.parametrize("stream", [False, True])
def test_openai_run_resolves_the_task_through_rate_limits(tmp_path: Path, stream: bool) -> None:
    proc, result, server = run_with_server(tmp_path, "openai", IC_TASK, rate_limits=3, stream=stream)
    assert proc.returncode == 0, proc.stderr
    assert (result["resolved"], result["exit_status"], result["earned"]) == (True, "submitted", 250.0)
    assert server.errors_served == [429, 429, 429]
    usage = server.usage_sum()
    assert result["input_tokens"] == usage["prompt_tokens"]
    assert result["output_tokens"] == usage["completion_tokens"]
    assert result["cache_read_tokens"] == usage["prompt_tokens_details.cached_tokens"]
    uncached = usage["prompt_tokens"] - usage["prompt_tokens_details.cached_tokens"]
    expected = (
        uncached * 2.50 + usage["prompt_tokens_details.cached_tokens"] * 1.25 + usage["completion_tokens"] * 10.00
    ) / 1e6
    assert result["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert proc.stderr.count("429 tokens: Rate limit reached") == 3
    records = [json.loads(line) for line in (tmp_path / "run" / "trajectory.jsonl").read_text().splitlines()]
    assert records[0]["price_source"] == f"genai-prices {version('genai-prices')} (openai gpt-4o)"
    steps = [r for r in records if r["type"] == "step"]
    retries = [e for e in steps[0]["events"] if e["type"] == "retry"]
    assert [e["attempt"] for e in retries] == [1, 2, 3]
    assert OPENAI_KEY not in every_file_text(tmp_path / "run") + proc.stdout + proc.stderr


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_run_resolves_the_task_with_prompt_caching(tmp_path: Path, stream: bool) -> None:
    proc, result, server = run_with_server(tmp_path, "anthropic", IC_TASK, rate_limits=3, stream=stream)
    assert proc.returncode == 0, proc.stderr
    assert (result["resolved"], result["exit_status"]) == (True, "submitted")
    assert server.errors_served == [429, 429, 429]
    usage = server.usage_sum()
    read, written = usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]
    assert result["input_tokens"] == usage["input_tokens"] + read + written
    assert (result["output_tokens"], result["cache_read_tokens"], result["cache_write_tokens"]) == (
        usage["output_tokens"],
        read,
        written,
    )
    expected = (usage["input_tokens"] * 3.00 + read * 0.30 + written * 3.75 + usage["output_tokens"] * 15.00) / 1e6
    assert result["cost_usd"] == pytest.approx(expected, abs=1e-6)
    for request in server.requests:
        assert request.body["system"][-1]["cache_control"] == {"type": "ephemeral"}
        assert request.body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
        assert request.body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert ANTHROPIC_KEY not in every_file_text(tmp_path / "run") + proc.stdout + proc.stderr


def test_a_manager_task_through_anthropic(tmp_path: Path) -> None:
    proc, result, _ = run_with_server(tmp_path, "anthropic", MANAGER_TASK, rate_limits=0, stream=True)
    assert proc.returncode == 0, proc.stderr
    assert (result["variant"], result["resolved"], result["answer"]) == ("swe_manager", True, {"proposal_id": 2})


def test_a_wrong_key_ends_the_run_with_one_clear_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with FakeLLMServer.from_turns_file(IC_TASK / "solution.yaml", api_key=OPENAI_KEY) as server:
        env = {"OPENAI_API_KEY": "sk-not-the-right-key-000000000000", "OPENAI_BASE_URL": server.openai_base_url}
        proc = run_lancer("run", str(IC_TASK), "--model", "openai:gpt-4o", "--out", str(out), env=env)
    result = json.loads((out / "result.json").read_text())
    assert len(server.requests) == 1
    assert result["exit_status"] == "model_error"
    assert result["detail"].startswith("openai:gpt-4o: 401 invalid_request_error: Incorrect API key provided")
    assert result["detail"].endswith("(check OPENAI_API_KEY)")
    assert "sk-not-the-right-key-000000000000" not in every_file_text(out) + proc.stdout + proc.stderr


def test_the_cost_limit_stops_the_run_before_a_call_that_would_pass_it(tmp_path: Path) -> None:
    # One gpt-4o call may cost 4096 output tokens x $10/M = $0.041 on its own.
    proc, result, server = run_with_server(tmp_path, "openai", IC_TASK, 0, False, ("--cost-limit", "0.03"))
    assert result["exit_status"] == "cost_limit", proc.stderr
    assert server.requests == []
    assert result["cost_usd"] == 0


def test_a_provider_from_a_separately_installed_package(tmp_path: Path) -> None:
    with pytest.raises(PackageNotFoundError):  # this test installs its own copy, and only for itself
        pytest.fail(f"lancer-rules-model {version('lancer-rules-model')} is installed here: pip uninstall it")
    source = shutil.copytree(ROOT / "examples" / "plugin", tmp_path / "plugin")  # the build writes into its source
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(source)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert install.returncode == 0, install.stderr
    rules = ROOT / "examples" / "plugin" / "rules" / "invoice-discount.yaml"
    out = tmp_path / "run"
    proc = run_lancer(
        "run", str(IC_TASK), "--model", f"rules:{rules}", "--out", str(out), env={"PYTHONPATH": str(site)}
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert (result["model"], result["resolved"], result["steps"]) == (f"rules:{rules}", True, 4)
    # Without the package on the path, the name is unknown again: nothing leaked into this Python.
    proc = run_lancer("run", str(IC_TASK), "--model", f"rules:{rules}", "--out", str(tmp_path / "again"))
    assert proc.returncode == 2
    assert "unknown model provider 'rules'" in proc.stderr


def test_base_url_on_the_command_line_wins_over_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with FakeLLMServer.from_turns_file(IC_TASK / "solution.yaml", api_key=OPENAI_KEY) as server:
        env = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}  # nothing listens there
        proc = run_lancer(
            "run", str(IC_TASK), "--model", "openai:gpt-4o", "--out", str(out),
            "--base-url", server.openai_base_url, env=env,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "result.json").read_text())["resolved"] is True


def test_retries_before_a_model_error_are_kept_in_the_trajectory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    errors = [openai_error(500) for _ in range(10)]
    with FakeLLMServer.from_turns_file(IC_TASK / "solution.yaml", errors, api_key=OPENAI_KEY) as server:
        env = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": server.openai_base_url}
        config = write_config(tmp_path / "config.yaml", max_retries=2)
        run_lancer("run", str(IC_TASK), "--model", "openai:gpt-4o", "--out", str(out), "--config", str(config), env=env)
    final = json.loads((out / "trajectory.jsonl").read_text().splitlines()[-1])
    assert final["type"] == "final" and final["exit_status"] == "model_error"
    assert [e["type"] for e in final["events"]] == ["retry", "retry"]
    assert "500" in final["events"][0]["error"]
