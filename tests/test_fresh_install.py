"""`pip install .` alone (no dev extras) runs and grades every bundled task right.

Slow (a fresh virtualenv, about 40 s with pip's cache, then `lancer check` of every
bundled task, about 2 minutes): it is the one test of what a new user installs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT

_NOT_SHIPPED = shutil.ignore_patterns(".venv", ".git", "build", "runs", "*.egg-info", "__pycache__", ".*_cache")


@pytest.mark.timeout(900)
def test_pip_install_without_extras_checks_every_bundled_task(tmp_path: Path) -> None:
    source = tmp_path / "lancer"  # a copy, so pip's build leaves nothing in the checkout
    shutil.copytree(ROOT, source, ignore=_NOT_SHIPPED)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(source)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert install.returncode == 0, install.stderr[-2000:]
    listed = subprocess.run([str(venv / "bin" / "pip"), "list"], capture_output=True, text=True).stdout
    assert "ruff" not in listed and "mypy" not in listed  # the dev tools stay in [dev]

    # Nothing of the development venv on PATH: only what `pip install .` brought.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    proc = subprocess.run(
        [str(venv / "bin" / "lancer"), "check", str(EXAMPLES), "--attempts", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=800,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for task in sorted(p.name for p in EXAMPLES.iterdir() if (p / "task.yaml").is_file()):
        assert f"{task}: valid" in lines
    # Per-test verdicts for a local task, a web task (its tests run on the host) and a
    # real upstream task whose setup installs its own dependencies.
    assert "    failed   tests.test_discount::test_discount_comes_off_before_tax" in lines
    assert "    failed   tests.test_delete::test_delete_the_last_todo" in lines
    assert "    failed   tests.test_slugify.TestSlugify::test_pre_translation" in lines
    assert "  reference solution (solution.patch): passed (the hidden tests passed: 82 of 82)" in lines
    assert lines[-1] == "all tasks valid"
