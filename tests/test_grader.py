"""`lancer grade`: passed, failed, error, a patch that does not apply, retries."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, EXAMPLES, ROOT, lancer_argv, run_lancer

IC_TASK = EXAMPLES / "invoice-discount"
GOOD_PATCH = """\
diff --git a/invoice.py b/invoice.py
--- a/invoice.py
+++ b/invoice.py
@@ -10,3 +10,3 @@ def total(items: list[tuple[float, int]], tax_rate: float, discount: float = 0.0) -> float:
     \"\"\"What the client pays: items, less the discount, plus tax, in cents.\"\"\"
-    taxed = subtotal(items) * (1 + tax_rate)
-    return round(taxed - discount, 2)
+    discounted = max(subtotal(items) - discount, 0.0)
+    return round(discounted * (1 + tax_rate), 2)
"""


def grade(task: Path, patch: str, tmp_path: Path, *extra: str) -> dict[str, object]:
    patch_file = tmp_path / "patch.diff"
    patch_file.write_text(patch)
    proc = run_lancer("grade", str(task), str(patch_file), *extra)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_a_correct_patch_is_resolved_and_earns_the_price(tmp_path: Path) -> None:
    result = grade(IC_TASK, GOOD_PATCH, tmp_path)
    assert (result["resolved"], result["earned"]) == (True, 250.0)
    assert result["grade"]["status"] == "passed"  # type: ignore[index]


def test_an_empty_patch_fails_the_hidden_tests(tmp_path: Path) -> None:
    result = grade(IC_TASK, "", tmp_path)
    assert (result["resolved"], result["earned"]) == (False, 0.0)
    grade_info = result["grade"]
    assert grade_info["status"] == "failed" and grade_info["attempts"] == 3  # type: ignore[index]
    assert "test_discount_comes_off_before_tax" in grade_info["output_tail"]  # type: ignore[index]


def test_a_patch_that_does_not_apply_fails_with_the_reason(tmp_path: Path) -> None:
    result = grade(IC_TASK, GOOD_PATCH.replace("taxed = subtotal", "taxed = total"), tmp_path)
    assert result["resolved"] is False
    assert result["grade"]["status"] == "failed"  # type: ignore[index]
    assert "the patch does not apply: error: patch failed: invoice.py:10" in result["grade"]["detail"]  # type: ignore[index]


def test_a_broken_test_command_is_an_error_not_a_failure(tmp_path: Path) -> None:
    task = tmp_path / "task"
    shutil.copytree(IC_TASK, task)
    (task / "task.yaml").write_text(
        (task / "task.yaml").read_text() + "test_command: python3 -c 'import sys; sys.exit(4)'\n"
    )
    result = grade(task, GOOD_PATCH, tmp_path)
    assert result["resolved"] is False
    assert result["grade"]["status"] == "error"  # type: ignore[index]
    assert result["grade"]["detail"] == "the test command exited 4"  # type: ignore[index]


def test_a_flaky_test_passes_on_a_later_attempt(tmp_path: Path) -> None:
    task = tmp_path / "task"
    shutil.copytree(IC_TASK, task)
    # Fails on the first two runs, passes on the third: any pass counts.
    (task / "tests" / "test_flaky.py").write_text(
        "from pathlib import Path\n"
        "def test_third_time_lucky():\n"
        "    marker = Path(__file__).with_name('runs.txt')\n"
        "    runs = int(marker.read_text()) + 1 if marker.exists() else 1\n"
        "    marker.write_text(str(runs))\n"
        "    assert runs >= 3\n"
    )
    result = grade(task, GOOD_PATCH, tmp_path)
    assert result["resolved"] is True
    assert result["grade"]["attempts"] == 3  # type: ignore[index]


def test_manager_grading_compares_the_proposal(tmp_path: Path) -> None:
    task = EXAMPLES / "manager-date-format"
    assert grade(task, "", tmp_path, "--proposal", "2")["earned"] == 500.0
    assert grade(task, "", tmp_path, "--proposal", "1")["resolved"] is False


# --- verdicts from test reports ------------------------------------------------------------


def task_copy(tmp_path: Path, extra_yaml: str = "", hidden: dict[str, str] | None = None) -> Path:
    """invoice-discount with more task.yaml lines, and hidden tests replaced by ``hidden``."""
    task = tmp_path / "task"
    shutil.copytree(IC_TASK, task)
    (task / "task.yaml").write_text((task / "task.yaml").read_text() + extra_yaml)
    if hidden is not None:
        shutil.rmtree(task / "tests")
        (task / "tests").mkdir()
        for name, source in hidden.items():
            (task / "tests" / name).write_text(source)
    return task


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_failing_hidden_test_grades_failed_and_is_named(tmp_path: Path, kind: str) -> None:
    result = grade(IC_TASK, "", tmp_path, "--sandbox", kind)
    grade_info = result["grade"]
    assert grade_info["status"] == "failed"  # type: ignore[index]
    assert grade_info["tests"] == [  # type: ignore[index]
        {"name": "tests.test_discount::test_discount_comes_off_before_tax", "outcome": "failed"},
        {"name": "tests.test_discount::test_discount_never_makes_the_total_negative", "outcome": "failed"},
        {"name": "tests.test_discount::test_no_discount_unchanged", "outcome": "passed"},
    ]
    assert grade_info["detail"] == (  # type: ignore[index]
        "2 of 3 hidden tests failed: tests.test_discount::test_discount_comes_off_before_tax, "
        "tests.test_discount::test_discount_never_makes_the_total_negative"
    )


@pytest.mark.parametrize("kind", BACKENDS)
def test_hidden_tests_that_only_skip_grade_error(tmp_path: Path, kind: str) -> None:
    skipping = "import pytest\n\ndef test_total():\n    pytest.skip('not on this machine')\n"
    task = task_copy(tmp_path, hidden={"test_discount.py": skipping})
    result = grade(task, GOOD_PATCH, tmp_path, "--sandbox", kind)
    assert result["resolved"] is False
    assert result["grade"]["status"] == "error"  # type: ignore[index]
    assert result["grade"]["detail"] == "every hidden test was skipped (1 skipped): none ran"  # type: ignore[index]
    assert result["grade"]["tests"] == [{"name": "tests.test_discount::test_total", "outcome": "skipped"}]  # type: ignore[index]


def test_hidden_tests_that_cannot_be_collected_grade_error(tmp_path: Path) -> None:
    task = task_copy(tmp_path, hidden={"test_discount.py": "from invoice import no_such_name\n"})
    result = grade(task, GOOD_PATCH, tmp_path)
    assert result["grade"]["status"] == "error"  # type: ignore[index]
    assert result["grade"]["detail"] == "the hidden tests could not be collected: tests.test_discount"  # type: ignore[index]


def test_no_pytest_where_the_tests_run_is_an_error_not_a_wrong_fix(tmp_path: Path) -> None:
    bare = tmp_path / "bare-python"  # a real Python without pytest
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    task = task_copy(tmp_path, f"env: {{PATH: '{bare}/bin:/usr/bin:/bin'}}\n")
    result = grade(task, GOOD_PATCH, tmp_path)
    assert result["grade"]["status"] == "error"  # type: ignore[index]
    assert result["grade"]["detail"] == (  # type: ignore[index]
        "the test runner exited 1 without writing a test report (pytest is not installed where the tests run)"
    )
    assert "No module named pytest" in result["grade"]["output_tail"]  # type: ignore[index]


def test_a_custom_command_that_writes_a_report_gets_the_per_test_verdict(tmp_path: Path) -> None:
    # It exits 0 whatever happened: the report, not the exit code, decides.
    command = 'python3 -m pytest -q tests/test_discount.py --junitxml="$LANCER_TEST_REPORT"; exit 0'
    task = task_copy(tmp_path, f"test_command: '{command}'\n")
    result = grade(task, "", tmp_path)
    assert result["grade"]["status"] == "failed"  # type: ignore[index]
    assert [t["outcome"] for t in result["grade"]["tests"]] == ["failed", "failed", "passed"]  # type: ignore[index]


def test_a_custom_command_without_a_report_keeps_the_exit_code_rule(tmp_path: Path) -> None:
    # The hidden test called by plain Python, not pytest: nothing reports per test.
    call = "import sys; sys.path += ['.', 'tests']; import test_discount as t; t.test_discount_comes_off_before_tax()"
    command = f'python3 -c "{call}"'
    task = task_copy(tmp_path, f"test_command: {json.dumps(command)}\n")
    result = grade(task, "", tmp_path)
    assert (result["grade"]["status"], result["grade"]["detail"]) == ("failed", "the hidden tests failed")  # type: ignore[index]
    assert (result["grade"]["tests"], result["grade"]["basis"]) == ([], "exit code")  # type: ignore[index]
    assert grade(task, GOOD_PATCH, tmp_path)["grade"]["status"] == "passed"  # type: ignore[index]


def test_tests_past_the_timeout_are_an_error(tmp_path: Path) -> None:
    task = task_copy(tmp_path, hidden={"test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(30)\n"})
    config = tmp_path / "config.yaml"
    config.write_text("grader: {attempts: 1, timeout_s: 1}\n")
    result = grade(task, GOOD_PATCH, tmp_path, "--config", str(config))
    assert (result["grade"]["status"], result["grade"]["detail"]) == ("error", "the tests timed out after 1 s")  # type: ignore[index]


# --- the patch argument, setup output, tasks without tests -----------------------------------


def test_dev_null_is_an_empty_patch(tmp_path: Path) -> None:
    proc = run_lancer("grade", str(IC_TASK), "/dev/null")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["grade"]["status"] == "failed"


def test_a_patch_on_stdin(tmp_path: Path) -> None:
    proc = subprocess.run(
        lancer_argv("grade", str(IC_TASK), "-"), cwd=ROOT, input=GOOD_PATCH, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["resolved"] is True


def test_a_missing_patch_or_a_directory_says_which(tmp_path: Path) -> None:
    missing = run_lancer("grade", str(IC_TASK), str(tmp_path / "nope.diff"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"lancer: error: patch file {tmp_path / 'nope.diff'} does not exist (give a run's patch.diff, or - for stdin)"
    )
    folder = run_lancer("grade", str(IC_TASK), str(tmp_path))
    assert folder.returncode == 2
    assert folder.stderr.strip() == (
        f"lancer: error: patch {tmp_path} is a directory: give the patch file (a run's patch.diff), or - for stdin"
    )


SETUP_FAILS = "setup: ['echo collecting deps; echo \"ERROR: no matching distribution for nosuchpkg\" >&2; exit 1']\n"


def test_a_failing_setup_shows_its_output_when_grading(tmp_path: Path) -> None:
    result = grade(task_copy(tmp_path, SETUP_FAILS), GOOD_PATCH, tmp_path)
    grade_info = result["grade"]
    assert grade_info["status"] == "error"  # type: ignore[index]
    assert grade_info["detail"].startswith("task setup command 'echo collecting deps;")  # type: ignore[index]
    assert grade_info["detail"].endswith("exited 1")  # type: ignore[index]
    assert grade_info["output_tail"] == "collecting deps\nERROR: no matching distribution for nosuchpkg\n"  # type: ignore[index]


def test_a_failing_setup_shows_its_output_in_a_run(tmp_path: Path) -> None:
    task = task_copy(tmp_path, SETUP_FAILS)
    proc = run_lancer("run", str(task), "--model", f"scripted:{task / 'solution.yaml'}", "--out", str(tmp_path / "run"))
    assert "its output ends:\ncollecting deps\nERROR: no matching distribution for nosuchpkg" in proc.stderr
    detail = json.loads((tmp_path / "run" / "result.json").read_text())["detail"]
    assert detail.endswith("ERROR: no matching distribution for nosuchpkg")


def test_a_task_without_hidden_tests_is_refused_before_the_run(tmp_path: Path) -> None:
    task = task_copy(tmp_path)
    shutil.rmtree(task / "tests")
    out = tmp_path / "run"
    proc = run_lancer("run", str(task), "--model", f"scripted:{task / 'solution.yaml'}", "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"lancer: error: {task} has no tests/ folder: an ic_swe task needs hidden tests "
        "(or a test_command that brings its own)"
    )
    assert not out.exists()
