"""Fitting a conversation in a model's context window before each call.

The loop keeps the whole history; a provider sends ``ContextFitter.fit(history)``, a copy
that fits. Only observations (tool results and the loop's notes to the model) ever change,
so every tool call still has its result and both wire formats stay valid. When the history
is over budget, in this order:

1. observations longer than an eighth of the budget are cut to that length, head + tail;
2. the oldest observations are elided (their text replaced by a one-line note, their
   screenshots dropped), in blocks of ``ELIDE_BLOCK``, so the prompt prefix that the
   provider cached changes once per block rather than on every call;
3. if the latest turns alone are still too long, their observations are cut harder.

The system prompt, the task and the latest ``KEEP_TURNS`` turns are never elided. Under
budget, the history is sent unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from lancer.core.errors import ConfigError
from lancer.core.model import Message, ToolSpec
from lancer.core.text import truncate_middle
from lancer.models.tokens import TokenCounter

# What one screenshot costs: Anthropic bills about width*height/750 tokens for an image
# resized to at most ~1.15 megapixels (~1,600 tokens); OpenAI's high detail costs less.
IMAGE_TOKENS = 1600
# Role markers and separators each message adds on the wire.
MESSAGE_OVERHEAD = 4
KEEP_TURNS = 2
ELIDE_BLOCK = 8
MIN_CUT_TOKENS = 200


@dataclass
class Fitted:
    messages: list[Message]
    tokens: int  # the request's input tokens as counted here (tools included)
    event: dict[str, Any] | None  # what was cut or elided, for the trajectory; None if nothing


class ContextFitter:
    def __init__(self, window: int, max_output_tokens: int, counter: TokenCounter, margin: float = 0.05) -> None:
        # ``margin``: the share of the window left for the counter's error and the provider's
        # hidden prompt; larger when tokens are only estimated.
        self.room = window - max_output_tokens - int(window * margin)
        if self.room < 1000:
            raise ConfigError(
                f"context window {window} leaves no room for input after max_output_tokens "
                f"{max_output_tokens}; lower model.max_output_tokens"
            )
        self.counter = counter

    def message_tokens(self, message: Message) -> int:
        tokens = MESSAGE_OVERHEAD + self.counter.count(message.content) + IMAGE_TOKENS * len(message.images)
        for call in message.tool_calls:
            arguments = json.dumps(call.arguments) if call.arguments is not None else call.raw_arguments or ""
            tokens += MESSAGE_OVERHEAD + self.counter.count(call.name) + self.counter.count(arguments)
        return tokens

    def tools_tokens(self, tools: list[ToolSpec]) -> int:
        specs = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools]
        return self.counter.count(json.dumps(specs)) if specs else 0

    def count(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        return self.tools_tokens(tools) + sum(self.message_tokens(m) for m in messages)

    def fit(self, messages: list[Message], tools: list[ToolSpec]) -> Fitted:
        tools_tokens = self.tools_tokens(tools)
        budget = self.room - tools_tokens
        sizes = [self.message_tokens(m) for m in messages]
        before = sum(sizes)
        if before <= budget:
            return Fitted(messages, before + tools_tokens, None)

        out = list(messages)
        head, tail = _protected_bounds(messages)
        observations = [i for i in range(head, len(out)) if out[i].role in ("tool", "user")]
        cut: set[int] = set()
        elided: set[int] = set()

        def total() -> int:
            return sum(sizes)

        def shorten(i: int, limit: int) -> None:
            if sizes[i] <= limit:
                return
            text = out[i].content
            text_tokens = self.counter.count(text)
            keep = max(limit - (sizes[i] - text_tokens), MIN_CUT_TOKENS // 2)
            shorter = truncate_middle(text, max(int(len(text) * keep / max(text_tokens, 1)), 100))
            if shorter != text:
                out[i] = replace(out[i], content=shorter)
                sizes[i] = self.message_tokens(out[i])
                cut.add(i)

        cap = max(budget // 8, MIN_CUT_TOKENS)
        for i in observations:
            shorten(i, cap)

        older = [i for i in observations if i < tail]
        for n, i in enumerate(older, start=1):
            if total() <= budget and (n - 1) % ELIDE_BLOCK == 0:
                break
            note = f"[elided to fit the context window: {sizes[i]} tokens of output]"
            out[i] = replace(out[i], content=note, images=[])
            sizes[i] = self.message_tokens(out[i])
            elided.add(i)

        recent = [i for i in observations if i >= tail]
        while total() > budget and cap > MIN_CUT_TOKENS:
            cap //= 2
            for i in recent:
                shorten(i, cap)

        after = total()
        event = {
            "type": "context_fit",
            "budget_tokens": budget,
            "tokens_before": before,
            "tokens_after": after,
            "observations_cut": len(cut - elided),
            "observations_elided": len(elided),
        }
        return Fitted(out, after + tools_tokens, event)


def _protected_bounds(messages: list[Message]) -> tuple[int, int]:
    """(end of the system prompt + task, start of the latest KEEP_TURNS turns)."""
    head = next((i + 1 for i, m in enumerate(messages) if m.role == "user"), 0)
    turns = [i for i, m in enumerate(messages) if m.role == "assistant" and i >= head]
    tail = turns[-KEEP_TURNS] if len(turns) >= KEEP_TURNS else head
    return head, tail
