"""Running a task's hidden browser tests on the host, against the app's URL.

The tests need Playwright and Chromium, which a task's image usually lacks, and they
reach the app only through its URL, so they run on the host for every sandbox backend
(the app itself runs in the sandbox). The grader uses this for its verdict and
``user_tool`` for its trace. The tests are copied to a scratch folder first: run in
place, pytest would pick up lancer's own pyproject.toml and write caches into the task.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from lancer.browser.chromium import CHROMIUM_TEMP_PREFIX
from lancer.core.hostproc import HostResult, run_tagged
from lancer.core.sandbox import owned_temp_dir, remove_abandoned

PLUGIN = "lancer.browser.fixtures"
# Host variables the test process keeps; the rest (API keys above all) stay out.
_PASSED_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "LANCER_CHROMIUM", "PLAYWRIGHT_BROWSERS_PATH")


def browser_test_argv(test_command: str | None) -> list[str]:
    """The pytest command (or the task's own) run from the scratch folder holding ``tests/``.

    The command's ``python3 -m pytest`` / ``pytest`` is this interpreter's pytest with
    lancer's fixtures loaded, so a task written for the grader's default works unchanged.
    """
    base = [sys.executable, "-m", "pytest", "-p", PLUGIN, "-p", "no:cacheprovider"]
    if test_command is None:
        return [*base, "-q", "tests"]
    words = shlex.split(test_command)
    for prefix in (["python3", "-m", "pytest"], ["python", "-m", "pytest"], ["pytest"]):
        if words[: len(prefix)] == prefix:
            return [*base, *words[len(prefix) :]]
    return ["bash", "-c", test_command]


def run_browser_tests(
    tests_dir: Path,
    app_url: str,
    *,
    test_command: str | None = None,
    timeout: float,
    trace_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    workdir: Path | None = None,
) -> HostResult:
    """Run the hidden tests against ``app_url``; every process they start is gone on return.

    ``env``: more variables for the tests (the grader's report locations). ``workdir``: the
    folder (made here, left to the caller) the tests are copied into and run from; by
    default a scratch folder removed on return."""
    variables = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    variables.update(APP_URL=app_url, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", **(env or {}))
    if trace_dir is not None:
        variables["LANCER_TRACE_DIR"] = str(trace_dir)
    scratch = workdir or owned_temp_dir("lancer-webtests-")  # owned: a killed lancer's is pruned
    try:
        shutil.copytree(tests_dir, scratch / "tests")
        return run_tagged(browser_test_argv(test_command), cwd=scratch, env=variables, timeout=timeout)
    finally:
        if workdir is None:
            shutil.rmtree(scratch, ignore_errors=True)
        # Tests killed at their timeout (or crashed) leave their browser's temp folder.
        remove_abandoned(CHROMIUM_TEMP_PREFIX)
