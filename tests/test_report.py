"""lancer.grader.report: per-test outcomes from real pytest JUnit XML reports, and the verdict rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lancer.grader.report import ReportError, TestOutcome, decide, parse_junit


def junit_of(tmp_path: Path, source: str) -> list[TestOutcome]:
    """Run real pytest on ``source`` as test_it.py and parse the report it writes."""
    (tmp_path / "test_it.py").write_text(source)
    report = tmp_path / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", "test_it.py"],
        cwd=tmp_path,
        capture_output=True,
    )
    return parse_junit(report.read_bytes())


def test_each_outcome_is_read_with_the_test_name(tmp_path: Path) -> None:
    source = (
        "import pytest\n"
        "@pytest.fixture\n"
        "def broken():\n"
        "    raise RuntimeError('fixture')\n"
        "def test_ok(): pass\n"
        "def test_wrong(): assert 1 == 2\n"
        "def test_setup_error(broken): pass\n"
        "@pytest.mark.skip(reason='later')\n"
        "def test_later(): pass\n"
        "class TestGroup:\n"
        "    def test_in_class(self): pass\n"
    )
    outcomes = {t.name: t.outcome for t in junit_of(tmp_path, source)}
    assert outcomes == {
        "test_it::test_ok": "passed",
        "test_it::test_wrong": "failed",
        "test_it::test_setup_error": "error",
        "test_it::test_later": "skipped",
        "test_it.TestGroup::test_in_class": "passed",
    }
    decision = decide(junit_of(tmp_path, source))
    assert decision.status == "failed"
    assert decision.detail == "2 of 5 hidden tests failed: test_it::test_wrong, test_it::test_setup_error"


def test_all_passing_passes_and_skips_are_counted(tmp_path: Path) -> None:
    source = "import pytest\ndef test_a(): pass\n@pytest.mark.skip\ndef test_b(): pass\n"
    decision = decide(junit_of(tmp_path, source))
    assert (decision.status, decision.detail) == ("passed", "the hidden tests passed: 1 of 2, 1 skipped")


def test_tests_that_only_skip_are_a_harness_error(tmp_path: Path) -> None:
    source = "import pytest\npytestmark = pytest.mark.skip('needs a GPU')\ndef test_a(): pass\ndef test_b(): pass\n"
    decision = decide(junit_of(tmp_path, source))
    assert (decision.status, decision.detail) == ("error", "every hidden test was skipped (2 skipped): none ran")


def test_a_module_that_cannot_be_collected_is_a_harness_error(tmp_path: Path) -> None:
    decision = decide(junit_of(tmp_path, "import no_such_module\ndef test_a(): pass\n"))
    assert (decision.status, decision.detail) == ("error", "the hidden tests could not be collected: test_it")


def test_no_test_at_all_is_a_harness_error(tmp_path: Path) -> None:
    assert junit_of(tmp_path, "x = 1\n") == []
    assert (decide([]).status, decide([]).detail) == ("error", "no hidden test ran")


def test_long_lists_of_failures_are_cut() -> None:
    tests = [TestOutcome(f"t::test_{i}", "failed") for i in range(8)]
    assert decide(tests).detail.endswith("t::test_4 and 3 more")


@pytest.mark.parametrize(
    ("xml", "why"),
    [
        (b"not xml", "the test report is not valid XML"),
        (b"<html/>", "the test report is not JUnit XML (its root is <html>)"),
    ],
)
def test_a_report_that_is_not_junit_is_refused(xml: bytes, why: str) -> None:
    with pytest.raises(ReportError) as raised:
        parse_junit(xml)
    assert str(raised.value).startswith(why)


def test_a_bare_testsuite_root_from_other_runners_is_read() -> None:
    xml = b'<testsuite name="x"><testcase classname="a.B" name="c"><failure message="no"/></testcase></testsuite>'
    assert parse_junit(xml) == [TestOutcome("a.B::c", "failed", "no")]
