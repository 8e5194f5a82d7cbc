"""Per-test verdicts for a task's own test command (issue 17): every pytest run in it reports
per test (lancer's plugin, installed in the grading sandbox), a runner's JUnit file named
by ``test_report:`` is read, and a command that leaves neither is graded by its exit code
with ``basis: exit code``, counted in the eval summary and warned about by `lancer check`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lancer.grader.report import parse_go_test_json
from tests.conftest import BACKENDS, run_lancer

# A src-layout library: the code under src/, imported by its tests through PYTHONPATH.
SLUG_BUGGY = "def slug(text):\n    return text.replace(' ', '-')\n"
SLUG_FIXED = "def slug(text):\n    return text.strip().lower().replace(' ', '-')\n"
FIX = """\
--- a/src/slugs/__init__.py
+++ b/src/slugs/__init__.py
@@ -1,2 +1,2 @@
 def slug(text):
-    return text.replace(' ', '-')
+    return text.strip().lower().replace(' ', '-')
"""
TEST_CASE = (
    "from slugs import slug\n\n"
    "def test_spaces_become_dashes():\n    assert slug('a b') == 'a-b'\n\n"
    "def test_lower_case():\n    assert slug('A B') == 'a-b'\n\n"
    "def test_stripped():\n    assert slug(' a ') == 'a'\n"
)
TEST_SPACES = "from slugs import slug\n\ndef test_inner_spaces():\n    assert slug('x y z') == 'x-y-z'\n"


def make_task(root: Path, test_command: str, tests: dict[str, str], extra: str = "") -> Path:
    task = root / "task"
    (task / "repo" / "src" / "slugs").mkdir(parents=True)
    (task / "repo" / "src" / "slugs" / "__init__.py").write_text(SLUG_BUGGY)
    (task / "tests").mkdir()
    for name, source in tests.items():
        (task / "tests" / name).write_text(source)
    (task / "task.yaml").write_text(
        "id: slug-case\nvariant: ic_swe\nprice: 120\ntitle: slugs keep capitals\ndescription: fix slug()\n"
        f"test_command: {json.dumps(test_command)}\n{extra}"
    )
    (task / "solution.patch").write_text(FIX)
    return task


def grade(task: Path, patch: str, tmp_path: Path, *extra: str) -> dict[str, Any]:
    patch_file = tmp_path / "patch.diff"
    patch_file.write_text(patch)
    proc = run_lancer("grade", str(task), str(patch_file), *extra)
    assert proc.returncode == 0, proc.stderr
    grade_info: dict[str, Any] = json.loads(proc.stdout)["grade"]
    return grade_info


def one_run_config(tmp_path: Path) -> str:
    config = tmp_path / "config.yaml"
    config.write_text("grader: {attempts: 1}\n")
    return str(config)


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_wrong_fix_under_a_custom_pytest_command_names_the_failing_tests(tmp_path: Path, kind: str) -> None:
    task = make_task(tmp_path, "PYTHONPATH=src python3 -m pytest -q tests/test_slug.py", {"test_slug.py": TEST_CASE})
    config = one_run_config(tmp_path)
    wrong = grade(task, "", tmp_path, "--sandbox", kind, "--config", config)
    assert (wrong["status"], wrong["basis"]) == ("failed", "junit")
    assert wrong["tests"] == [
        {"name": "tests.test_slug::test_spaces_become_dashes", "outcome": "passed"},
        {"name": "tests.test_slug::test_lower_case", "outcome": "failed"},
        {"name": "tests.test_slug::test_stripped", "outcome": "failed"},
    ]
    assert wrong["detail"] == (
        "2 of 3 hidden tests failed: tests.test_slug::test_lower_case, tests.test_slug::test_stripped"
    )
    fixed = grade(task, FIX, tmp_path, "--sandbox", kind, "--config", config)
    assert (fixed["status"], fixed["detail"]) == ("passed", "the hidden tests passed: 3 of 3")


def test_all_skipped_under_a_custom_command_is_an_error(tmp_path: Path) -> None:
    skipping = "import pytest\n\ndef test_later():\n    pytest.skip('not here')\n"
    task = make_task(tmp_path, "PYTHONPATH=src python3 -m pytest -q tests/test_slug.py", {"test_slug.py": skipping})
    result = grade(task, FIX, tmp_path, "--config", one_run_config(tmp_path))
    assert (result["status"], result["detail"]) == ("error", "every hidden test was skipped (1 skipped): none ran")
    assert result["tests"] == [{"name": "tests.test_slug::test_later", "outcome": "skipped"}]


def test_no_test_collected_under_a_custom_command_is_an_error(tmp_path: Path) -> None:
    # The command exits 5 (no tests) with "|| true": the report, not the exit code, decides.
    command = "PYTHONPATH=src python3 -m pytest -q tests/test_slug.py -k nomatch || true"
    task = make_task(tmp_path, command, {"test_slug.py": TEST_CASE})
    result = grade(task, FIX, tmp_path, "--config", one_run_config(tmp_path))
    assert (result["status"], result["detail"], result["tests"]) == ("error", "no hidden test ran", [])


@pytest.mark.parametrize("kind", BACKENDS)
def test_two_pytest_runs_in_one_command_merge_into_one_list(tmp_path: Path, kind: str) -> None:
    # The task passes its own --junitxml too: lancer's reports are its own all the same.
    command = (
        "export PYTHONPATH=src; pytest -q tests/test_spaces.py --junitxml=/tmp/own.xml && pytest -q tests/test_slug.py"
    )
    task = make_task(tmp_path, command, {"test_spaces.py": TEST_SPACES, "test_slug.py": TEST_CASE})
    result = grade(task, "", tmp_path, "--sandbox", kind, "--config", one_run_config(tmp_path))
    assert (result["status"], result["basis"]) == ("failed", "junit")
    assert [(t["name"], t["outcome"]) for t in result["tests"]] == [
        ("tests.test_spaces::test_inner_spaces", "passed"),
        ("tests.test_slug::test_spaces_become_dashes", "passed"),
        ("tests.test_slug::test_lower_case", "failed"),
        ("tests.test_slug::test_stripped", "failed"),
    ]


def test_passing_reports_with_a_failing_command_do_not_pass(tmp_path: Path) -> None:
    # pytest passes, then a check of the command's own fails: the reports do not show it.
    command = "PYTHONPATH=src python3 -m pytest -q tests/test_slug.py && grep -q strip README"
    task = make_task(tmp_path, command, {"test_slug.py": TEST_CASE})
    result = grade(task, FIX, tmp_path, "--config", one_run_config(tmp_path))
    assert result["status"] == "error"  # grep exits 2: no README
    assert result["detail"] == "the hidden tests passed: 3 of 3, but the test command exited 2"


NODE_TEST = """\
const test = require("node:test");
const assert = require("node:assert");
const { slug } = require("../slug.js");
test("spaces become dashes", () => assert.strictEqual(slug("a b"), "a-b"));
test("lower case", () => assert.strictEqual(slug("A B"), "a-b"));
"""


# node 18 (Debian 12's) has no built-in junit reporter (20.13 and later do: --test-reporter=junit),
# so the task brings one, as its authors would.
JUNIT_REPORTER = """\
const xml = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/"/g, "&quot;");
export default async function* junit(source) {
  const cases = [];
  let previous = 0;  // events come as tests end: one shallower than the one before is a parent
  for await (const { type, data } of source) {
    if (type !== "test:pass" && type !== "test:fail") continue;
    const parent = data.nesting < previous;
    previous = data.nesting;
    if (parent) continue;
    const failure = type === "test:fail" ? `<failure message="${xml(data.details.error.message)}"/>` : "";
    cases.push(`<testcase classname="node" name="${xml(data.name)}">${data.skip ? "<skipped/>" : failure}</testcase>`);
  }
  yield `<?xml version="1.0"?>\\n<testsuites><testsuite name="node">${cases.join("")}</testsuite></testsuites>\\n`;
}
"""


def make_node_task(root: Path) -> Path:
    task = root / "node-task"
    (task / "repo").mkdir(parents=True)
    (task / "repo" / "slug.js").write_text('exports.slug = (s) => s.replace(" ", "-");\n')
    (task / "tests").mkdir()
    (task / "tests" / "slug.test.js").write_text(NODE_TEST)
    (task / "tests" / "junit.mjs").write_text(JUNIT_REPORTER)
    command = (
        "node --test --test-reporter=./tests/junit.mjs --test-reporter-destination=out/junit.xml tests/slug.test.js"
    )
    (task / "task.yaml").write_text(
        "id: node-slug\nvariant: ic_swe\nprice: 80\ntitle: slugs keep capitals\ndescription: fix slug()\n"
        f"test_command: {json.dumps(command)}\ntest_report: out/junit.xml\n"
    )
    return task


def test_a_node_test_task_is_graded_per_test_from_its_named_report(tmp_path: Path) -> None:
    task = make_node_task(tmp_path)
    config = one_run_config(tmp_path)
    wrong = grade(task, "", tmp_path, "--config", config)
    assert (wrong["status"], wrong["basis"]) == ("failed", "junit")
    assert wrong["tests"] == [
        {"name": "node::spaces become dashes", "outcome": "passed"},
        {"name": "node::lower case", "outcome": "failed"},
    ]
    fix = (
        "--- a/slug.js\n+++ b/slug.js\n@@ -1 +1 @@\n"
        '-exports.slug = (s) => s.replace(" ", "-");\n+exports.slug = (s) => s.toLowerCase().replace(" ", "-");\n'
    )
    assert grade(task, fix, tmp_path, "--config", config)["detail"] == "the hidden tests passed: 2 of 2"


def test_a_named_report_the_command_never_writes_is_an_error(tmp_path: Path) -> None:
    task = make_node_task(tmp_path)
    (task / "task.yaml").write_text((task / "task.yaml").read_text().replace("out/junit.xml\n", "out/other.xml\n"))
    result = grade(task, "", tmp_path, "--config", one_run_config(tmp_path))
    assert (result["status"], result["basis"]) == ("error", "junit")
    assert result["detail"] == "the test command exited 1 without writing its report out/other.xml (test_report)"


def opaque_task(root: Path) -> Path:
    return make_task(root, "sh -c 'exit 1'", {"test_slug.py": TEST_CASE})


def test_an_opaque_command_is_graded_on_its_exit_code_and_says_so(tmp_path: Path) -> None:
    result = grade(opaque_task(tmp_path), FIX, tmp_path, "--config", one_run_config(tmp_path))
    assert (result["status"], result["basis"], result["detail"]) == ("failed", "exit code", "the hidden tests failed")
    assert result["tests"] == []


def test_the_eval_summary_and_report_count_exit_code_verdicts(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    opaque = opaque_task(tasks / "a")
    per_test = make_task(tasks / "b", "PYTHONPATH=src python3 -m pytest -q tests", {"test_slug.py": TEST_CASE})
    (per_test / "task.yaml").write_text((per_test / "task.yaml").read_text().replace("id: slug-case", "id: slug-b"))
    out = tmp_path / "eval"
    proc = run_lancer(
        "eval", str(opaque), str(per_test), "--model", "oracle", "--workers", "2", "--out", str(out),
        "--config", one_run_config(tmp_path), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "verdicts on exit codes alone" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())["overall"]
    assert (summary["attempts"], summary["exit_code_verdicts"]) == (2, 1)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted((r["task_id"], r["grade_basis"]) for r in rows) == [("slug-b", "junit"), ("slug-case", "exit code")]
    report = run_lancer("report", str(out), "-o", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert "exit-code verdicts" in (tmp_path / "report" / "report.md").read_text()
    with (tmp_path / "report" / "summary.csv").open() as f:
        assert f.readlines()[1].rstrip().endswith(",1")


def test_lancer_check_warns_about_an_exit_code_verdict(tmp_path: Path) -> None:
    proc = run_lancer("check", str(opaque_task(tmp_path)), "--attempts", "1")
    assert proc.stdout.splitlines()[:2] == [
        "slug-case: INVALID: the reference solution does not pass: the hidden tests failed",
        "  warning: this verdict rests on the test command's exit code alone (no per-test outcomes): "
        "run the tests with pytest, print go test -json, or name a JUnit XML report with test_report:",
    ]


def test_go_test_json_outcomes_are_read_per_test() -> None:
    # `go test -json ./...` of two packages, one that does not build (go 1.22's events).
    output = "\n".join(
        json.dumps(event)
        for event in [
            {"Action": "start", "Package": "ex/slug"},
            {"Action": "run", "Package": "ex/slug", "Test": "TestLower"},
            {"Action": "output", "Package": "ex/slug", "Test": "TestLower", "Output": "--- FAIL: TestLower\n"},
            {"Action": "fail", "Package": "ex/slug", "Test": "TestLower", "Elapsed": 0},
            {"Action": "run", "Package": "ex/slug", "Test": "TestSpaces"},
            {"Action": "pass", "Package": "ex/slug", "Test": "TestSpaces", "Elapsed": 0},
            {"Action": "skip", "Package": "ex/slug", "Test": "TestLater", "Elapsed": 0},
            {"Action": "fail", "Package": "ex/slug", "Elapsed": 0.01},
            {"Action": "output", "Package": "ex/broken", "Output": "FAIL\tex/broken [build failed]\n"},
            {"Action": "fail", "Package": "ex/broken", "Elapsed": 0},
        ]
    )
    tests = parse_go_test_json("some build chatter\n" + output)
    assert [(t.name, t.outcome) for t in tests] == [
        ("ex/slug::TestLower", "failed"),
        ("ex/slug::TestSpaces", "passed"),
        ("ex/slug::TestLater", "skipped"),
        ("ex/broken", "error"),
    ]
    assert parse_go_test_json("ok  \tex/slug\t0.01s\n") == []
