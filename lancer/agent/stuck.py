"""Noticing a model that repeats itself: the same tool call getting the same observation
again and again, or two such calls taking turns.

Each executed call is reduced to a fingerprint of (tool, arguments, observation). A loop
is ``repeats`` equal fingerprints in a row, or ``alternations`` rounds of two different
ones taking turns (A B A B ...). A command whose output changes (a counter, a clock, a
file growing) is no loop: its fingerprints differ.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque


def fingerprint(name: str, arguments: object, output: str) -> str:
    data = json.dumps([name, arguments, output], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(data.encode(), digest_size=16).hexdigest()


class LoopDetector:
    def __init__(self, repeats: int, alternations: int) -> None:
        self.repeats, self.alternations = repeats, alternations
        self._recent: deque[str] = deque(maxlen=max(repeats, 2 * alternations))

    def add(self, print_: str) -> None:
        self._recent.append(print_)

    def looping(self) -> str | None:
        """What the loop is ("repeated" or "alternated"), or None."""
        recent = list(self._recent)
        if len(recent) >= self.repeats and len(set(recent[-self.repeats :])) == 1:
            return "repeated"
        window = recent[-2 * self.alternations :]
        if (
            len(window) == 2 * self.alternations
            and window[0] != window[1]
            and all(p == window[i % 2] for i, p in enumerate(window))
        ):
            return "alternated"
        return None
