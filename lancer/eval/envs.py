"""An eval's task environments: each built once, in the background, before its task's attempts.

A task with ``setup`` commands gets its working tree and environment from lancer's cache
(lancer.sandbox.envcache; in docker, an image: lancer.sandbox.docker.envimage). Building
them here, one build per task and up to ``workers`` at once, means the first attempts of
a task do not each run its setup (they would wait on one another's lock), and a setup
that fails is one error for the task: its attempts are not run, and are counted as
errors, never as failed fixes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from lancer.core.config import RunConfig
from lancer.core.errors import SetupError
from lancer.core.sandbox import SandboxSpec
from lancer.core.tasks import Task


@dataclass
class EnvBuild:
    task_id: str
    seconds: float = 0.0
    outcome: str = ""  # "built KEY" or "reused KEY"
    error: str | None = None  # why it could not be built


def needs_env(task: Task, config: RunConfig) -> bool:
    """Whether the task's sandboxes start from a cached setup (an image's own setup, as
    SWE-Lancer's run in docker, runs in every container instead; a SWE-bench instance's
    own image needs none)."""
    spec = _spec(task, config)
    return bool(spec.setup) and not (config.sandbox.kind == "docker" and spec.image_command)


def _spec(task: Task, config: RunConfig) -> SandboxSpec:
    spec = task.sandbox_spec(for_agent=True, config=config.sandbox)
    if config.sandbox.kind == "docker" and spec.without_image is not None:
        from lancer.sandbox.docker import resolve_image

        return resolve_image(spec)
    return spec


class EnvBuilds:
    """Builds running in daemon threads (a Ctrl-C'd eval does not wait for them: what a
    killed build leaves is cleared by the next build of that entry and by prune)."""

    def __init__(self, tasks: list[Task], config: RunConfig, workers: int) -> None:
        self._config = config
        self._slots = threading.Semaphore(workers)
        self._lock = threading.Lock()
        self._waiting = {task.id for task in tasks}
        self._finished: list[EnvBuild] = []
        self._any_finished = threading.Event()
        for task in tasks:
            threading.Thread(target=self._build, args=(task,), daemon=True, name=f"env-{task.id}").start()

    def _build(self, task: Task) -> None:
        with self._slots:
            build, started = EnvBuild(task.id), time.monotonic()
            try:
                build.outcome = _prepare(_spec(task, self._config), self._config)
            except SetupError as e:
                build.error = f"task setup command {e.command!r} {e.why}: {_last_line(e.output)}"
            except Exception as e:  # a sandbox that cannot start, a full disk: the task's error, not the eval's end
                build.error = f"{type(e).__name__}: {e}"
            build.seconds = time.monotonic() - started
        with self._lock:
            self._finished.append(build)
        self._any_finished.set()

    def waiting(self, task_id: str) -> bool:
        """Whether ``task_id``'s environment is not ready as far as the caller knows: still
        being built, or built but not yet taken from ``finished``."""
        with self._lock:
            return task_id in self._waiting

    def busy(self) -> bool:
        with self._lock:
            return bool(self._waiting)

    def finished(self, timeout: float = 0.0) -> list[EnvBuild]:
        """The builds that ended since the last call (waiting up to ``timeout`` for one)."""
        if timeout:
            self._any_finished.wait(timeout)
        with self._lock:
            done, self._finished = self._finished, []
            self._any_finished.clear()
            self._waiting -= {build.task_id for build in done}
        return done


def _prepare(spec: SandboxSpec, config: RunConfig) -> str:
    """Build (or find) the cached setup of a sandbox of ``spec``: "built KEY" or "reused KEY"."""
    if config.sandbox.kind == "docker":
        from lancer.sandbox.docker import with_setup_image

        return with_setup_image(spec)[1]
    from lancer.sandbox.local import task_env

    entry = task_env(spec)
    return f"{'reused' if entry.reused else 'built'} {entry.key}"


def _last_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "no output"
