"""Verdicts from a reward file, as Harbor's verifiers write them: ``reward.txt`` holds a
number, ``reward.json`` an object of numbers (``{"reward": 0.5}``, or one per metric).

The reward is ``reward`` when the object has it, its one metric when it has one, else the
mean of its metrics (``Reward.source`` names which); every metric is kept. 1 (or more)
resolves the task, anything less is a failed fix whose reward is recorded. No
reward at all is a harness fault: the verifier never said anything about the fix.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

REWARD_TXT = "reward.txt"
REWARD_JSON = "reward.json"


class RewardError(Exception):
    """The reward file is missing or not a number (an error, never a failed fix)."""


@dataclass
class Reward:
    value: float
    # reward.json's metrics besides "reward" (without one, the reward is their mean).
    metrics: dict[str, float] = field(default_factory=dict)
    # What the verdict rests on: "reward.txt", "reward.json's reward", "reward.json's
    # accuracy" (its one metric), "the mean of reward.json's correctness, performance".
    source: str = REWARD_TXT

    @property
    def resolved(self) -> bool:
        return self.value >= 1.0

    def describe(self) -> str:
        parts = ", ".join(f"{name} {value:g}" for name, value in self.metrics.items())
        return f"reward {self.value:g}" + (f" ({parts})" if parts else "")


def parse_reward(name: str, data: bytes) -> Reward:
    """The reward in ``data``, the content of ``name`` (reward.txt or reward.json)."""
    text = data.decode(errors="replace").strip()
    if name == REWARD_TXT:
        return Reward(_number(text, name))
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as e:
        raise RewardError(f"{name} is not JSON ({e.msg})") from None
    if isinstance(loaded, int | float) and not isinstance(loaded, bool):
        return Reward(_number(loaded, name), source=name)
    if not isinstance(loaded, dict) or not loaded:
        raise RewardError(f'{name} must be an object of numbers, e.g. {{"reward": 1}}')
    metrics = {str(key): _number(value, f"{name}'s {key}") for key, value in loaded.items()}
    if "reward" in metrics:
        return Reward(metrics.pop("reward"), metrics, f"{name}'s reward")
    if len(metrics) == 1:
        ((only, value),) = metrics.items()
        return Reward(value, metrics, f"{name}'s {only}")
    return Reward(sum(metrics.values()) / len(metrics), metrics, f"the mean of {name}'s {', '.join(metrics)}")


def _number(value: object, where: str) -> float:
    if isinstance(value, bool):
        raise RewardError(f"{where} is {value!r}, not a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RewardError(f"{where} is {str(value)[:40]!r}, not a number") from None
    if not math.isfinite(number):
        raise RewardError(f"{where} is {number}, not a finite number")
    return number
