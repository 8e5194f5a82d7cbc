"""``lancer eval``: a task set x K attempts, in parallel, resumable, under one budget.

The pieces, each a small module:

- ``attempt``: ``AttemptJob``, a picklable (and JSON-able) description of one attempt, and
  ``run_attempt(job) -> row``, which runs it with the ordinary runner wherever it is called
  and returns its results.jsonl row (``node`` = the host that ran it).
- ``executor``: the ``Executor`` protocol (``slots``, ``submit``, ``wait``, ``interrupt``,
  ``close``) and ``create_executor(name, workers=..., address=..., model=...)``, which finds
  ``local`` (``lancer.eval.local.LocalExecutor``: a few worker processes forked from one that
  imported lancer (``forks``), attempts as threads) or ``ray``
  (``lancer.eval.ray_executor.RayExecutor``, imported only when asked for).
- ``task_models``: the model of one attempt for one task (the place for task-aware specs
  such as ``oracle`` and ``scripted:DIR``), and the check of a spec against the whole set.
- ``metrics``: the pure summary math (pass@k, dollars, ROI) over a list of rows.
- ``taskset``, ``store``, ``driver``, ``progress``, ``cli``: the command itself.
"""
