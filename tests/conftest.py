"""Shared fixtures. Sandbox and tool tests run against every backend: ``local`` and
``docker`` (CI starts a real Docker engine; these tests are never skipped)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lancer.formats.catalog import dataset_file
from lancer.sandbox import Sandbox, SandboxSpec, create_sandbox

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "tasks"
# Upstream projects' sources the SWE-bench tests build instances from: their tests are data here.
collect_ignore_glob = ["fixtures/*"]


# The SWE-Lancer lite CSV as users get it: the copy shipped in lancer, by its dataset name.
SWELANCER_LITE_CSV = dataset_file("swelancer-lite")
BACKENDS = ["local", "docker"]


@pytest.fixture(params=BACKENDS)
def sandbox_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "hello.txt").write_text("hello\nworld\n")
    (repo / "src" / "app.py").write_text("def greet(name):\n    return 'hi ' + name\n")
    return repo


@pytest.fixture
def hidden_file_name() -> str:
    """A name found nowhere else on the machine: the hidden file the sandbox must not show."""
    return f"secret_{uuid.uuid4().hex}_test.py"


@pytest.fixture
def sandbox(sandbox_kind: str, tmp_path: Path, hidden_file_name: str) -> Iterator[Sandbox]:
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / hidden_file_name).write_text("assert True\n")
    sb = create_sandbox(sandbox_kind, SandboxSpec(repo_dir=make_repo(tmp_path), hidden_paths=[hidden], label="pytest"))
    try:
        yield sb
    finally:
        sb.close()


def lancer_argv(*args: str) -> list[str]:
    """The command line that runs lancer from this checkout."""
    return [sys.executable, "-m", "lancer.cli.main", *args]


def run_lancer(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, in a child process."""
    return subprocess.run(
        lancer_argv(*args),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
