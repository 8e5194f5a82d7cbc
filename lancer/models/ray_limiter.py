"""The shared rate limit across the nodes of a Ray cluster (``pip install 'lancer-bench[ray]'``).

One ``RateLimitActor`` per eval holds the limits' state (a ``LocalLimiter``); on each node
an attempt's processes reach it through a ``LimiterServer`` whose limiter is an
``ActorLimiter``, so a cluster of any size sends no more than ``model.max_connections``
requests at once, and a Retry-After pauses every node. A slot held by a node that dies
stays taken (the actor cannot tell a dead node from a slow reply) until the eval ends.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import asdict
from typing import Any

import ray

from lancer.models.limiter import Limits, LocalLimiter, Slot

MAX_WAITERS = 1_000


@ray.remote(num_cpus=0)
class RateLimitActor:
    """Create it with ``.options(max_concurrency=MAX_WAITERS)``: every waiter blocks a thread."""

    def __init__(self) -> None:
        self._limiter = LocalLimiter()
        self._slots: dict[int, Slot] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def acquire(self, endpoint: str, limits: dict[str, Any], tokens: int) -> tuple[int, float]:
        slot = self._limiter.acquire(endpoint, Limits(**limits), tokens)
        with self._lock:
            slot_id = next(self._ids)
            self._slots[slot_id] = slot
        return slot_id, slot.waited_s

    def release(self, slot_id: int, tokens: int) -> None:
        with self._lock:
            slot = self._slots.pop(slot_id, None)
        if slot is not None:
            slot.release(tokens)

    def pause(self, endpoint: str, seconds: float) -> None:
        self._limiter.pause(endpoint, seconds)


class ActorLimiter:
    """The ``Limiter`` shape, on top of a ``RateLimitActor``."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    def acquire(self, endpoint: str, limits: Limits, tokens: int) -> Slot:
        slot_id, waited = ray.get(self._actor.acquire.remote(endpoint, asdict(limits), tokens))
        return _ActorSlot(self._actor, slot_id, waited)

    def pause(self, endpoint: str, seconds: float) -> None:
        ray.get(self._actor.pause.remote(endpoint, seconds))


class _ActorSlot:
    def __init__(self, actor: Any, slot_id: int, waited_s: float) -> None:
        self._actor, self._id, self.waited_s = actor, slot_id, waited_s

    def release(self, tokens: int) -> None:
        ray.get(self._actor.release.remote(self._id, tokens))
