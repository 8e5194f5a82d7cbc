"""Reading recorded runs: one run step by step, or many side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.errors import LancerError
from agent.trajectory import read_trajectory


def load_run(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """A run's trajectory records and its result (None if the run never finished)."""
    path = run_dir / "trajectory.jsonl" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise LancerError(f"{run_dir} holds no trajectory.jsonl (give a run directory written by lancer run)")
    result_path = path.parent / "result.json"
    result = json.loads(result_path.read_text()) if result_path.is_file() else None
    return read_trajectory(path), result


def render_run(run_dir: Path, max_chars: int = 800) -> str:
    """A run as text: the task and model, then each step's thought, calls and what came back."""
    records, result = load_run(run_dir)
    header = records[0] if records and records[0].get("type") == "header" else {}
    task = header.get("task", {})
    price = task.get("price", 0)
    lines = [f"{task.get('id', '?')} ({task.get('variant', '?')}, ${price:,.0f}) with {header.get('model', '?')}"]
    for step in (r for r in records if r.get("type") == "step"):
        lines.append(f"\n── step {step['step']}  ({step.get('duration_s', 0):.1f}s, {_tokens(step.get('usage', {}))})")
        if step.get("content"):
            lines.append(_clip(step["content"], max_chars))
        for call, seen in zip(step.get("tool_calls", []), step.get("observations", []), strict=False):
            lines.append(f"$ {call['name']} {json.dumps(call.get('arguments'), ensure_ascii=False)}")
            lines.append(_indent(_clip(seen.get("output", ""), max_chars)))
    final = next((r for r in records if r.get("type") == "final"), None)
    if final is None:
        lines.append("\n(the run did not finish: no final line)")
    else:
        lines.append(f"\nexit: {final.get('exit_status')}  {final.get('detail', '')}")
    if result is not None:
        lines.append(f"resolved: {result['resolved']}  earned: ${result['earned']:,.2f}  cost: {_cost(result)}")
    return "\n".join(lines)


def compare_runs(run_dirs: list[Path]) -> str:
    """One row per run and a total: what each earned against what it cost."""
    rows = [("run", "task", "model", "exit", "steps", "resolved", "earned", "cost")]
    earned = possible = cost = 0.0
    for run_dir in run_dirs:
        _, result = load_run(run_dir)
        if result is None:
            rows.append((run_dir.name, "?", "?", "unfinished", "-", "-", "-", "-"))
            continue
        rows.append(
            (
                run_dir.name,
                result["task_id"],
                result.get("model", "?"),
                result["exit_status"],
                str(result["steps"]),
                "yes" if result["resolved"] else "no",
                f"${result['earned']:,.2f}",
                _cost(result),
            )
        )
        earned += result["earned"]
        possible += result["price"]
        cost += result.get("cost_usd") or 0.0
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    rate = f"{earned / possible:.1%}" if possible else "-"
    table.append(f"\nearned ${earned:,.2f} of ${possible:,.2f} ({rate}) for ${cost:.4f} of model calls")
    return "\n".join(table)


def _tokens(usage: dict[str, Any]) -> str:
    return f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out"


def _cost(result: dict[str, Any]) -> str:
    return "unknown" if result.get("cost_usd") is None else f"${result['cost_usd']:.4f}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit} more characters]"


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.rstrip("\n").splitlines()) or "  [no output]"
