"""``lancer show RUN [--step N]``: a recorded run as text, the task first, then its steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lancer.core.dollars import earned_of
from lancer.core.errors import LancerError
from lancer.core.records import run_file_tail
from lancer.core.text import price_text
from lancer.study.runs import open_run


def render_run(run_dir: Path, max_chars: int = 800, step: int | None = None) -> str:
    """The task and every step (texts cut to ``max_chars``), or one ``step`` in full."""
    run = open_run(run_dir)
    header, steps, result = run.header, run.steps, run.result
    task = run.task
    price = price_text(task.get("price"), 0)
    lines = [f"{task.get('id', '?')} ({task.get('variant', '?')}, {price}) with {header.get('model', '?')}"]
    if "atif" in header:
        atif = header["atif"]
        lines.append(f"an {atif['schema_version']} trajectory by {atif['agent']} (session {atif['session_id']})")
        if atif.get("reward") is not None:
            lines.append(f"reward: {atif['reward']:g} (the Harbor trial's verifier)")
    if step is not None:
        chosen = [s for s in steps if s.get("step") == step]
        if not chosen:
            have = f"steps 1-{len(steps)}" if steps else "no steps"
            raise LancerError(f"{run_dir} has no step {step} (it has {have})")
        return "\n".join([*lines, *_step(chosen[0], limit=None)])
    lines += _task_text(task, run.prompt)
    for record in steps:
        lines += _step(record, max_chars)
    final = run.final
    if final is None:
        lines.append("\n(the run did not finish: no final line)")
    else:
        detail = final.get("detail", "")
        lines.append(
            f"\nexit: {final.get('exit_status')}" + (f"  ({detail})" if detail != final.get("exit_status") else "")
        )
        totals = [f"{final[k]} {label}" for k, label in _TOTALS if final.get(k) is not None]
        if result is None and totals:  # an ATIF trajectory's final metrics: no lancer result to say them
            lines.append("totals: " + ", ".join(totals))
        if "model_wait_s" in final:
            lines.append(
                f"waited {final['model_wait_s']:.1f}s on the model, {final['limiter_wait_s']:.1f}s on the rate limit"
            )
    if result is not None:
        earned = earned_of(result["earned"], result.get("price"))
        lines.append(f"resolved: {result['resolved']}  earned: {earned}  cost: {_cost(result)}")
    return "\n".join(lines)


_TOTALS = (("steps", "steps"), ("input_tokens", "prompt tokens"), ("output_tokens", "completion tokens"),
           ("cache_read_tokens", "cached tokens"), ("cost_usd", "USD"))  # fmt: skip


def _task_text(task: dict[str, Any], prompt: list[dict[str, Any]]) -> list[str]:
    if "description" not in task:  # recorded before headers held the task text: show what the model read
        user = [m["content"] for m in prompt if m.get("role") == "user"]
        return ["", *user[:1]]
    lines = [
        "",
        f"# {task.get('title', '')}",
        f"Price: {price_text(task.get('price'), 0)}",
        "",
        task["description"].rstrip(),
    ]
    for proposal in task.get("proposals", []):
        lines += ["", f"## Proposal {proposal['id']}", proposal["content"].rstrip()]
    return lines


def _step(record: dict[str, Any], limit: int | None) -> list[str]:
    lines = [f"\n── step {record['step']}  ({_step_facts(record)})"]
    if record.get("content"):
        lines.append(_clip(record["content"], limit, record["step"]))
    for call, seen in zip(record.get("tool_calls", []), record.get("observations", []), strict=False):
        arguments = json.dumps(call.get("arguments"), ensure_ascii=False)
        lines.append(f"$ {call['name']} {_clip(arguments, limit, record['step'])}")
        lines.append(_indent(_clip(seen.get("output", ""), limit, record["step"])))
        lines += [f"  [image: {path}]" for path in seen.get("images", [])]
        # Screenshots the model was not sent, unless the output names them already (lancer's tools do).
        named = seen.get("output", "")
        lines += [
            f"  [image, not sent to the model: {path}]"
            for path in seen.get("saved_images", [])
            if str(run_file_tail(path) or path) not in named
        ]
    for event in record.get("events", []):
        details = ", ".join(f"{k}: {v}" for k, v in event.items() if k != "type")
        lines.append(f"  ! {event.get('type', 'event')}: {details}")
    return lines


def _step_facts(record: dict[str, Any]) -> str:
    usage = record.get("usage", {})
    facts = [
        "time not recorded" if record.get("duration_s") is None else f"{record['duration_s']:.1f}s",
        f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out",
    ]
    if record.get("limiter_wait_s"):
        facts.append(f"{record['limiter_wait_s']:.1f}s waiting for the rate limit")
    if usage.get("cost_usd") is None and usage:
        facts.append("cost unknown")
    elif usage.get("cost_usd"):
        facts.append(f"${usage['cost_usd']:.4f}")
    retries = sum(1 for e in record.get("events", []) if e.get("type") == "retry")
    if retries:
        facts.append(f"{retries} {'retry' if retries == 1 else 'retries'}")
    return ", ".join(facts)


def _cost(result: dict[str, Any]) -> str:
    return "unknown" if result.get("cost_usd") is None else f"${result['cost_usd']:.4f}"


def _clip(text: str, limit: int | None, step: int) -> str:
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters; --step {step} shows them]"


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.rstrip("\n").splitlines()) or "  [no output]"
