"""Figures over attempts (results.jsonl rows), for study: verdicts, pass@k, dollars, price buckets.

An eval's summary.json is the reference when it exists (``lancer eval`` writes it); these
functions give the same keys for lone run directories, for an eval still starting, per
price bucket, and for the dollars actually earned and spent. Errors (harness or model)
and interrupted attempts are never counted as the model's failures: they are not graded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from math import comb
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.records import EvalRecord

ERROR_EXITS = frozenset({"error", "model_error"})
VERDICTS = ("resolved", "failed", "error", "interrupted", "running")
# Edges in dollars; the SWE-Lancer paper reads pass rates across task prices this way.
PRICE_EDGES = (250.0, 500.0, 1000.0, 2000.0, 5000.0)


def verdict(row: dict[str, Any]) -> str:
    """resolved | failed | error | interrupted | running, for one attempt."""
    exit_status = row.get("exit_status")
    if exit_status == "running":
        return "running"
    if exit_status in ERROR_EXITS or row.get("grade_status") == "error":
        return "error"
    if exit_status == "interrupted":
        return "interrupted"
    return "resolved" if row.get("resolved") else "failed"


def is_graded(row: dict[str, Any]) -> bool:
    return verdict(row) in ("resolved", "failed")


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of Chen et al. (2021): n graded attempts, c resolved."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def summarize(rows: list[dict[str, Any]], attempts: int | None = None) -> dict[str, Any]:
    """summary.json's keys over these rows (attempts: K of pass@K; default the most any task has)."""
    per_task = _per_task(rows)
    k_max = attempts or max((len(t["graded"]) for t in per_task.values()), default=0)
    pass_at: dict[str, float | None] = {}
    for k in range(1, k_max + 1):
        values = [pass_at_k(len(t["graded"]), t["resolved"], k) for t in per_task.values() if len(t["graded"]) >= k]
        pass_at[str(k)] = sum(values) / len(values) if values else None
    graded_tasks = [t for t in per_task.values() if t["graded"]]
    earned = sum(t["price"] * pass_at_k(len(t["graded"]), t["resolved"], 1) for t in graded_tasks)
    k_top = max((len(t["graded"]) for t in graded_tasks), default=1) if attempts is None else attempts
    earned_at_k = sum(
        t["price"] * pass_at_k(len(t["graded"]), t["resolved"], min(k_top, len(t["graded"]))) for t in graded_tasks
    )
    possible = sum(t["price"] for t in graded_tasks)
    costs = [row.get("cost_usd") for row in rows]
    cost = None if any(c is None for c in costs) else float(sum(c for c in costs if c is not None))
    resolved = sum(1 for row in rows if verdict(row) == "resolved")
    errors = [row for row in rows if verdict(row) == "error"]
    return {
        "tasks": len(per_task),
        "attempts": len(rows),
        "graded": sum(len(t["graded"]) for t in per_task.values()),
        "resolved": resolved,
        "pass_at": pass_at,
        "earned": earned,
        "earned_at_k": earned_at_k,
        "possible": possible,
        "earn_rate": earned / possible if possible else None,
        "cost_usd": cost,
        "cost_per_resolved": cost / resolved if cost is not None and resolved else None,
        "roi": earned / cost if cost else None,
        "errors": len(errors),
        "error_details": [
            {"task_id": r["task_id"], "attempt": r.get("attempt"), "reason": r.get("detail") or r.get("exit_status")}
            for r in errors
        ],
    }


def eval_summary(ev: EvalRecord) -> dict[str, Any]:
    """summary.json when the eval wrote it, else the same figures from its results.jsonl."""
    if ev.summary is not None:
        return ev.summary
    attempts = len(ev.attempt_numbers())
    return {**summarize(ev.rows, attempts), "by_variant": by_variant(ev.rows, attempts)}


def dollars(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """What the attempts really earned and cost, summed; roi None when a cost is unknown or 0."""
    earned, spent, unknown = 0.0, 0.0, 0
    for row in rows:
        earned += float(row.get("earned") or 0.0) if verdict(row) == "resolved" else 0.0
        if row.get("cost_usd") is None:
            unknown += 1
        else:
            spent += float(row["cost_usd"])
    roi = earned / spent if spent > 0 and not unknown else None
    return {"earned": earned, "spent": spent, "unknown_costs": unknown, "roi": roi}


def by_variant(rows: list[dict[str, Any]], attempts: int | None = None) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[str(row.get("variant") or "?")].append(row)
    return {variant: summarize(group, attempts) for variant, group in sorted(groups.items())}


def price_bucket(price: float) -> str:
    """The label of the price bucket a task falls in, e.g. "$250-500"."""
    lower = 0.0
    for edge in PRICE_EDGES:
        if price < edge:
            return f"{_money(lower)}-{_money(edge)}" if lower else f"< {_money(edge)}"
        lower = edge
    return f"≥ {_money(lower)}"


def pass_rate_by_bucket(rows: list[dict[str, Any]]) -> list[tuple[str, int, float]]:
    """(bucket, tasks, pass rate) for each price bucket that has graded tasks, cheapest first.

    A task's pass rate is its resolved share of graded attempts (pass@1); a bucket's is
    the mean over its tasks, so a task tried more often does not weigh more.
    """
    buckets: dict[str, list[float]] = defaultdict(list)
    order: dict[str, float] = {}
    for task in _per_task(rows).values():
        if task["graded"]:
            label = price_bucket(task["price"])
            buckets[label].append(task["resolved"] / len(task["graded"]))
            order[label] = min(order.get(label, task["price"]), task["price"])
    return [
        (label, len(rates), sum(rates) / len(rates))
        for label, rates in sorted(buckets.items(), key=lambda kv: order[kv[0]])
    ]


def _per_task(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    tasks: dict[str, dict[str, Any]] = {}
    for row in rows:
        task = tasks.setdefault(
            str(row["task_id"]), {"price": float(row.get("price") or 0.0), "graded": [], "resolved": 0}
        )
        if is_graded(row):
            task["graded"].append(row)
            task["resolved"] += verdict(row) == "resolved"
    return tasks


def _money(value: float) -> str:
    return f"${value / 1000:g}k" if value >= 1000 else f"${value:g}"
