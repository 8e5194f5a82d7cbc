"""Executors run attempts somewhere: worker processes here (``local``) or Ray tasks (``ray``).

The driver (``lancer.eval.driver``) owns scheduling: it keeps at most ``slots`` attempts in
flight, decides (budget, Ctrl-C) whether another may start, and writes every output file.
An executor only runs what it is given and hands back rows:

- ``slots``: how many attempts it runs at once (``--workers``).
- ``submit(job)``: start one attempt now (the driver never submits more than ``slots``).
- ``wait(timeout)``: the rows (``lancer.eval.attempt.run_attempt``'s return value) of the
  attempts that finished since the last call; blocks up to ``timeout`` seconds for the
  first, returns ``[]`` if none finished. An attempt that crashed (its process died, its
  node vanished) still comes back, as an ``error_row``: ``wait`` never raises for one
  attempt's failure. The row's run directory is at ``job.run_dir`` on the driver when the
  row is returned, whichever machine ran it.
  A row may carry ``discarded``: earlier runs of the same attempt that the executor threw
  away and ran again (``[{"task_id", "attempt", "cost_usd"}]``), for the budget.
- ``interrupt()``: Ctrl-C. Every attempt in flight ends as ``interrupted`` (outputs
  written, sandbox removed) and its row still comes back from ``wait``. Idempotent.
- ``placement()``: the node (host or Ray node address) of each attempt in flight that has
  started on one, by ``(task_id, attempt)``: the progress display's per-node load.
- ``notices()``: what happened since the last call that is no row, one line each (an
  attempt lost with its node and run again on another).
- ``close()``: free everything (processes, cluster connections); attempts still in flight
  are interrupted and waited for first.

``create_executor(name, workers=N, address=ADDR, model=SPEC)`` finds an executor class by
name in ``EXECUTORS`` (module imported only when used) and calls it as
``cls(workers=N, address=ADDR, model=SPEC)``; ``address`` is ``--ray-address`` (None for
local), ``model`` the attempts' ``--model`` spec (the local executor's worker processes
import its provider before the first attempt arrives).
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from lancer.core.errors import ConfigError
from lancer.eval.attempt import AttemptJob

EXECUTORS = {
    "local": "lancer.eval.local:LocalExecutor",
    "ray": "lancer.eval.ray_executor:RayExecutor",
}


class Executor(Protocol):
    slots: int

    def submit(self, job: AttemptJob) -> None: ...

    def wait(self, timeout: float) -> list[dict[str, Any]]: ...

    def placement(self) -> dict[tuple[str, int], str]: ...

    def notices(self) -> list[str]: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


def create_executor(name: str, *, workers: int, address: str | None = None, model: str | None = None) -> Executor:
    target = EXECUTORS.get(name)
    if target is None:
        raise ConfigError(f"unknown executor {name!r}: use --executor {' or '.join(EXECUTORS)}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        hint = " (pip install 'lancer-bench[ray]')" if name == "ray" else ""
        raise ConfigError(f"executor {name!r} is not available: {e}{hint}") from None
    executor: Executor = getattr(module, attr)(workers=workers, address=address, model=model)
    return executor
