"""A lancer run as an ATIF trajectory (lancer/formats/atif.py).

The prompt's messages become the first steps (system, then user); each lancer step one
agent step: its text as the message, its thinking as reasoning_content, its tool calls, an
observation per call tied to it by source_call_id, and its tokens and cost as metrics.
Screenshots are image parts whose files are copied beside the trajectory, at the path they
had in the run directory (``screenshots/shot-001.png``). ``extra`` holds the task id,
verdict and dollars, and what lancer needs to show the run again (the task, result, patch).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from lancer.core.records import RunRecord, locate_run_file, run_file_tail, saved_pngs
from lancer.core.secrets import redact_tree
from lancer.formats.atif import (
    SCHEMA_VERSION,
    Agent,
    ContentPart,
    FinalMetrics,
    ImageSource,
    Metrics,
    Observation,
    ObservationResult,
    Step,
    ToolCall,
    Trajectory,
)

# Step-level facts lancer records beyond ATIF's metrics, kept in the step's extra.
_STEP_FACTS = ("duration_s", "model_duration_s", "limiter_wait_s", "stuck")


def run_to_atif(
    run: RunRecord, dest: Path, tools: list[dict[str, Any]], verdict: str | None, session_id: str
) -> Trajectory:
    """The run as a Trajectory; its screenshots are copied under ``dest`` (the trajectory's
    folder). Every string is redacted of the secrets known now."""
    steps: list[Step] = []
    for message in run.prompt:
        source = "system" if message.get("role") == "system" else "user"
        steps.append(Step(step_id=len(steps) + 1, source=source, message=str(message.get("content", ""))))
    for record in run.steps:
        steps.append(_agent_step(run, record, len(steps) + 1, dest))
    if not steps:  # ATIF needs a step: a run that died before its prompt still says what it was
        steps.append(Step(step_id=1, source="system", message="(the run recorded no prompt and no step)"))
    result = run.result or {}
    task = run.task
    trajectory = Trajectory(
        schema_version=SCHEMA_VERSION,
        session_id=session_id,
        agent=Agent(
            name="lancer",
            version=str(run.header.get("lancer_version", "unknown")),
            model_name=str(result.get("model", run.header.get("model", "unknown"))),
            tool_definitions=tools or None,
        ),
        steps=steps,
        final_metrics=_final_metrics(run, len(steps)),
        extra={
            "task_id": result.get("task_id", task.get("id")),
            "variant": result.get("variant", task.get("variant")),
            "price": result.get("price", task.get("price")),
            "verdict": verdict,
            "resolved": result.get("resolved"),
            "earned": result.get("earned"),
            "exit_status": result.get("exit_status", (run.final or {}).get("exit_status")),
            "lancer": {
                "header": {k: run.header[k] for k in ("task", "model", "started_at", "config") if k in run.header},
                "final": run.final,
                "result": run.result,
                "patch": run.patch,
            },
        },
    )
    return Trajectory.model_validate(redact_tree(trajectory.model_dump(mode="json", exclude_none=True)))


def _agent_step(run: RunRecord, record: dict[str, Any], step_id: int, dest: Path) -> Step:
    usage = record.get("usage") or {}
    thinking = [str(e.get("text", "")) for e in record.get("events", []) if e.get("type") == "thinking"]
    others = [e for e in record.get("events", []) if e.get("type") != "thinking"]
    calls = record.get("tool_calls") or []
    seen = record.get("observations") or []
    ids = [str(call.get("id") or f"call_{record.get('step')}_{i}") for i, call in enumerate(calls)]
    results = [_result(run, i, call, obs, dest) for i, call, obs in zip(ids, calls, seen, strict=False)]
    extra: dict[str, Any] = {"lancer_step": record.get("step")}
    extra.update({k: record[k] for k in _STEP_FACTS if record.get(k) is not None})
    if others:
        extra["events"] = others
    return Step(
        step_id=step_id,
        source="agent",
        model_name=None,
        message=str(record.get("content") or ""),
        reasoning_content="\n\n".join(thinking) or None,
        tool_calls=[
            ToolCall(
                tool_call_id=ids[i],
                function_name=str(call.get("name", "?")),
                # Unparsable arguments (a malformed call) are kept as the text the model sent.
                arguments=call["arguments"]
                if isinstance(call.get("arguments"), dict)
                else {"raw_arguments": call.get("raw_arguments")},
            )
            for i, call in enumerate(calls)
        ]
        or None,
        observation=Observation(results=results) if results else None,
        metrics=Metrics(
            prompt_tokens=int(usage.get("input_tokens", 0)),
            completion_tokens=int(usage.get("output_tokens", 0)),
            cached_tokens=int(usage.get("cache_read_tokens", 0)),
            cost_usd=usage.get("cost_usd"),
            extra={"cache_write_tokens": int(usage.get("cache_write_tokens", 0))},
        )
        if usage
        else None,
        extra=extra,
    )


def _result(run: RunRecord, call_id: str, call: dict[str, Any], seen: dict[str, Any], dest: Path) -> ObservationResult:
    output = str(seen.get("output", ""))
    attached = [str(p) for p in seen.get("images") or []]
    named = [p for p in saved_pngs(output) if p not in attached]
    parts: list[ContentPart] = []
    unattached: list[str] = []
    for raw, sent in [(p, True) for p in attached] + [(p, False) for p in named]:
        relative = _copy_image(run.dir, raw, dest)
        if relative is None:
            continue
        parts.append(ContentPart(type="image", source=ImageSource(media_type="image/png", path=relative)))
        if not sent:
            unattached.append(relative)
    extra: dict[str, Any] = {"tool": seen.get("name", call.get("name"))}
    if seen.get("is_error"):
        extra["is_error"] = True
    if unattached:
        extra["not_sent_to_model"] = unattached  # the model got the text only
    content: str | list[ContentPart] = [ContentPart(type="text", text=output), *parts] if parts else output
    return ObservationResult(source_call_id=call_id, content=content, extra=extra)


def _copy_image(run_dir: Path, raw: str, dest: Path) -> str | None:
    found = locate_run_file(run_dir, raw)
    tail = run_file_tail(raw)
    if found is None or tail is None:
        return None
    target = dest / tail
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(found, target)
    return tail.as_posix()


def _final_metrics(run: RunRecord, steps: int) -> FinalMetrics:
    totals = run.result or run.final or {}
    cached = sum(int((s.get("usage") or {}).get("cache_read_tokens", 0)) for s in run.steps)
    return FinalMetrics(
        total_prompt_tokens=int(totals.get("input_tokens", 0)),
        total_completion_tokens=int(totals.get("output_tokens", 0)),
        total_cached_tokens=int(totals.get("cache_read_tokens", cached)),
        total_cost_usd=totals.get("cost_usd"),
        total_steps=steps,
        extra={"lancer_steps": len(run.steps)},
    )
