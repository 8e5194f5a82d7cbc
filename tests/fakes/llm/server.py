"""The fake model server: an HTTP server on 127.0.0.1 that answers each request from its
script (or a fault), after checking the key and the request as the real API would; the
wire formats are openai_chat's and anthropic_messages'."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lancer.models.scripted import load_turns
from tests.fakes.llm import anthropic_messages, openai_chat
from tests.fakes.llm.anthropic_messages import anthropic_error
from tests.fakes.llm.openai_chat import openai_error
from tests.fakes.llm.wire import ApiError, Item, Recorded, ServedUsage, invalid_request


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
            usage = (openai_chat if protocol == "openai" else anthropic_messages).usage(item, n)
            server.served.append(ServedUsage(protocol, usage))
            if protocol == "openai":
                if body.get("stream"):
                    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                    return self._sse(openai_chat.chunks(body, item, n, usage, include_usage and server.report_usage))
                completion = openai_chat.completion(body, item, n, usage)
                if not server.report_usage:
                    del completion["usage"]
                return self._json(200, completion)
            if body.get("stream"):
                return self._sse(anthropic_messages.events(body, item, n, usage))
            return self._json(200, anthropic_messages.message(body, item, n, usage))

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
    problem = (openai_chat if protocol == "openai" else anthropic_messages).problem(body)
    return invalid_request(protocol, problem) if problem else None


def _broken_stream(protocol: str, body: dict[str, Any], error: ApiError) -> Iterator[tuple[str | None, str]]:
    if protocol == "anthropic":
        yield from anthropic_messages.broken_stream(body, error)
    else:
        yield "error", json.dumps(error.body)
