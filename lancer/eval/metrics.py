"""The summary of an eval from its results rows: pass@k, dollars, cost, ROI. Pure functions.

The figures are defined in README.md ("Evaluations"). In short: error attempts (a harness
or API fault) are counted apart and left out of pass rates and dollars; pass@k is Chen et
al.'s unbiased estimator per task, averaged over tasks, and null for a k that some task has
fewer than k graded attempts for (an estimate from fewer attempts would be a guess); ROI
sets the expected dollars of one attempt per task against the expected cost of one attempt
per task. Dollars (and ROI) cover the priced tasks only and count the unpriced ones
(lancer/core/dollars.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from lancer.core.dollars import Prices
from lancer.eval.attempt import TIME_PARTS, is_error


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k attempts drawn from n (c of them correct) is correct."""
    if n <= 0 or not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    miss = 1.0  # C(n-c, k) / C(n, k) as a product, exact in floating point for any n
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


# The summary's breakdowns: its key, the task field grouped by (a task is in each of its
# tags' groups), and how a group is labelled in tables.
BREAKDOWNS = (
    ("by_variant", "variant", "variant"),
    ("by_set", "set", "set"),
    ("by_difficulty", "difficulty", "difficulty"),
    ("by_category", "category", "category"),
    ("by_tag", "tags", "tag"),
)


def task_groups(tasks: Iterable[dict[str, Any]], field: str) -> dict[str, set[str]]:
    """Each value of ``field`` among ``tasks`` (each tag, for a list), with its tasks' ids."""
    groups: dict[str, set[str]] = defaultdict(set)
    for task in tasks:
        value = task.get(field)
        for name in value if isinstance(value, list) else [] if value is None else [value]:
            groups[str(name)].add(task["id"])
    return dict(sorted(groups.items()))


def summarize(
    rows: Iterable[dict[str, Any]],
    tasks: Sequence[dict[str, Any]] | None = None,
    attempts: int | None = None,
) -> dict[str, Any]:
    """summary.json's content: ``overall``, and a breakdown (``by_variant``, ``by_set``,
    ``by_difficulty`` ...: BREAKDOWNS) for each task field some task has.

    ``rows``: results rows (interrupted ones may be included: they are counted apart).
    ``tasks``: the planned task set (dicts with id, variant, price, set, perhaps difficulty,
    category, tags), default the tasks seen in ``rows``; ``attempts``: K, default the
    highest attempt number seen.
    """
    rows = list(rows)
    if tasks is None:
        seen = {row["task_id"]: row for row in rows}
        tasks = [{"id": t, **{f: r.get(f) for f in ("variant", "price", "set")}} for t, r in seen.items()]
    k = attempts or max((row["attempt"] for row in rows), default=1)
    summary: dict[str, Any] = {"attempts_per_task": k, "overall": summarize_group(rows, tasks, k)}
    for key, field, _ in BREAKDOWNS:
        groups = task_groups(tasks, field)
        if groups:
            summary[key] = {
                group: summarize_group(
                    [r for r in rows if r["task_id"] in ids], [t for t in tasks if t["id"] in ids], k
                )
                for group, ids in groups.items()
            }
    return summary


def summarize_group(rows: list[dict[str, Any]], tasks: Sequence[dict[str, Any]], k: int) -> dict[str, Any]:
    finished = [r for r in rows if r["exit_status"] != "interrupted"]
    errors = [r for r in finished if is_error(r)]
    graded = [r for r in finished if not is_error(r)]
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in graded:
        by_task[row["task_id"]].append(row)
    # Dollars cover the priced tasks only (lancer/core/dollars.py): an unpriced one claims none.
    prices = Prices.of((t["id"], t.get("price")) for t in tasks)
    pass_at = _pass_at(by_task, k)
    short = {str(j): sum(len(runs) < j for runs in by_task.values()) for j in range(1, k + 1)}
    earned = prices.total({t: p[0] for t, p in pass_at.items()})
    earned_at_k = prices.total({t: p[-1] for t, p in pass_at.items()}) if not short[str(k)] else None
    possible = prices.total(dict.fromkeys(pass_at, 1.0))
    resolved = sum(bool(r["resolved"]) for r in graded)
    costs = [r.get("cost_usd") for r in finished]
    cost = None if None in costs else sum(c for c in costs if c is not None)
    # ROI sets what the priced tasks earned against what attempting them cost.
    priced_rows = [r for r in finished if r["task_id"] in prices.priced]
    one_pass_cost = _one_attempt_per_task_cost(priced_rows) if cost is not None else None
    rewards = [float(r["reward"]) for r in graded if r.get("reward") is not None]
    return {
        "tasks": len(tasks),
        "attempts": len(finished),
        "graded": len(graded),
        "resolved": resolved,
        "pass_at": {
            str(j): _round(sum(p[j - 1] for p in pass_at.values()) / len(pass_at))
            if pass_at and not short[str(j)]
            else None
            for j in range(1, k + 1)
        },
        "pass_at_short": {j: n for j, n in short.items() if n},
        "earned": _round(earned),
        "earned_at_k": _round(earned_at_k),
        "possible": _round(possible),
        "unpriced_tasks": prices.unpriced,
        "earn_rate": _round(earned / possible) if possible and earned is not None else None,
        "cost_usd": _round(cost),
        "cost_per_resolved": _round(cost / resolved) if cost is not None and resolved else None,
        "roi": _round(earned / one_pass_cost) if one_pass_cost and earned is not None else None,
        "errors": len(errors),
        # Verdicts with no per-test outcomes behind them (README "Grading"): fewer is better.
        "exit_code_verdicts": sum(r.get("grade_basis") == "exit code" for r in finished),
        "error_details": [
            {
                "task_id": r["task_id"],
                "attempt": r["attempt"],
                "exit_status": r["exit_status"],
                "grade_status": r.get("grade_status"),
                "reason": r.get("detail") or "",
            }
            for r in errors
        ],
        "interrupted": len(rows) - len(finished),
        "not_run": max(len(tasks) * k - len(rows), 0),
        "mean_time_s": mean_times(finished),
        # Reward-file tasks (Harbor's): the mean reward of their graded attempts, partial ones too.
        **({"mean_reward": _round(sum(rewards) / len(rewards))} if rewards else {}),
    }


def mean_times(rows: Iterable[dict[str, Any]]) -> dict[str, float | None]:
    """The mean seconds of an attempt's setup, agent and grading, over the attempts that
    recorded each (an attempt that never reached grading has no grading time)."""
    rows = list(rows)
    means: dict[str, float | None] = {}
    for part in TIME_PARTS:
        values = [float(r[part]) for r in rows if r.get(part) is not None]
        means[part] = round(sum(values) / len(values), 3) if values else None
    return means


def _pass_at(by_task: dict[str, list[dict[str, Any]]], k: int) -> dict[str, list[float]]:
    """Each task's pass@1..k; a k beyond its graded attempts is left out (the list is shorter)."""
    out = {}
    for task_id, runs in by_task.items():
        n, c = len(runs), sum(bool(r["resolved"]) for r in runs)
        out[task_id] = [pass_at_k(n, c, j) for j in range(1, min(k, n) + 1)]
    return out


def _one_attempt_per_task_cost(rows: list[dict[str, Any]]) -> float:
    costs: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        costs[row["task_id"]].append(float(row["cost_usd"]))
    return sum(sum(c) / len(c) for c in costs.values())


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
