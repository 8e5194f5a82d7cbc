"""A lancer run as one line of chat fine-tuning data, in the format OpenAI's fine-tuning API
takes: ``{"messages": [...], "tools": [...]}``.

The prompt's system and user messages, then per step one assistant message (its text and
its ``tool_calls``, each with the arguments as a JSON string) and one ``tool`` message per
call answering it by ``tool_call_id``. Screenshots stay out: the tool message holds the
text the tool answered (which names the image file). ``tools`` are the function schemas
the model was shown.
"""

from __future__ import annotations

import json
from typing import Any

from lancer.core.records import RunRecord
from lancer.core.secrets import redact_tree


def run_to_chat(run: RunRecord, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The run as one fine-tuning example; every string redacted of the secrets known now."""
    messages: list[dict[str, Any]] = [
        {"role": "system" if m.get("role") == "system" else "user", "content": str(m.get("content", ""))}
        for m in run.prompt
    ]
    for record in run.steps:
        calls = record.get("tool_calls") or []
        ids = [str(call.get("id") or f"call_{record.get('step')}_{i}") for i, call in enumerate(calls)]
        assistant: dict[str, Any] = {"role": "assistant", "content": str(record.get("content") or "")}
        if calls:
            assistant["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": str(call.get("name")), "arguments": _arguments(call)},
                }
                for call_id, call in zip(ids, calls, strict=True)
            ]
        messages.append(assistant)
        for call_id, seen in zip(ids, record.get("observations") or [], strict=False):
            messages.append({"role": "tool", "tool_call_id": call_id, "content": str(seen.get("output", ""))})
    return dict(redact_tree({"messages": messages, "tools": tools}))


def _arguments(call: dict[str, Any]) -> str:
    if isinstance(call.get("arguments"), dict):
        return json.dumps(call["arguments"], ensure_ascii=False)
    return str(call.get("raw_arguments") or "{}")  # a malformed call: what the model sent
