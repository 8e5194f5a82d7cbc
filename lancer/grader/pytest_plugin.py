"""lancer's pytest plugin, loaded by every pytest session of the grader's test command.

Never imported by lancer itself: lancer.grader.pytest_reports installs this file (with an
entry point, so pytest loads it unasked) where the grading sandbox's Python finds it. Each
pytest session then writes a JUnit XML report of its own into the folder named by
``$LANCER_PYTEST_REPORTS``, so a task's own test command is graded per test however many
pytest runs it makes, and whatever ``--junitxml`` it passes itself. Standalone: pytest's
and the standard library's imports only, and only what pytest 4 to 9 all have.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from _pytest.junitxml import LogXML

REPORTS_ENV = "LANCER_PYTEST_REPORTS"


class _Report(LogXML):
    # Its arguments differ between pytest versions; pluggy passes none to this signature.
    def pytest_terminal_summary(self, *args: Any, **kwargs: Any) -> None:
        """Silent: the test output is the task's, not a note about lancer's report."""


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Taken out of the environment: pytest sessions this one starts (pytester, xdist workers,
    # a test that runs pytest) are not runs of the hidden tests, and report nothing.
    folder = os.environ.pop(REPORTS_ENV, "")
    if not folder or hasattr(config, "workerinput"):
        return
    # Named so that sorting the folder gives the order the sessions started in.
    path = os.path.join(folder, f"{time.time_ns():020d}-{os.getpid()}.xml")
    config.pluginmanager.register(_Report(path, None), "lancer-pytest-report")
