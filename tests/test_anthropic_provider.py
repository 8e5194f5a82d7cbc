"""anthropic:MODEL through the real anthropic SDK against a local server speaking the Messages API."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest

from lancer.core.errors import ConfigError
from lancer.core.model import Message, ToolCall
from lancer.models import create_model
from lancer.models.api import ApiModel
from lancer.models.retry import ContextOverflowError, ModelCallError
from tests.fakes.conversation import ANTHROPIC_KEY, THREE_TURNS, TOOLS, answer, fast_config, play, start, tiny_png, turn
from tests.fakes.llm_server import ApiError, FakeLLMServer, Item, anthropic_error

SONNET = "anthropic:claude-sonnet-4-6"  # 4-5 works too, but its SDK deprecation warning is noise here


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


def model_for(server: FakeLLMServer, spec: str = SONNET, **config: object) -> ApiModel:
    model = create_model(spec, fast_config(base_url=server.url, **config))
    assert isinstance(model, ApiModel)
    return model


def cache_marks(body: dict[str, Any]) -> list[str]:
    """Where the request put cache_control breakpoints."""
    marks = [f"tools[{i}]" for i, t in enumerate(body.get("tools") or []) if "cache_control" in t]
    marks += [f"system[{i}]" for i, b in enumerate(body.get("system") or []) if "cache_control" in b]
    for i, m in enumerate(body["messages"]):
        marks += [f"messages[{i}][{j}]" for j, b in enumerate(m["content"]) if "cache_control" in b]
    return marks


@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_round_trip_with_prompt_caching(stream: bool) -> None:
    script = [
        turn("Looking.", ("bash", {"command": "grep -rn total ."})),
        turn("", ("bash", {"command": "cat invoice.py"}), ("bash", {"command": "ls"})),
        turn("Done.", ("submit", {})),
    ]
    with FakeLLMServer(script, api_key=ANTHROPIC_KEY) as server:
        model = model_for(server, stream=stream)
        messages = start()
        first = model.query(messages, TOOLS)
        assert first.content == "Looking."
        assert [(c.name, c.arguments) for c in first.tool_calls] == [("bash", {"command": "grep -rn total ."})]
        answer(messages, first, ["invoice.py:9:def total("])
        second = model.query(messages, TOOLS)
        answer(messages, second, ["def total(...): ...", ""])
        messages.append(Message("user", "A note from the loop."))
        third = model.query(messages, TOOLS)
        assert [c.name for c in third.tool_calls] == ["submit"]

    sent = server.requests[-1]
    assert sent.path == "/v1/messages"
    assert ANTHROPIC_KEY in (
        sent.headers.get("x-api-key"),
        sent.headers.get("authorization", "").removeprefix("Bearer "),
    )
    body = sent.body
    assert bool(body.get("stream")) is stream
    assert body["max_tokens"] == 4096
    assert body["system"][0]["text"] == "You are a careful engineer."
    assert body["tools"][0]["input_schema"] == TOOLS[0].parameters
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    results = body["messages"][4]["content"]
    assert [b["type"] for b in results] == ["tool_result", "tool_result", "text"]
    assert results[0]["content"] == [{"type": "text", "text": "def total(...): ..."}]
    assert "content" not in results[1]  # an empty output: no empty text block, which the API refuses
    # Breakpoints: the last tool, the system prompt, and the two latest user turns.
    assert cache_marks(body) == ["tools[1]", "system[0]", "messages[2][0]", "messages[4][2]"]
    assert all(m == {"type": "ephemeral"} for m in [body["tools"][1]["cache_control"]])


def test_every_request_asks_for_caching_and_can_be_told_not_to() -> None:
    with FakeLLMServer([turn("a", ("bash", {"command": "ls"})), turn("b")]) as server:
        model = model_for(server)
        messages = start()
        answer(messages, model.query(messages, TOOLS), ["x"])
        model.query(messages, TOOLS)
    assert all(cache_marks(r.body) for r in server.requests)
    with FakeLLMServer([turn("a")]) as server:
        model_for(server, prompt_caching=False).query(start(), TOOLS)
    assert cache_marks(server.requests[0].body) == []


@pytest.mark.parametrize("stream", [False, True])
def test_usage_includes_cache_reads_and_writes_and_prices_them(stream: bool) -> None:
    with FakeLLMServer(THREE_TURNS) as server:
        usages = play(model_for(server, stream=stream), 3)
    sums = server.usage_sum()
    read, written = sums["cache_read_input_tokens"], sums["cache_creation_input_tokens"]
    assert read > 0 and written > 0
    assert sum(u.input_tokens for u in usages) == sums["input_tokens"] + read + written
    assert sum(u.cache_read_tokens for u in usages) == read
    assert sum(u.cache_write_tokens for u in usages) == written
    assert sum(u.output_tokens for u in usages) == sums["output_tokens"]
    expected = (sums["input_tokens"] * 3.00 + read * 0.30 + written * 3.75 + sums["output_tokens"] * 15.00) / 1e6
    assert sum(u.cost_usd or 0 for u in usages) == pytest.approx(expected, rel=1e-9)


def test_overloaded_and_rate_limited_answers_are_retried() -> None:
    script: list[Item] = [anthropic_error(529), anthropic_error(429, retry_after=0), anthropic_error(500), turn("ok")]
    with FakeLLMServer(script) as server:
        response = model_for(server).query(start(), TOOLS)
    assert response.content == "ok"
    assert server.errors_served == [529, 429, 500]
    assert [e["error"] for e in response.events] == [
        "529 overloaded_error: Overloaded",
        "429 rate_limit_error: This request would exceed the rate limit for your organization of 30,000 input "
        "tokens per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
        "500 api_error: Internal server error",
    ]


def test_an_overload_in_the_middle_of_a_stream_is_retried() -> None:
    overloaded = anthropic_error(529)
    script: list[Item] = [ApiError(200, overloaded.body, mid_stream=True), turn("ok")]
    with FakeLLMServer(script) as server:
        response = model_for(server, stream=True).query(start(), TOOLS)
    assert response.content == "ok"
    assert len(server.requests) == 2
    assert response.events[0]["error"].endswith("overloaded_error: Overloaded")


def test_a_wrong_key_fails_at_once_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong-00000000000000000000")
    with FakeLLMServer([turn("never")], api_key=ANTHROPIC_KEY) as server:
        started = time.monotonic()
        with pytest.raises(ModelCallError) as caught:
            model_for(server).query(start(), TOOLS)
    assert len(server.requests) == 1
    assert time.monotonic() - started < 5
    assert str(caught.value) == (
        "anthropic:claude-sonnet-4-6: 401 authentication_error: invalid x-api-key (check ANTHROPIC_API_KEY)"
    )


def test_a_prompt_too_long_fails_at_once() -> None:
    with FakeLLMServer([anthropic_error(400), turn("never")]) as server, pytest.raises(ContextOverflowError) as caught:
        model_for(server).query(start(), TOOLS)
    assert len(server.requests) == 1
    assert "prompt is too long: 215304 tokens > 200000 maximum" in str(caught.value)


def test_a_screenshot_goes_inside_its_tool_result(tmp_path: Path) -> None:
    png = tiny_png(tmp_path / "shot.png")
    with FakeLLMServer([turn("", ("bash", {"command": "shot"})), turn("seen")]) as server:
        model = model_for(server)
        messages = start()
        answer(messages, model.query(messages, TOOLS), ["the page"], images=[str(png), str(tmp_path / "gone.png")])
        model.query(messages, TOOLS)
    result = server.requests[-1].body["messages"][2]["content"][0]
    assert result["type"] == "tool_result"
    data = base64.b64encode(png.read_bytes()).decode()
    assert result["content"][:2] == [
        {"type": "text", "text": "the page"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
    ]
    assert result["content"][2]["text"] == "[screenshot gone.png could not be read]"


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_blocks_go_back_with_their_turn(stream: bool) -> None:
    script = [turn("", ("bash", {"command": "ls"})), turn("", ("bash", {"command": "pwd"})), turn("done")]
    with FakeLLMServer(script) as server:
        model = model_for(server, thinking_budget=2048, stream=stream)
        messages = start()
        first = model.query(messages, TOOLS)
        assert first.events == [{"type": "thinking", "text": "Turn 1: thinking it over."}]
        answer(messages, first, ["a"])
        answer(messages, model.query(messages, TOOLS), ["b"])
        assert model.query(messages, TOOLS).content == "done"  # the server refuses a turn without its thinking
    body = server.requests[-1].body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 4096 + 2048
    assistant_turns = [m["content"] for m in body["messages"] if m["role"] == "assistant"]
    assert [turn[0]["type"] for turn in assistant_turns] == ["thinking", "thinking"]
    assert assistant_turns[0][0]["thinking"] == "Turn 1: thinking it over."
    assert assistant_turns[0][0]["signature"].startswith("sig-1-")


def test_thinking_with_a_temperature_is_refused_before_any_call() -> None:
    with pytest.raises(ConfigError, match="temperature"):
        create_model(SONNET, fast_config(base_url="http://127.0.0.1:9", thinking_budget=2048, temperature=0.5))


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeLLMServer([turn("ok")]) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        assert create_model(SONNET, fast_config()).query(start(), TOOLS).content == "ok"
    assert len(server.requests) == 1


def test_a_long_history_is_fitted_and_still_a_valid_request(tmp_path: Path) -> None:
    png = tiny_png(tmp_path / "shot.png")
    messages = start()
    for i in range(40):
        messages.append(Message("assistant", f"step {i}", [ToolCall(f"toolu_{i}", "bash", {"command": f"cat f{i}"})]))
        messages.append(
            Message("tool", f"file {i}: " + "z" * 3_000, tool_call_id=f"toolu_{i}", name="bash", images=[str(png)])
        )
    with FakeLLMServer([turn("ok")]) as server:
        response = model_for(server, context_window=30_000, max_output_tokens=2_000).query(messages, TOOLS)
    assert response.content == "ok"  # the server checked every tool_result still answers its tool_use
    fit = response.events[0]
    assert fit["type"] == "context_fit" and fit["observations_elided"] > 0
    assert fit["tokens_after"] <= fit["budget_tokens"] < fit["tokens_before"]
    sent = server.requests[0].body["messages"]
    assert sent[0]["content"][0]["text"] == "Fix the discount bug."
    results = [m["content"][0] for m in sent if m["role"] == "user" and m["content"][0]["type"] == "tool_result"]
    assert results[0]["content"][0]["text"].startswith("[elided to fit the context window")
    assert len(results[0]["content"]) == 1  # its screenshot went with it
    assert results[-1]["content"][0]["text"].startswith("file 39: zzz")
    assert results[-1]["content"][1]["type"] == "image"
