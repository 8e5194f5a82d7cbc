"""An ATIF trajectory (any agent's) as the RunRecord lancer's show and view read.

The leading system and user steps are the prompt (the first user message is the task's
description when the file does not carry lancer's task); every agent step is a step: its
message, reasoning (as a thinking event), tool calls, each call's observation (the result
whose source_call_id names it; text parts joined, image parts as screenshots resolved
against the file's folder), and metrics as usage. A system or user message later in the
trajectory becomes a step of its own with no call. Results tied to no call are shown
under a call named ``(observation)``. A trajectory lancer wrote carries its task, result
and patch in ``extra.lancer``, and reads back as the run it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lancer.core.records import RunRecord
from lancer.formats.atif import Content, ObservationResult, Step, Trajectory, read_trajectory_file

UNTIED = "(observation)"


def is_atif_file(path: Path) -> bool:
    """A .json file that names an ATIF schema version near its start."""
    if not path.is_file() or path.suffix != ".json":
        return False
    with path.open("rb") as f:
        start = f.read(1 << 20)
    return b'"ATIF-v' in start


def read_atif_run(path: Path) -> RunRecord:
    """The trajectory at ``path`` as a RunRecord; a LancerError says why it is not ATIF."""
    trajectory = read_trajectory_file(path)
    folder = path.parent.resolve()
    extra = trajectory.extra or {}
    saved: dict[str, Any] = extra["lancer"] if isinstance(extra.get("lancer"), dict) else {}
    prompt: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    for step in trajectory.steps:
        if step.source != "agent" and not steps:
            prompt.append({"role": step.source, "content": _text(step.message)})
        elif step.source != "agent":
            steps.append(_message_step(step))
        else:
            steps.append(_agent_step(step, folder))
    agent = trajectory.agent
    header: dict[str, Any] = dict(saved.get("header") or {})
    header.setdefault("model", agent.model_name or agent.name)
    header.setdefault("started_at", next((s.timestamp for s in trajectory.steps if s.timestamp), "?"))
    if not header.get("task"):
        users = [m["content"] for m in prompt if m["role"] == "user"]
        header["task"] = {
            "id": str(extra.get("task_id") or trajectory.session_id or path.parent.name),
            "title": str(extra.get("task_id") or f"{agent.name} trajectory"),
            "description": users[0] if users else "",
        }
    header["atif"] = {
        "schema_version": trajectory.schema_version,
        "agent": f"{agent.name} {agent.version}",
        "session_id": trajectory.session_id,
        "file": str(path),
        "reward": _harbor_reward(folder),
    }
    return RunRecord(
        dir=folder,
        header=header,
        prompt=prompt,
        steps=steps,
        final=saved.get("final") or _final(trajectory),
        result=saved.get("result"),
        patch=str(saved.get("patch") or ""),
    )


def _harbor_reward(folder: Path) -> float | None:
    """The verifier's reward of a Harbor trial (``TRIAL/agent/trajectory.json`` beside
    ``TRIAL/verifier/reward.txt``), or None when the file is not in one."""
    reward = folder.parent / "verifier" / "reward.txt"
    if folder.name != "agent" or not reward.is_file():
        return None
    try:
        return float(reward.read_text().strip())
    except ValueError:
        return None


def _agent_step(step: Step, folder: Path) -> dict[str, Any]:
    saved: dict[str, Any] = step.extra or {}
    # Numbered as lancer numbered it (an export of a lancer run), else as the file does.
    number = saved.get("lancer_step") if isinstance(saved.get("lancer_step"), int) else step.step_id
    events: list[dict[str, Any]] = []
    if step.reasoning_content:
        events.append({"type": "thinking", "text": step.reasoning_content})
    events += [e for e in saved.get("events", []) if isinstance(e, dict)]
    calls: list[dict[str, Any]] = [
        {"id": c.tool_call_id, "name": c.function_name, "arguments": c.arguments} for c in step.tool_calls or []
    ]
    results = step.observation.results if step.observation else []
    by_call = {r.source_call_id: r for r in results if r.source_call_id is not None}
    observations = [_observation(by_call.get(call["id"]), call, folder) for call in calls]
    for result in results:
        if result.source_call_id is None or result.source_call_id not in {c["id"] for c in calls}:
            calls.append({"id": None, "name": UNTIED, "arguments": {}})
            observations.append(_observation(result, calls[-1], folder))
    metrics = step.metrics
    record: dict[str, Any] = {
        "type": "step",
        "step": number,
        "content": _text(step.message),
        "tool_calls": calls,
        "observations": observations,
        "usage": {
            "input_tokens": metrics.prompt_tokens or 0,
            "output_tokens": metrics.completion_tokens or 0,
            "cache_read_tokens": metrics.cached_tokens or 0,
            "cost_usd": metrics.cost_usd,
        }
        if metrics
        else {},
        "events": events,
        "duration_s": saved.get("duration_s"),  # None: the file does not say
    }
    record.update({k: saved[k] for k in ("model_duration_s", "limiter_wait_s", "stuck") if k in saved})
    if step.timestamp:
        record["timestamp"] = step.timestamp
    return record


def _observation(result: ObservationResult | None, call: dict[str, Any], folder: Path) -> dict[str, Any]:
    if result is None:
        return {"tool_call_id": call["id"], "name": call["name"], "output": "", "images": [], "is_error": False}
    extra = result.extra or {}
    unsent = set(extra.get("not_sent_to_model") or [])
    images: list[str] = []
    saved: list[str] = []
    for part in result.content if isinstance(result.content, list) else []:
        if part.type == "image" and part.source is not None:
            where = part.source.path
            shown = where if "://" in where else str(folder / where)
            (saved if where in unsent else images).append(shown)
    return {
        "tool_call_id": result.source_call_id,
        "name": extra.get("tool", call["name"]),
        "output": _text(result.content),
        "images": images,
        "saved_images": saved,
        "is_error": bool(extra.get("is_error", False)),
    }


def _message_step(step: Step) -> dict[str, Any]:
    return {
        "type": "step",
        "step": step.step_id,
        "content": _text(step.message),
        "tool_calls": [],
        "observations": [],
        "usage": {},
        "events": [{"type": step.source, "detail": f"a {step.source} message, not the agent's"}],
        "duration_s": None,
    }


def _text(content: Content | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text or "" for part in content if part.type == "text")


def _final(trajectory: Trajectory) -> dict[str, Any]:
    totals = trajectory.final_metrics
    final: dict[str, Any] = {"exit_status": "not recorded", "detail": trajectory.notes or "an ATIF trajectory"}
    if totals is not None:
        final.update(
            input_tokens=totals.total_prompt_tokens,
            output_tokens=totals.total_completion_tokens,
            cache_read_tokens=totals.total_cached_tokens,
            cost_usd=totals.total_cost_usd,
            steps=totals.total_steps,
        )
    return final
