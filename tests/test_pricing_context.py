"""Prices, token counting without tiktoken's downloads, fitting the context window, backoff."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from importlib.metadata import version
from typing import Any

import pytest

from lancer.core.config import ModelConfig, PriceConfig
from lancer.core.errors import ConfigError
from lancer.core.model import Message, ToolCall, Usage
from lancer.models import notices, tokens
from lancer.models.context import ELIDE_BLOCK, IMAGE_TOKENS, ContextFitter
from lancer.models.pricing import CatalogPrice, Price, lookup, model_card
from lancer.models.retry import RetryPolicy, _retry_after
from lancer.models.tokens import EstimateCounter
from tests.fakes.conversation import TOOLS


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notices, "_said", set())


# --- prices ----------------------------------------------------------------------------------

CATALOG = f"genai-prices {version('genai-prices')}"


def catalog(model: str, provider: str, base_url: str | None = None) -> CatalogPrice:
    found = lookup(model, provider, base_url)
    assert found is not None, model
    return found[0]


def test_snapshots_and_aliases_find_their_model() -> None:
    for name, provider, entry in [
        ("gpt-4o-2024-08-06", "openai", "openai gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "openai", "openai gpt-4o-mini"),
        ("gpt-4.1-mini-2025-04-14", "openai", "openai gpt-4.1-mini"),
        ("claude-sonnet-4-5-20250929", "anthropic", "anthropic claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "anthropic", "anthropic claude-sonnet-4-0"),
        ("claude-3-5-sonnet-latest", "anthropic", "anthropic claude-3-5-sonnet"),
    ]:
        assert catalog(name, provider).source == f"{CATALOG} ({entry})"


def test_openai_compatible_names_are_looked_up_across_providers() -> None:
    # OpenRouter-style vendor/model names, a model's own provider, and the server's URL.
    assert (
        catalog("deepseek/deepseek-chat", "openai-compatible").source
        == f"{CATALOG} (openrouter deepseek/deepseek-chat)"
    )
    assert catalog("deepseek-chat", "openai-compatible").source == f"{CATALOG} (deepseek deepseek-chat)"
    assert catalog("gpt-4o", "openai-compatible").source == f"{CATALOG} (openai gpt-4o)"
    via_url = catalog("anthropic/claude-sonnet-4.5", "openai", "https://openrouter.ai/api/v1")
    assert via_url.source == f"{CATALOG} (openrouter anthropic/claude-sonnet-4.5)"
    # A server lancer cannot place (a local proxy) prices the model its provider names.
    assert catalog("gpt-4o", "openai", "http://127.0.0.1:8000/v1").source == f"{CATALOG} (openai gpt-4o)"


def test_unknown_models_are_not_priced_as_their_neighbours() -> None:
    for name, provider in [
        ("claude-opus-4-9", "anthropic"),
        ("my-finetune", "openai"),
        ("llama3.1:8b", "openai-compatible"),
        ("claude-sonnet-4-5", "openai"),  # OpenAI does not serve it
    ]:
        assert lookup(name, provider) is None, name
    # o3-pro is its own model at ten times o3's price, not o3.
    usage = Usage(input_tokens=1_000_000)
    assert catalog("o3-pro", "openai").cost(usage) == pytest.approx(10 * catalog("o3", "openai").cost(usage))


def test_gpt_4o_prices_cached_prompt_tokens_at_half() -> None:
    usage = Usage(input_tokens=10_000, output_tokens=1_000, cache_read_tokens=6_000)
    assert catalog("gpt-4o", "openai").cost(usage) == pytest.approx((4_000 * 2.50 + 6_000 * 1.25 + 1_000 * 10.0) / 1e6)


def test_each_call_is_priced_at_the_long_context_tier_its_own_prompt_reaches() -> None:
    sonnet = catalog("claude-sonnet-4-5", "anthropic")
    # Up to 200k prompt tokens: $3 input, $0.30 cache read, $3.75 cache write, $15 output.
    below = Usage(input_tokens=200_000, output_tokens=1_000, cache_read_tokens=150_000, cache_write_tokens=10_000)
    assert sonnet.cost(below) == pytest.approx((40_000 * 3 + 150_000 * 0.3 + 10_000 * 3.75 + 1_000 * 15) / 1e6)
    # Past 200k, the whole call is billed at the long-context prices: $6, $0.60, $7.50, $22.50.
    above = Usage(input_tokens=200_001, output_tokens=1_000, cache_read_tokens=150_000, cache_write_tokens=10_000)
    assert sonnet.cost(above) == pytest.approx((40_001 * 6 + 150_000 * 0.6 + 10_000 * 7.5 + 1_000 * 22.5) / 1e6)
    # Two calls of 150k cost twice one: the tier is per call, not per run.
    assert sonnet.cost(Usage(input_tokens=150_000)) == pytest.approx(150_000 * 3 / 1e6)


def test_the_upper_bound_takes_the_dearest_price_for_every_prompt_token() -> None:
    sonnet = catalog("claude-sonnet-4-5", "anthropic")
    # Anthropic's cache writes cost more than plain input: the bound assumes all are written.
    assert sonnet.upper_bound(100_000, 4_096) == pytest.approx((100_000 * 3.75 + 4_096 * 15) / 1e6)
    assert sonnet.upper_bound(250_000, 4_096) == pytest.approx((250_000 * 7.5 + 4_096 * 22.5) / 1e6)
    assert catalog("gpt-4o", "openai").upper_bound(100_000, 4_096) == pytest.approx((100_000 * 2.5 + 4_096 * 10) / 1e6)
    assert Price(1.0, 2.0, 0.1, 1.25).upper_bound(1_000_000, 1_000_000) == pytest.approx(1.25 + 2.0)


def test_config_price_counts_each_kind_of_token_at_its_price() -> None:
    price = Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)
    usage = Usage(input_tokens=10_000, output_tokens=1_000, cache_read_tokens=6_000, cache_write_tokens=1_000)
    assert price.cost(usage) == pytest.approx((3_000 * 3.0 + 6_000 * 0.3 + 1_000 * 3.75 + 1_000 * 15.0) / 1e6)


def test_an_unknown_models_cost_is_unknown_and_said_once(capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        card = model_card("my-finetune", ModelConfig(), "openai-compatible")
    assert card.price is None
    assert card.context_window == 128_000
    err = capsys.readouterr().err
    assert err.count("no price known for model 'my-finetune'") == 1
    assert f"{CATALOG} has none for openai-compatible" in err
    assert err.count("context window of model 'my-finetune' unknown") == 1
    assert "model.price" in err


def test_config_prices_and_window_override_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    config = ModelConfig(price=PriceConfig(input=1.0, output=2.0, cache_read=0.5), context_window=32_000)
    card = model_card("gpt-4o", config, "openai")
    assert card.price == Price(1.0, 2.0, 0.5, 1.0)
    assert card.price.source == "config"
    assert card.context_window == 32_000
    assert model_card("gpt-4o", ModelConfig(), "openai").context_window == 128_000  # the catalog's
    local = model_card("local-llama", ModelConfig(price=PriceConfig(input=0, output=0)), "openai-compatible")
    assert local.price == Price(0, 0, 0, 0)
    assert "no price known" not in capsys.readouterr().err


def test_prices_never_come_from_the_network() -> None:
    # Any connection attempt fails the run; an update installed by other code in the process
    # (genai-prices' UpdatePrices sets a global snapshot) does not change lancer's prices.
    code = """
import sys, threading
def no_network(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "urllib.Request"):
        raise RuntimeError(f"network use: {event} {args}")
sys.addaudithook(no_network)
from genai_prices import data_snapshot
data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers=[], from_auto_update=True))
from lancer.core.config import ModelConfig
from lancer.core.model import Usage
from lancer.models.pricing import model_card
card = model_card("claude-sonnet-4-5", ModelConfig(), "anthropic")
print(card.price.source, round(card.price.cost(Usage(input_tokens=100_000)), 6), threading.active_count())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout == f"{CATALOG} (anthropic claude-sonnet-4-5) 0.3 1\n"


# --- token counting -----------------------------------------------------------------------


@pytest.fixture
def no_cached_encodings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_encodings", {})


def test_when_tiktoken_cannot_download_counts_are_estimated(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_cached_encodings: None
) -> None:
    import tiktoken

    def offline(name: str) -> Any:
        raise ConnectionError("Failed to resolve 'openaipublic.blob.core.windows.net'")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    counter = tokens.counter_for("gpt-4o")
    assert counter.exact is False
    assert counter.count("x" * 401) == 101
    tokens.counter_for("gpt-4o")
    err = capsys.readouterr().err
    assert err.count("tiktoken could not load its o200k_base encoding") == 1
    assert "characters / 4" in err


def test_a_hanging_download_is_abandoned(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_cached_encodings: None
) -> None:
    import tiktoken

    release = threading.Event()
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: release.wait(30))
    monkeypatch.setattr(tokens, "LOAD_TIMEOUT_S", 0.3)
    started = time.monotonic()
    counter = tokens.counter_for("claude-sonnet-4-5")
    assert time.monotonic() - started < 2
    assert counter.exact is False
    assert "no answer within 0.3 s" in capsys.readouterr().err
    # Once given up on, the encoding is not waited for again in this process.
    started = time.monotonic()
    tokens.counter_for("claude-sonnet-4-5")
    assert time.monotonic() - started < 0.1
    release.set()


def test_a_loaded_encoding_counts_exactly(monkeypatch: pytest.MonkeyPatch, no_cached_encodings: None) -> None:
    import tiktoken

    class Words:
        def encode(self, text: str, disallowed_special: Any = ()) -> list[str]:
            return text.split()

    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: Words())
    counter = tokens.counter_for("gpt-4o")
    assert counter.exact is True
    assert counter.count("one two three") == 3


# --- fitting the context window ------------------------------------------------------------


def history(observations: int, size: int) -> list[Message]:
    """System, task, then ``observations`` tool calls each answered by ``size`` characters."""
    messages = [Message("system", "SYSTEM PROMPT"), Message("user", "THE TASK")]
    for i in range(observations):
        messages.append(Message("assistant", f"step {i}", [ToolCall(f"c{i}", "bash", {"command": f"cmd {i}"})]))
        messages.append(Message("tool", f"HEAD{i} " + "x" * size + f" TAIL{i}", tool_call_id=f"c{i}", name="bash"))
    return messages


def fitter(window: int) -> ContextFitter:
    return ContextFitter(window, max_output_tokens=1000, counter=EstimateCounter())


def test_a_history_that_fits_is_sent_unchanged() -> None:
    messages = history(5, 400)
    fitted = fitter(100_000).fit(messages, TOOLS)
    assert fitted.messages is messages
    assert fitted.event is None
    assert fitted.tokens == fitter(100_000).count(messages, TOOLS)


def test_oldest_observations_go_first_and_the_task_and_latest_turns_stay() -> None:
    messages = history(40, 2_000)
    original = [m.content for m in messages]
    fitted = fitter(12_000).fit(messages, TOOLS)
    out = fitted.messages
    assert [m.content for m in messages] == original  # the loop's history is never touched
    assert fitted.tokens <= 12_000 - 1000
    assert [m.role for m in out] == [m.role for m in messages]
    assert [m.tool_call_id for m in out] == [m.tool_call_id for m in messages]
    assert out[0].content == "SYSTEM PROMPT" and out[1].content == "THE TASK"
    assert out[-1].content == messages[-1].content and out[-3].content == messages[-3].content
    elided = [i for i, m in enumerate(out) if m.content.startswith("[elided to fit the context window")]
    assert elided == [i for i in range(3, elided[-1] + 1, 2)]  # a prefix of the observations, oldest first
    assert len(elided) % ELIDE_BLOCK == 0
    assert all(m.content == o.content for m, o in zip(out, messages, strict=True) if m.role == "assistant")
    assert fitted.event is not None
    assert fitted.event["observations_elided"] == len(elided)


def test_a_huge_observation_is_cut_head_and_tail() -> None:
    messages = history(2, 200)
    messages[3] = Message("tool", "BEGINNING " + "y" * 200_000 + " THE END", tool_call_id="c0", name="bash")
    out = fitter(20_000).fit(messages, TOOLS).messages
    assert out[3].content.startswith("BEGINNING ")
    assert out[3].content.endswith(" THE END")
    assert "characters cut from the middle" in out[3].content
    assert len(out[3].content) < 20_000 * 4


def test_elided_observations_drop_their_screenshots() -> None:
    messages = history(30, 1_000)
    for m in messages:
        if m.role == "tool":
            m.images = ["/tmp/shot.png"]
    out = fitter(15_000).fit(messages, TOOLS).messages
    assert not any(m.images for m in out if m.content.startswith("[elided"))
    assert out[-1].images == ["/tmp/shot.png"]
    assert fitter(15_000).message_tokens(messages[3]) > IMAGE_TOKENS


def test_elision_moves_in_blocks_so_the_cached_prefix_changes_rarely() -> None:
    f = fitter(12_000)
    elided_counts = []
    for n in range(30, 60):
        out = f.fit(history(n, 2_000), TOOLS).messages
        elided_counts.append(sum(m.content.startswith("[elided") for m in out))
    assert all(c % ELIDE_BLOCK == 0 for c in elided_counts)
    assert len(set(elided_counts)) < len(elided_counts) / 3


def test_a_window_smaller_than_the_reply_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"lower model\.max_output_tokens"):
        ContextFitter(4_000, max_output_tokens=4_000, counter=EstimateCounter())


# --- backoff -----------------------------------------------------------------------------------


def test_backoff_grows_with_jitter_up_to_its_cap() -> None:
    policy = RetryPolicy(max_retries=8, max_total_s=300, initial_wait_s=1.0, max_wait_s=8.0)
    for attempt, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (7, 8.0)]:
        waits = {policy.backoff(attempt) for _ in range(50)}
        assert all(step / 2 <= w <= step for w in waits)
        assert len(waits) > 1


def test_retry_after_headers() -> None:
    assert _retry_after({"retry-after": "3"}) == 3.0
    assert _retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert _retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert _retry_after({"retry-after": "soon"}) is None
    assert _retry_after({}) is None


def test_importing_the_providers_has_no_side_effects() -> None:
    code = (
        "import threading, lancer.models.openai, lancer.models.anthropic, lancer.models.context, lancer.models.pricing;"
        "print(threading.active_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout, out.stderr) == (0, "1\n", "")  # no thread, no download, no warning
