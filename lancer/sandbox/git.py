"""The baseline commit and the patch: made once here for every backend."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from lancer.core.errors import SandboxError
from lancer.core.sandbox import Sandbox

# Same flags as SWE-Lancer's harness: mode changes are noise, binary files must survive.
DIFF_ARGV = ["git", "-c", "core.fileMode=false", "diff", "--binary", "HEAD"]
# Build droppings are nobody's fix: kept out of the patch (.git/info/exclude) without touching the tree.
EXCLUDED = "__pycache__/\n*.pyc\n.pytest_cache/\nnode_modules/\n"
# What every commit in the sandbox is made with (its own later commits too: the task's setup).
CONFIG = "[user]\n\tname = lancer\n\temail = lancer@localhost\n[core]\n\tfileMode = false\n"


class PatchError(Exception):
    """A patch that does not apply; the message is git's reason."""


def make_baseline(worktree: Path) -> None:
    """Make ``worktree`` a fresh repository whose one commit is its current content.

    Any ``.git`` the task's repo came with is replaced, so the agent cannot read the fix
    from history and the diff is always against exactly what the agent was given.
    """
    git_dir = worktree / ".git"
    if git_dir.is_dir():
        shutil.rmtree(git_dir)
    elif git_dir.exists():
        git_dir.unlink()
    # Three git processes, the fewest there can be (an eval makes one baseline per attempt);
    # no template (no sample hooks to copy), and neither the host's git config nor hooks.
    _git(worktree, "init", "-q", "--template=")
    (git_dir / "info").mkdir(parents=True, exist_ok=True)
    (git_dir / "info" / "exclude").write_text(EXCLUDED)
    with (git_dir / "config").open("a") as config:  # later sections win over what init wrote
        config.write(CONFIG)
    # Files the task's .gitignore ignores (node_modules, builds) stay out of baseline and patch.
    _git(worktree, "add", "-A")
    _git(worktree, "-c", "commit.gpgSign=false", "commit", "-q", "--allow-empty", "-m", "lancer baseline")


def _git(worktree: Path, *args: str) -> None:
    hermetic = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    result = subprocess.run(["git", *args], cwd=worktree, env=hermetic, capture_output=True, text=True)
    if result.returncode != 0:
        command = next(a for a in args if not a.startswith("-") and "=" not in a)
        why = result.stderr.strip().splitlines()[-1:] or [f"exit code {result.returncode}"]
        raise SandboxError(f"could not make the baseline commit in {worktree}: git {command}: {why[0]}")


def commit_setup(sandbox: Sandbox) -> None:
    """Fold what the task's setup commands changed into the baseline, so the patch is the agent's alone."""
    script = 'git add -A && git commit -q --allow-empty --no-verify -m "lancer: task setup"'
    result = sandbox.exec(["sh", "-c", script], timeout=600)
    if result.exit_code != 0:
        raise SandboxError(f"could not commit the task setup's changes: {result.text.strip()[-300:]}")


def diff(sandbox: Sandbox) -> bytes:
    """The working tree against the baseline, new files included, binary-safe."""
    # intent-to-add makes untracked files show in the diff without staging their content.
    sandbox.exec(["git", "add", "-A", "-N"], timeout=120)
    result = sandbox.exec(DIFF_ARGV, timeout=120)
    if result.exit_code != 0:
        raise PatchError(f"git diff failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def apply_patch(sandbox: Sandbox, patch: bytes) -> None:
    """Apply ``patch`` to the working tree; raises PatchError with git's reason if it does not apply."""
    if not patch.strip():
        return
    result = sandbox.exec(["git", "apply", "--binary", "--whitespace=nowarn", "-"], stdin=patch, timeout=120)
    if result.exit_code != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        raise PatchError("; ".join(reason[:3]) or f"git apply exited {result.exit_code}")
