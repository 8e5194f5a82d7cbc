"""Harbor's log folders, kept in the run directory as Harbor keeps them in a trial's.

In the task's container Harbor has ``/logs/agent`` (what the agent leaves), ``/logs/verifier``
(the reward files, ctrf.json, and the verifier's output as ``test-stdout.txt``) and
``/logs/artifacts``. lancer copies each out of the container it was written in (the agent's
and the grader's are separate containers: agent and artifacts from the agent's, verifier
from the grader's) into ``RUN_DIR/logs/agent``, ``logs/verifier``
and ``logs/artifacts``.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from lancer.core.sandbox import Sandbox

TEST_STDOUT = "test-stdout.txt"
HARBOR_LOGS = ("agent", "verifier", "artifacts")


def copy_logs(sandbox: Sandbox, logs_root: str, names: tuple[str, ...], logs_dir: Path) -> None:
    """``logs_root/NAME`` for each of ``names`` copied to ``logs_dir/NAME`` (absent ones skipped)."""
    for name in names:
        try:
            sandbox.copy_out(posixpath.join(logs_root, name), logs_dir / name)
        except FileNotFoundError:
            continue


def keep_harbor_logs(sandbox: Sandbox, reward_dir: str, output: str, logs_dir: Path) -> None:
    """The verifier's folder, with the verifier's output as test-stdout.txt (the artifacts
    are the agent's container's: lancer.agent.runner keeps them)."""
    root, verifier = posixpath.split(reward_dir.rstrip("/"))
    copy_logs(sandbox, root, (verifier,), logs_dir)
    (logs_dir / verifier).mkdir(parents=True, exist_ok=True)
    (logs_dir / verifier / TEST_STDOUT).write_text(output)
