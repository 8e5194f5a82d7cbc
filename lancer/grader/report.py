"""Verdicts from test reports: JUnit XML reports (or ``go test -json`` output) in, per-test
outcomes and a verdict out.

Pure functions, no I/O, so every rule is tested on literal XML. The rules, as SWE-bench
decides from per-test outcomes rather than an exit code: ``passed`` when at least one
hidden test ran and none failed or errored; ``failed`` when one failed or errored;
``error`` (a harness fault, never the model's failure) when nothing ran, every test was
skipped or the tests could not be collected.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar, Literal

Outcome = Literal["passed", "failed", "error", "skipped"]
Status = Literal["passed", "failed", "error"]
# What a verdict rests on: per-test outcomes from a JUnit XML report or from ``go test
# -json``, the test command's exit code alone, or the chosen proposal (manager tasks).
Basis = Literal["junit", "go test -json", "exit code", "proposal", "reward file", "swebench log"]
# pytest's junitxml marks a module it could not import or collect with this message.
_COLLECTION_FAILURE = "collection failure"
_NAMES_SHOWN = 5
_GO_OUTCOMES: dict[str, Outcome] = {"pass": "passed", "fail": "failed", "skip": "skipped"}


class ReportError(ValueError):
    """The report is not JUnit XML lancer can read."""


@dataclass(frozen=True)
class TestOutcome:
    __test__: ClassVar[bool] = False  # not a test class, whatever pytest guesses from its name

    name: str  # "tests.test_discount::test_discount_comes_off_before_tax"
    outcome: Outcome
    message: str = ""
    # A SWE-bench listed test's: FAIL_TO_PASS or PASS_TO_PASS, its status in the log as
    # swebench's parser wrote it (None: not in the log), and swebench's "success" or "failure".
    kind: str | None = None
    status: str | None = None
    graded: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        listed = {"kind": self.kind, "status": self.status, "graded": self.graded} if self.kind else {}
        return {"name": self.name, "outcome": self.outcome, **listed}


@dataclass(frozen=True)
class Decision:
    status: Status
    detail: str


def parse_junit(xml: bytes) -> list[TestOutcome]:
    """Every ``<testcase>`` of a JUnit XML report (pytest's ``--junitxml`` or any other)."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as e:
        raise ReportError(f"the test report is not valid XML ({e})") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise ReportError(f"the test report is not JUnit XML (its root is <{root.tag}>)")
    return [_outcome(case) for case in root.iter("testcase")]


def parse_junit_reports(reports: list[bytes]) -> list[TestOutcome]:
    """The tests of several reports (one per pytest run of a command), in order, as one list."""
    return [test for report in reports for test in parse_junit(report)]


def parse_go_test_json(output: str) -> list[TestOutcome]:
    """Each test's last verdict in ``go test -json`` output (other lines are ignored); a
    package that failed without running a test (it did not build) as one that could not
    be collected. Empty when the output holds no go test events."""
    outcomes: dict[str, TestOutcome] = {}
    tested: set[str] = set()
    for line in output.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("Action") not in _GO_OUTCOMES:
            continue
        package, test = str(event.get("Package", "")), event.get("Test")
        if test:
            tested.add(package)
            outcomes[f"{package}::{test}"] = TestOutcome(f"{package}::{test}", _GO_OUTCOMES[event["Action"]])
        elif event["Action"] == "fail" and package not in tested:
            outcomes[package] = TestOutcome(package, "error", _COLLECTION_FAILURE)
    return list(outcomes.values())


def _outcome(case: ElementTree.Element) -> TestOutcome:
    classname, name = case.get("classname", ""), case.get("name", "")
    full_name = f"{classname}::{name}" if classname else name
    for tag, outcome in (("error", "error"), ("failure", "failed"), ("skipped", "skipped")):
        found = case.find(tag)
        if found is not None:
            return TestOutcome(full_name, outcome, found.get("message", ""))  # type: ignore[arg-type]
    return TestOutcome(full_name, "passed")


def decide(tests: list[TestOutcome]) -> Decision:
    """The verdict on one run of the hidden tests, from its per-test outcomes."""
    uncollected = [t for t in tests if t.outcome == "error" and t.message == _COLLECTION_FAILURE]
    if uncollected:
        return Decision("error", f"the hidden tests could not be collected: {_names(uncollected)}")
    if not tests:
        return Decision("error", "no hidden test ran")
    counts = Counter(t.outcome for t in tests)
    bad = [t for t in tests if t.outcome in ("failed", "error")]
    if bad:
        return Decision("failed", f"{len(bad)} of {len(tests)} hidden tests failed: {_names(bad)}")
    if counts["passed"] == 0:
        return Decision("error", f"every hidden test was skipped ({len(tests)} skipped): none ran")
    skipped = f", {counts['skipped']} skipped" if counts["skipped"] else ""
    return Decision("passed", f"the hidden tests passed: {counts['passed']} of {len(tests)}{skipped}")


def _names(tests: list[TestOutcome]) -> str:
    shown = ", ".join(t.name for t in tests[:_NAMES_SHOWN])
    more = len(tests) - _NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def node_id(junit: str, test_files: list[str]) -> str:
    """pytest's id of the test a JUnit report names ``junit``, given the test files (paths
    relative to where pytest ran): "tests.test_x.TestA::test_b[1]" is
    "tests/test_x.py::TestA::test_b[1]"."""
    classname, sep, name = junit.partition("::")
    if not sep:
        return junit
    modules = {f[:-3].replace("/", "."): f for f in test_files if f.endswith(".py")}
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        if module in modules:
            return "::".join([modules[module], *parts[cut:], name])
    return junit
