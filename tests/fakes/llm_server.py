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

The code is in tests/fakes/llm/ (server.py, one module per wire protocol, wire.py for what
they share); this module is its public face and its command line.

Run it by hand: ``python -m tests.fakes.llm_server TURNS.yaml [--rate-limits N]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tests.fakes.llm.anthropic_messages import anthropic_error
from tests.fakes.llm.openai_chat import openai_error
from tests.fakes.llm.server import FakeLLMServer, Faults
from tests.fakes.llm.wire import ApiError, Item, Recorded, ServedUsage, invalid_request

__all__ = [
    "ApiError",
    "FakeLLMServer",
    "Faults",
    "Item",
    "Recorded",
    "ServedUsage",
    "anthropic_error",
    "invalid_request",
    "openai_error",
]


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
