"""The model of one attempt: ``--model`` turned into a Model for one task.

``lancer.models.create_model`` does the work, given the task: task-bound models (``oracle``,
``scripted:DIR``) read what they play from it.
``check_model_spec`` runs on the driver before anything starts, so a spec that cannot serve
some task of the set is one error up front, not a failed attempt later.
"""

from __future__ import annotations

from collections.abc import Sequence

from lancer.core.config import RunConfig
from lancer.core.errors import ConfigError
from lancer.core.model import TaskBound
from lancer.core.tasks import Task
from lancer.models import Model, create_model, known_price


def model_for_task(spec: str, task: Task, config: RunConfig) -> Model:
    """A fresh model for one attempt of ``task`` (raises a LancerError if it cannot be made)."""
    return create_model(spec, config.model, task)


def check_model_spec(spec: str, tasks: Sequence[Task], config: RunConfig) -> Model:
    """Raise a one-line LancerError unless ``spec`` can serve every task; the model for the first.

    A model that is the same for every task is made once; one bound to its task (``oracle``,
    ``scripted:DIR``) is made for each, so a task it cannot serve is named up front.
    """
    first = model_for_task(spec, tasks[0], config)
    if isinstance(first, TaskBound):
        for task in tasks[1:]:
            model_for_task(spec, task, config)
    return first


def check_priced(spec: str, config: RunConfig, model: Model | None = None) -> None:
    """Raise ConfigError unless ``spec``'s calls are priced, as a budget needs. Without ``model``
    it is told from the spec alone where it can be, before a key or a server is looked for:
    the refusal a user can act on first comes first."""
    priced = known_price(spec, config.model) if model is None else getattr(model, "price", True) is not None
    if priced is False:
        raise ConfigError(
            f"--budget needs known prices and {spec}'s are unknown: set model.price in --config, or drop --budget"
        )
