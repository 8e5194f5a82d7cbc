"""openai:MODEL through the real openai SDK against a local server speaking Chat Completions."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from lancer.core.errors import ConfigError, ModelError
from lancer.models import create_model
from lancer.models.api import ApiModel
from lancer.models.openai import parse_arguments
from lancer.models.retry import ContextOverflowError, ModelCallError
from tests.fakes.conversation import OPENAI_KEY, THREE_TURNS, TOOLS, answer, fast_config, play, start, tiny_png, turn
from tests.fakes.llm_server import ApiError, FakeLLMServer, Item, openai_error


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def model_for(server: FakeLLMServer, spec: str = "openai:gpt-4o", **config: object) -> ApiModel:
    model = create_model(spec, fast_config(base_url=server.openai_base_url, **config))
    assert isinstance(model, ApiModel)
    return model


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_round_trip(stream: bool) -> None:
    script = [turn("Looking.", ("bash", {"command": "grep -rn total ."})), turn("Done.", ("submit", {}))]
    with FakeLLMServer(script, api_key=OPENAI_KEY) as server:
        model = model_for(server, stream=stream)
        messages = start()
        first = model.query(messages, TOOLS)
        assert first.content == "Looking."
        assert [(c.name, c.arguments) for c in first.tool_calls] == [("bash", {"command": "grep -rn total ."})]
        answer(messages, first, ["invoice.py:9:def total("])
        second = model.query(messages, TOOLS)
        assert [c.name for c in second.tool_calls] == ["submit"]

    sent = server.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent.body["model"] == "gpt-4o"
    assert sent.body["max_completion_tokens"] == 4096
    assert bool(sent.body.get("stream")) is stream
    if stream:
        assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["tools"][0] == {
        "type": "function",
        "function": {"name": "bash", "description": TOOLS[0].description, "parameters": TOOLS[0].parameters},
    }
    roles = [m["role"] for m in sent.body["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    call = sent.body["messages"][2]["tool_calls"][0]
    assert call["function"] == {"name": "bash", "arguments": json.dumps({"command": "grep -rn total ."})}
    assert sent.body["messages"][3] == {
        "role": "tool",
        "tool_call_id": call["id"],
        "content": "invoice.py:9:def total(",
    }


@pytest.mark.parametrize("stream", [False, True])
def test_usage_and_cost_come_from_the_servers_usage_fields(stream: bool) -> None:
    with FakeLLMServer(THREE_TURNS) as server:
        usages = play(model_for(server, stream=stream), 3)
    sums = server.usage_sum()
    assert sum(u.input_tokens for u in usages) == sums["prompt_tokens"]
    assert sum(u.output_tokens for u in usages) == sums["completion_tokens"]
    assert sum(u.cache_read_tokens for u in usages) == sums["prompt_tokens_details.cached_tokens"] > 0
    # gpt-4o: $2.50 per million uncached prompt tokens, $1.25 cached, $10 output.
    expected = (
        (sums["prompt_tokens"] - sums["prompt_tokens_details.cached_tokens"]) * 2.50
        + sums["prompt_tokens_details.cached_tokens"] * 1.25
        + sums["completion_tokens"] * 10.00
    ) / 1_000_000
    assert sum(u.cost_usd or 0 for u in usages) == pytest.approx(expected, rel=1e-9)


def test_rate_limits_are_retried_until_success(capsys: pytest.CaptureFixture[str]) -> None:
    script: list[Item] = [*(openai_error(429, retry_after=0) for _ in range(4)), turn("ok", ("submit", {}))]
    with FakeLLMServer(script) as server:
        response = model_for(server).query(start(), TOOLS)
    assert [c.name for c in response.tool_calls] == ["submit"]
    assert len(server.requests) == 5
    retries = [e for e in response.events if e["type"] == "retry"]
    assert [e["attempt"] for e in retries] == [1, 2, 3, 4]
    assert all(e["error"].startswith("429 tokens: Rate limit reached") for e in retries)
    assert capsys.readouterr().err.count("retrying in") == 4


def test_retry_after_is_honoured() -> None:
    script: list[Item] = [openai_error(429, retry_after=0.4), turn("ok", ("submit", {}))]
    with FakeLLMServer(script) as server:
        response = model_for(server).query(start(), TOOLS)
    gap = server.request_times[1] - server.request_times[0]
    assert gap >= 0.4
    assert response.events[0]["wait_s"] == 0.4


def test_a_server_error_then_success() -> None:
    with FakeLLMServer([openai_error(500), turn("ok", ("submit", {}))]) as server:
        response = model_for(server).query(start(), TOOLS)
    assert server.errors_served == [500]
    assert response.events[0]["error"].startswith("500 server_error: The server had an error")
    assert response.tool_calls[0].name == "submit"


def test_a_wrong_key_fails_at_once_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-0000000000000000000")
    with FakeLLMServer([turn("never")], api_key=OPENAI_KEY) as server:
        started = time.monotonic()
        with pytest.raises(ModelCallError) as caught:
            model_for(server).query(start(), TOOLS)
    message = str(caught.value)
    assert len(server.requests) == 1
    assert time.monotonic() - started < 5
    assert "\n" not in message
    assert message.startswith("openai:gpt-4o: 401 invalid_request_error: Incorrect API key provided")
    assert message.endswith("(check OPENAI_API_KEY)")
    assert "sk-wrong-key-0000000000000000000" not in message


def test_context_overflow_fails_at_once() -> None:
    with FakeLLMServer([openai_error(400), turn("never")]) as server, pytest.raises(ContextOverflowError) as caught:
        model_for(server).query(start(), TOOLS)
    assert len(server.requests) == 1
    assert "maximum context length is 128000 tokens" in str(caught.value)
    assert "context window" in str(caught.value)


def test_an_exhausted_quota_is_not_retried() -> None:
    quota = ApiError(
        429,
        {
            "error": {
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
        },
    )
    with FakeLLMServer([quota, turn("never")]) as server, pytest.raises(ModelCallError, match="out of quota"):
        model_for(server).query(start(), TOOLS)
    assert len(server.requests) == 1


def test_retries_run_out() -> None:
    script = [openai_error(503, retry_after=0) for _ in range(5)]
    with FakeLLMServer(script) as server, pytest.raises(ModelCallError) as caught:
        model_for(server, max_retries=2).query(start(), TOOLS)
    assert len(server.requests) == 3
    assert "gave up after 3 attempts" in str(caught.value)
    assert len(caught.value.events) == 2


def test_retry_time_budget_bounds_a_long_retry_after() -> None:
    with FakeLLMServer([openai_error(429, retry_after=30), turn("never")]) as server:
        started = time.monotonic()
        with pytest.raises(ModelCallError, match="asked to wait 30 s"):
            model_for(server, retry_max_total_s=2).query(start(), TOOLS)
    assert time.monotonic() - started < 3
    assert len(server.requests) == 1


def test_a_refused_connection_is_retried_then_reported() -> None:
    with FakeLLMServer([]) as server:
        url = server.openai_base_url
    # The server is gone: nothing listens on its port any more.
    model = create_model("openai:gpt-4o", fast_config(base_url=url, max_retries=2))
    with pytest.raises(ModelError, match=r"nothing is listening at http://127.0.0.1:\d+/.* 3 attempts"):
        model.query(start(), TOOLS)


@pytest.mark.parametrize("stream", [False, True])
def test_screenshots_in_tool_results_reach_the_model_as_images(tmp_path: Path, stream: bool) -> None:
    png = tiny_png(tmp_path / "shot.png")
    script = [turn("", ("bash", {"command": "a"}), ("bash", {"command": "b"})), turn("seen", ("submit", {}))]
    with FakeLLMServer(script) as server:
        model = model_for(server, stream=stream)
        messages = start()
        answer(messages, model.query(messages, TOOLS), ["page 1", "page 2"], images=[str(png)])
        model.query(messages, TOOLS)
    sent = server.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "tool", "user"]
    assert [m["content"] for m in sent[3:5]] == ["page 1", "page 2"]
    parts = sent[5]["content"]
    images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert images == [f"data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}"] * 2


def test_reasoning_effort_and_temperature_are_sent() -> None:
    with FakeLLMServer([turn("ok")]) as server:
        model_for(server, "openai:o3", reasoning_effort="high", temperature=0.2).query(start(), TOOLS)
    body = server.requests[0].body
    assert (body["reasoning_effort"], body["temperature"]) == ("high", 0.2)


def test_openai_compatible_sends_max_tokens_and_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with FakeLLMServer([turn("ok")]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        model = create_model("openai-compatible:llama3.1:8b", fast_config(max_output_tokens=512))
        assert model.name == "openai-compatible:llama3.1:8b"
        assert model.supports_images is False  # unless model.supports_images says so
        model.query(start(), TOOLS)
    body = server.requests[0].body
    assert body["model"] == "llama3.1:8b"
    assert body["max_tokens"] == 512
    assert "max_completion_tokens" not in body


def test_a_missing_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        create_model("openai:gpt-4o", fast_config())


def test_a_key_in_an_unusual_variable_is_still_kept_out_of_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "plain-value-in-a-variable-named-oddly-42"
    monkeypatch.setenv("LLM_GATEWAY_VALUE", secret)
    echo = ApiError(
        401,
        {
            "error": {
                "message": f"key {secret} is not valid",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
    )
    with FakeLLMServer([echo]) as server, pytest.raises(ModelCallError) as caught:
        model_for(server, api_key_env="LLM_GATEWAY_VALUE").query(start(), TOOLS)
    assert secret not in str(caught.value)
    assert "check LLM_GATEWAY_VALUE" in str(caught.value)
    assert server.requests[0].headers["authorization"] == f"Bearer {secret}"


def test_arguments_that_are_not_a_json_object_are_kept_raw() -> None:
    assert parse_arguments("bash", "c1", '{"command": "ls"}').arguments == {"command": "ls"}
    broken = parse_arguments("bash", "c1", '{"command": "ls"')
    assert (broken.arguments, broken.raw_arguments) == (None, '{"command": "ls"')
    assert parse_arguments("bash", "c1", "[1]").arguments is None
    assert parse_arguments("submit", "c1", "").arguments == {}


def test_a_base_url_missing_its_v1_is_named_in_the_error() -> None:
    with FakeLLMServer([turn("never")]) as server, pytest.raises(ModelCallError) as caught:
        create_model("openai:gpt-4o", fast_config(base_url=server.url)).query(start(), TOOLS)
    assert len(server.requests) == 1
    assert str(caught.value).startswith("openai:gpt-4o: 404 invalid_request_error: no route /chat/completions")
    assert "check the model name, base URL" in str(caught.value)


@pytest.mark.parametrize("stream", [False, True])
def test_a_server_that_reports_no_usage_leaves_the_cost_unknown(stream: bool) -> None:
    with FakeLLMServer([turn("ok")], report_usage=False) as server:
        response = model_for(server, "openai-compatible:gpt-4o", stream=stream).query(start(), TOOLS)
    assert response.usage.cost_usd is None
    assert response.usage.input_tokens == 0
    assert response.events == [{"type": "usage_missing", "detail": "the server reported no token usage: cost unknown"}]


def test_a_rate_limit_that_mentions_billing_is_still_retried() -> None:
    message = (
        "Rate limit reached for gpt-4o in organization org-x on requests per min. Limit: 3 / min. Please try again "
        "in 20s. Please add a payment method to your account to increase your rate limit. Visit "
        "https://platform.openai.com/account/billing to add a payment method."
    )
    limited = ApiError(
        429,
        {"error": {"message": message, "type": "requests", "param": None, "code": "rate_limit_exceeded"}},
        {"retry-after": "0"},
    )
    with FakeLLMServer([limited, turn("ok")]) as server:
        assert model_for(server).query(start(), TOOLS).content == "ok"
    assert len(server.requests) == 2
