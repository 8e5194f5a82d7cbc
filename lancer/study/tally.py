"""Figures over attempts (results.jsonl rows) for study: verdicts, dollars, price buckets.

The eval's own figures (pass@k, earned, ROI ...) are lancer/eval/metrics.py's: an eval's
summary.json when it wrote one, else the same function over its results.jsonl (an eval
still starting, or lone run directories). Added here: each attempt's verdict, the dollars
really earned and spent by all attempts, and pass rates by task price.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from lancer.core.dollars import Prices
from lancer.eval.attempt import is_error
from lancer.eval.metrics import pass_at_k, summarize

if TYPE_CHECKING:
    from lancer.core.records import EvalRecord

VERDICTS = ("resolved", "failed", "error", "interrupted", "running")
# Edges in dollars; the SWE-Lancer paper reads pass rates across task prices this way.
PRICE_EDGES = (250.0, 500.0, 1000.0, 2000.0, 5000.0)


def verdict(row: dict[str, Any]) -> str:
    """resolved | failed | error | interrupted | running, for one attempt."""
    exit_status = row.get("exit_status")
    if exit_status in ("running", "interrupted"):
        return str(exit_status)
    if is_error(row):
        return "error"
    return "resolved" if row.get("resolved") else "failed"


def is_graded(row: dict[str, Any]) -> bool:
    return verdict(row) in ("resolved", "failed")


def eval_summary(ev: EvalRecord) -> dict[str, Any]:
    """summary.json's content ("overall", "by_variant", "by_set"): the eval's own when written."""
    if ev.summary is not None and "overall" in ev.summary:
        return ev.summary
    return summarize(ev.rows, ev.tasks(), len(ev.attempt_numbers()))


def dollars(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """What the attempts really earned and cost, summed; roi None when a cost is unknown or 0.

    Earned covers the priced tasks (lancer/core/dollars.py): None when none is priced."""
    rows = list(rows)
    prices = Prices.of((str(row["task_id"]), row.get("price")) for row in rows)
    resolved: dict[str, float] = defaultdict(float)  # a task's price times its resolved attempts
    spent, unknown = 0.0, 0
    for row in rows:
        resolved[str(row["task_id"])] += verdict(row) == "resolved"
        if row.get("cost_usd") is None:
            unknown += 1
        else:
            spent += float(row["cost_usd"])
    earned = prices.total(resolved)
    roi = earned / spent if earned is not None and spent > 0 and not unknown else None
    return {"earned": earned, "unpriced_tasks": prices.unpriced, "spent": spent, "unknown_costs": unknown, "roi": roi}


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

    A task's pass rate is its pass@1 over its graded attempts; a bucket's is the mean over
    its tasks, so a task tried more often does not weigh more. Unpriced tasks are left out.
    """
    graded: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if is_graded(row):
            graded[str(row["task_id"])].append(row)
    buckets: dict[str, list[float]] = defaultdict(list)
    cheapest: dict[str, float] = {}
    for runs in graded.values():
        if runs[0].get("price") is None:
            continue  # a task without a price is in no price bucket (not "< $250")
        price = float(runs[0]["price"])
        label = price_bucket(price)
        buckets[label].append(pass_at_k(len(runs), sum(verdict(r) == "resolved" for r in runs), 1))
        cheapest[label] = min(cheapest.get(label, price), price)
    ordered = sorted(buckets.items(), key=lambda item: cheapest[item[0]])
    return [(label, len(rates), sum(rates) / len(rates)) for label, rates in ordered]


def _money(value: float) -> str:
    return f"${value / 1000:g}k" if value >= 1000 else f"${value:g}"
