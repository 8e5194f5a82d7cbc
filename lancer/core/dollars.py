"""Dollars over tasks some of which have no price, by one rule for every report.

A task may have no price (a SWE-bench instance without ``--price-from``, a Harbor task
without metadata.price). Such a task claims no dollars, not $0: dollar totals cover the
priced tasks only and say how many had none, and a set of tasks none of which is priced
has no dollar totals at all (None). Pass rates are not this module's: an unpriced task
counts in them like any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lancer.core.text import price_text


@dataclass(frozen=True)
class Prices:
    """The prices of a set of tasks: the priced ones' by task id, and how many had none."""

    priced: dict[str, float]
    unpriced: int

    @classmethod
    def of(cls, prices: Iterable[tuple[str, float | None]]) -> Prices:
        """From (task id, price or None) pairs; a task listed twice counts once."""
        by_task = dict(prices)
        priced = {task: float(price) for task, price in by_task.items() if price is not None}
        return cls(priced, len(by_task) - len(priced))

    def total(self, weights: Mapping[str, float]) -> float | None:
        """Each priced task's price times its weight (its pass rate, or 1 for what was
        possible), summed; unpriced tasks add nothing. None when every task is unpriced."""
        if self.unpriced and not self.priced:
            return None
        return sum(self.priced[task] * weight for task, weight in weights.items() if task in self.priced)


def unpriced_note(unpriced: int) -> str:
    """ " (2 tasks unpriced)" after a dollar total that left tasks out; "" when none were."""
    if not unpriced:
        return ""
    return f" ({unpriced} task{'s' if unpriced != 1 else ''} unpriced)"


def dollars_text(value: float | None, unpriced: int = 0, digits: int = 2) -> str:
    """A dollar total as every report shows it: "$500.00 (2 tasks unpriced)", or "no price"."""
    return price_text(value, digits) + unpriced_note(unpriced)


def earned_of(earned: float | None, possible: float | None, unpriced: int = 0) -> str:
    """ "$350.00 of $500.00 (2 tasks unpriced)"; "no price (2 tasks unpriced)" when none is priced."""
    if earned is None and possible is None:
        return dollars_text(None, unpriced)
    return f"{price_text(earned)} of {dollars_text(possible, unpriced)}"
