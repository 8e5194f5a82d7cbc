"""A model server on 127.0.0.1 that speaks the real OpenAI and Anthropic wire protocols.

It answers ``POST /v1/chat/completions`` (OpenAI Chat Completions) and ``POST /v1/messages``
(Anthropic Messages), streaming (server-sent events) or not, from a script: each request
takes the next item, either a turn (scripted-model format: content, tool calls, optional
usage) or an ``ApiError`` (status, the provider's real error body, headers such as
Retry-After). It checks the key and the structural rules the real APIs enforce (tool
results answering the previous turn's calls, alternating roles, non-empty text blocks, at
most four cache breakpoints), answering violations with the provider's 400 body, so a
conversion bug fails a test here as it would against the real service.

Every request is recorded (path, headers, JSON body) and every usage it served, so tests
can assert on what the SDK sent and on token and cost sums.

Run it by hand: ``python -m tests.fakes.llm_server TURNS.yaml [--rate-limits N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lancer.models.scripted import ScriptedTurn, load_turns


@dataclass
class ApiError:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    # Streaming requests get it as an ``error`` event after the stream began (status 200),
    # as Anthropic reports overload mid-reply.
    mid_stream: bool = False


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class ServedUsage:
    protocol: str  # "openai" | "anthropic"
    # The wire fields exactly as sent.
    fields: dict[str, Any]


Item = ScriptedTurn | ApiError


# --- the providers' real error bodies ----------------------------------------------------


def openai_error(status: int, retry_after: float | None = None) -> ApiError:
    bodies = {
        400: (
            "This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 "
            "tokens (including 412 in the functions). Please reduce the length of the messages or functions.",
            "invalid_request_error",
            "context_length_exceeded",
        ),
        401: (
            "Incorrect API key provided: sk-wrong*****************1234. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        429: (
            "Rate limit reached for gpt-4o in organization org-test on tokens per min (TPM): Limit 30000, "
            "Used 29800, Requested 1200. Please try again in 2.4s. Visit https://platform.openai.com/account/"
            "rate-limits to learn more.",
            "tokens",
            "rate_limit_exceeded",
        ),
        500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
        503: ("The engine is currently overloaded, please try again later", "server_error", None),
    }
    message, err_type, code = bodies[status]
    headers = {"x-request-id": f"req_{uuid.uuid4().hex[:16]}"}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    return ApiError(status, {"error": {"message": message, "type": err_type, "param": None, "code": code}}, headers)


def anthropic_error(status: int, retry_after: float | None = None) -> ApiError:
    bodies = {
        400: ("invalid_request_error", "prompt is too long: 215304 tokens > 200000 maximum"),
        401: ("authentication_error", "invalid x-api-key"),
        429: (
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 30,000 input "
            "tokens per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
        ),
        500: ("api_error", "Internal server error"),
        529: ("overloaded_error", "Overloaded"),
    }
    err_type, message = bodies[status]
    headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    return ApiError(status, {"type": "error", "error": {"type": err_type, "message": message}}, headers)


def invalid_request(protocol: str, message: str) -> ApiError:
    if protocol == "openai":
        error = {"message": message, "type": "invalid_request_error", "param": "messages", "code": None}
        return ApiError(400, {"error": error})
    return ApiError(400, {"type": "error", "error": {"type": "invalid_request_error", "message": message}})


# --- the server ----------------------------------------------------------------------------


class FakeLLMServer:
    """Serves ``script`` in order; ``api_key`` is the key it accepts (None: any)."""

    def __init__(
        self,
        script: Sequence[Item],
        api_key: str | None = None,
        report_usage: bool = True,
        delay_s: float = 0.0,
        per_conversation: bool = False,
        routes: Mapping[str, Sequence[Item]] | None = None,
        faults: Faults | None = None,
        max_concurrent: int | None = None,
        retry_after_s: float = 1.0,
        throttle_request: int | None = None,
    ) -> None:
        self.script: list[Item] = list(script)
        self.api_key = api_key
        # False: like some OpenAI-compatible servers, never say how many tokens a reply took.
        self.report_usage = report_usage
        # Seconds each answer takes, as a real model's would (requests are served in parallel).
        self.delay_s = delay_s
        # True: every conversation plays the script from its start (the item is picked by how
        # many assistant turns the request holds), so many runs at once can share one server.
        self.per_conversation = per_conversation or bool(routes)
        # Scripts per kind of conversation: the first whose marker appears in the request's
        # first two messages (system and task) plays, per conversation.
        self.routes = {marker: list(items) for marker, items in (routes or {}).items()}
        self.faults = faults
        # A rate limit as an API enforces it: a request beyond ``max_concurrent`` at once is
        # answered 429 with Retry-After ``retry_after_s``.
        self.max_concurrent = max_concurrent
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.arrivals = 0
        self.peak_in_flight = 0  # the most requests it was answering at once
        # The request (1-based, in arrival order) answered 429 with Retry-After whatever the load.
        self.throttle_request = throttle_request
        self.rate_limited_at: list[float] = []  # when each such 429 was answered (monotonic)
        self.hangs_served = 0
        self.requests: list[Recorded] = []
        self.served: list[ServedUsage] = []
        self.errors_served: list[int] = []
        # Requests refused as malformed (what the real API would answer 400): the reasons.
        self.rejected: list[str] = []
        self.request_times: list[float] = []
        self._lock = threading.Lock()
        self._turn = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @classmethod
    def from_turns_file(
        cls, path: Path, before: Sequence[ApiError] | None = None, api_key: str | None = None
    ) -> FakeLLMServer:
        """Errors first (e.g. a burst of 429s), then the turns of a scripted-model file."""
        return cls([*(before or []), *load_turns(path)], api_key)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def usage_sum(self) -> dict[str, int]:
        """Totals of the usage fields served, keyed by their wire names."""
        total: dict[str, int] = {}
        for served in self.served:
            for key, value in _flat(served.fields):
                if isinstance(value, int):
                    total[key] = total.get(key, 0) + value
        return total

    def next_item(self, body: dict[str, Any]) -> Item | None:
        if self.per_conversation:
            script = self.script
            if self.routes:
                opening = json.dumps(body.get("messages", [])[:2])
                script = next((s for marker, s in self.routes.items() if marker in opening), self.script)
            turn = sum(m.get("role") == "assistant" for m in body.get("messages", []))
            return script[turn] if turn < len(script) else None
        with self._lock:
            return self.script.pop(0) if self.script else None

    def next_turn_number(self) -> int:
        with self._lock:
            self._turn += 1
            return self._turn


@dataclass
class Faults:
    """Random faults, seeded: a 429 or 500 with probability ``error_rate``, else a hang of
    ``hang_s`` seconds (past the client's request timeout) with probability ``hang_rate``."""

    error_rate: float = 0.0
    hang_rate: float = 0.0
    hang_s: float = 5.0
    seed: int = 0
    retry_after_s: float = 0.2
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self, protocol: str) -> ApiError | float | None:
        with self._lock:
            roll, status = self._rng.random(), self._rng.choice((429, 500))
        if roll < self.error_rate:
            make = openai_error if protocol == "openai" else anthropic_error
            return make(status, retry_after=self.retry_after_s if status == 429 else None)
        if roll < self.error_rate + self.hang_rate:
            return self.hang_s
        return None


def _flat(d: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _handler(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def handle(self) -> None:
            # A client that gave up (its request timed out) is not the server's error.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                super().handle()

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.requests.append(Recorded(self.path, headers, body))
            server.request_times.append(time.monotonic())
            if self.path == "/v1/chat/completions":
                protocol = "openai"
            elif self.path == "/v1/messages":
                protocol = "anthropic"
            else:
                return self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            problem = _check_auth(protocol, headers, server.api_key) or _check_request(protocol, body)
            if problem is not None:
                server.rejected.append(json.dumps(problem.body))
                return self._error(problem)
            with server._lock:
                server.in_flight += 1
                server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                over = server.max_concurrent is not None and server.in_flight > server.max_concurrent
                server.arrivals += 1
                over = over or server.arrivals == server.throttle_request
            try:
                if not over:
                    time.sleep(server.delay_s)
            finally:  # before the answer is written: the client may send its next request at once
                with server._lock:
                    server.in_flight -= 1
            if over:
                server.rate_limited_at.append(time.monotonic())
                make = openai_error if protocol == "openai" else anthropic_error
                return self._error(make(429, retry_after=server.retry_after_s))
            fault = server.faults.draw(protocol) if server.faults else None
            if isinstance(fault, float):  # hang past the client's timeout; it has gone by then
                with server._lock:
                    server.hangs_served += 1
                time.sleep(fault)
                return None
            item = fault or server.next_item(body)
            if item is None:
                server.rejected.append("fake server: script exhausted")
                return self._error(invalid_request(protocol, "fake server: script exhausted"))
            if isinstance(item, ApiError):
                server.errors_served.append(item.status)
                if item.mid_stream and body.get("stream"):
                    return self._sse(_broken_stream(protocol, body, item))
                return self._error(item)
            n = server.next_turn_number()
            usage = _usage(protocol, item, n)
            server.served.append(ServedUsage(protocol, usage))
            if protocol == "openai":
                if body.get("stream"):
                    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                    return self._sse(_openai_chunks(body, item, n, usage, include_usage and server.report_usage))
                completion = _openai_completion(body, item, n, usage)
                if not server.report_usage:
                    del completion["usage"]
                return self._json(200, completion)
            if body.get("stream"):
                return self._sse(_anthropic_events(body, item, n, usage))
            return self._json(200, _anthropic_message(body, item, n, usage))

        def _error(self, error: ApiError) -> None:
            self._json(error.status, error.body, error.headers)

        def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _sse(self, events: Iterator[tuple[str | None, str]]) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.end_headers()
            for event, data in events:
                frame = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
                self.wfile.write(frame.encode())
                self.wfile.flush()

    return Handler


def _check_auth(protocol: str, headers: dict[str, str], key: str | None) -> ApiError | None:
    if key is None:
        return None
    # Anthropic takes x-api-key; its newer SDKs send the key as a bearer token instead.
    sent = {headers.get("authorization", "").removeprefix("Bearer "), headers.get("x-api-key", "")}
    if key in sent:
        return None
    return openai_error(401) if protocol == "openai" else anthropic_error(401)


def _check_request(protocol: str, body: dict[str, Any]) -> ApiError | None:
    problem = _openai_problem(body) if protocol == "openai" else _anthropic_problem(body)
    return invalid_request(protocol, problem) if problem else None


def _openai_problem(body: dict[str, Any]) -> str | None:
    if not body.get("model") or not isinstance(body.get("messages"), list):
        return "you must provide a model parameter and messages"
    open_calls: set[str] = set()
    previous = None
    for i, m in enumerate(body["messages"]):
        role = m.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            return f"Invalid value for 'messages[{i}].role': {role!r}"
        if role == "tool":
            if previous not in ("assistant", "tool") or m.get("tool_call_id") not in open_calls:
                return (
                    f"Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    f"'tool_calls'. (messages[{i}])"
                )
            open_calls.discard(m["tool_call_id"])
        elif open_calls:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {sorted(open_calls)}"
            )
        if role == "assistant":
            open_calls = {c["id"] for c in m.get("tool_calls") or []}
        previous = role
    return None


def _anthropic_problem(body: dict[str, Any]) -> str | None:
    if not body.get("model") or not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    system = body.get("system")
    top_blocks: list[dict[str, Any]] = [*(body.get("tools") or []), *(system if isinstance(system, list) else [])]
    breakpoints = sum(1 for block in top_blocks if "cache_control" in block)
    thinking = (body.get("thinking") or {}).get("type") == "enabled"
    if thinking and body["thinking"].get("budget_tokens", 0) >= body["max_tokens"]:
        return "`max_tokens` must be greater than `thinking.budget_tokens`"
    expected_results: set[str] = set()
    for i, m in enumerate(body.get("messages") or []):
        want = "user" if i % 2 == 0 else "assistant"
        if m.get("role") != want:
            return f'messages: roles must alternate between "user" and "assistant" (messages.{i})'
        blocks = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
        if not blocks:
            return f"messages.{i}: all messages must have non-empty content"
        breakpoints += sum(1 for block in blocks if "cache_control" in block)
        for j, block in enumerate(blocks):
            if block.get("type") == "text" and not block.get("text"):
                return f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
        results = [b for b in blocks if b.get("type") == "tool_result"]
        if expected_results:
            got = {b.get("tool_use_id") for b in results}
            if got != expected_results or blocks[: len(results)] != results:
                return (
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{sorted(expected_results - got)}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message."
                )
        elif results:
            return f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` blocks"
        expected_results = {b["id"] for b in blocks if b.get("type") == "tool_use"}
        latest_call = m["role"] == "assistant" and i == len(body["messages"]) - 2 and expected_results
        if thinking and latest_call and blocks[0].get("type") not in ("thinking", "redacted_thinking"):
            return (
                f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                f"`{blocks[0].get('type')}`. When `thinking` is enabled, a final `assistant` message must "
                "start with a thinking block."
            )
    if breakpoints > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
    return None


# --- replies ---------------------------------------------------------------------------------


def _usage(protocol: str, turn: ScriptedTurn, n: int) -> dict[str, Any]:
    """The turn's usage if the script gives one, else distinct made-up figures per turn."""
    given = turn.usage.input_tokens or turn.usage.output_tokens
    prompt = turn.usage.input_tokens if given else 1000 + 137 * n
    output = turn.usage.output_tokens if given else 40 + 7 * n
    cached = 0 if n == 1 else prompt // 2
    if protocol == "openai":
        return {
            "prompt_tokens": prompt,
            "completion_tokens": output,
            "total_tokens": prompt + output,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
    written = 300 + n
    return {
        "input_tokens": prompt - cached - written,
        "output_tokens": output,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def _calls(turn: ScriptedTurn, n: int, prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(f"{prefix}{n:03d}{i}{uuid.uuid4().hex[:8]}", c.name, c.arguments) for i, c in enumerate(turn.tool_calls)]


def _openai_completion(body: dict[str, Any], turn: ScriptedTurn, n: int, usage: dict[str, Any]) -> dict[str, Any]:
    calls = _calls(turn, n, "call_")
    message: dict[str, Any] = {"role": "assistant", "content": turn.content or None, "refusal": None, "annotations": []}
    if calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for cid, name, args in calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if calls else "stop"}
        ],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def _openai_chunks(
    body: dict[str, Any], turn: ScriptedTurn, n: int, usage: dict[str, Any], include_usage: bool
) -> Iterator[tuple[str | None, str]]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_fake",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[None, str]:
        extra = {"usage": None} if include_usage else {}
        return None, json.dumps(
            {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
        )

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    text = turn.content
    for start in range(0, len(text), 7):
        yield chunk({"content": text[start : start + 7]})
    calls = _calls(turn, n, "call_")
    for index, (cid, name, args) in enumerate(calls):
        yield chunk(
            {
                "tool_calls": [
                    {"index": index, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
                ]
            }
        )
        arguments = json.dumps(args)
        for start in range(0, len(arguments), 5):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[start : start + 5]}}]})
    yield chunk({}, "tool_calls" if calls else "stop")
    if include_usage:
        yield None, json.dumps({**base, "choices": [], "usage": usage})
    yield None, "[DONE]"


def _anthropic_blocks(turn: ScriptedTurn, n: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if turn.content:
        blocks.append({"type": "text", "text": turn.content})
    for cid, name, args in _calls(turn, n, "toolu_01"):
        blocks.append({"type": "tool_use", "id": cid, "name": name, "input": args})
    return blocks


def _thinking_block(body: dict[str, Any], n: int) -> list[dict[str, Any]]:
    if (body.get("thinking") or {}).get("type") != "enabled":
        return []
    signature = f"sig-{n}-{uuid.uuid4().hex}"
    return [{"type": "thinking", "thinking": f"Turn {n}: thinking it over.", "signature": signature}]


def _anthropic_message(body: dict[str, Any], turn: ScriptedTurn, n: int, usage: dict[str, Any]) -> dict[str, Any]:
    blocks = _thinking_block(body, n) + _anthropic_blocks(turn, n)
    return {
        "id": f"msg_01{uuid.uuid4().hex[:22]}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": blocks,
        "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn",
        "stop_sequence": None,
        "usage": {
            **usage,
            "cache_creation": {
                "ephemeral_5m_input_tokens": usage["cache_creation_input_tokens"],
                "ephemeral_1h_input_tokens": 0,
            },
            "service_tier": "standard",
        },
    }


def _anthropic_events(
    body: dict[str, Any], turn: ScriptedTurn, n: int, usage: dict[str, Any]
) -> Iterator[tuple[str | None, str]]:
    message = _anthropic_message(body, turn, n, usage)
    blocks = message.pop("content")
    start_usage = {**message["usage"], "output_tokens": 1}

    def event(name: str, data: dict[str, Any]) -> tuple[str, str]:
        return name, json.dumps({"type": name, **data})

    def start(index: int, block: dict[str, Any]) -> tuple[str, str]:
        return event("content_block_start", {"index": index, "content_block": block})

    def delta(index: int, kind: str, **fields: Any) -> tuple[str, str]:
        return event("content_block_delta", {"index": index, "delta": {"type": kind, **fields}})

    yield event("message_start", {"message": {**message, "content": [], "stop_reason": None, "usage": start_usage}})
    yield "ping", json.dumps({"type": "ping"})
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            yield start(index, {"type": "text", "text": ""})
            for i in range(0, len(block["text"]), 9):
                yield delta(index, "text_delta", text=block["text"][i : i + 9])
        elif block["type"] == "thinking":
            yield start(index, {"type": "thinking", "thinking": "", "signature": ""})
            yield delta(index, "thinking_delta", thinking=block["thinking"])
            yield delta(index, "signature_delta", signature=block["signature"])
        else:
            yield start(index, {**block, "input": {}})
            arguments = json.dumps(block["input"])
            for i in range(0, len(arguments), 6):
                yield delta(index, "input_json_delta", partial_json=arguments[i : i + 6])
        yield event("content_block_stop", {"index": index})
    yield event(
        "message_delta",
        {
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield event("message_stop", {})


def _broken_stream(protocol: str, body: dict[str, Any], error: ApiError) -> Iterator[tuple[str | None, str]]:
    if protocol == "anthropic":
        message = _anthropic_message(body, ScriptedTurn(), 0, _usage("anthropic", ScriptedTurn(), 1))
        yield "message_start", json.dumps({"type": "message_start", "message": {**message, "content": []}})
        yield "error", json.dumps(error.body)
    else:
        yield "error", json.dumps(error.body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("turns", type=Path, help="a scripted-model turns file")
    parser.add_argument("--rate-limits", type=int, default=0, help="answer this many 429s first")
    parser.add_argument("--protocol", choices=["openai", "anthropic"], default="openai")
    parser.add_argument("--api-key", help="the only key accepted")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each answer takes")
    parser.add_argument(
        "--per-conversation", action="store_true", help="play the script from its start in every conversation"
    )
    args = parser.parse_args()
    make_error = openai_error if args.protocol == "openai" else anthropic_error
    errors = [make_error(429, retry_after=1) for _ in range(args.rate_limits)]
    server = FakeLLMServer.from_turns_file(args.turns, errors, args.api_key)
    server.delay_s, server.per_conversation = args.delay, args.per_conversation
    with server:
        print(f"OPENAI_BASE_URL={server.openai_base_url}\nANTHROPIC_BASE_URL={server.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
