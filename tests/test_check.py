"""`lancer check`: hidden tests must fail on the original code and pass with the reference solution."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import EXAMPLES, run_lancer

IC_TASK = EXAMPLES / "invoice-discount"
FAST = ("--attempts", "1")


def copy_task(tmp_path: Path, name: str = "task") -> Path:
    task = tmp_path / name
    shutil.copytree(IC_TASK, task)
    return task


def test_a_valid_task_shows_the_tests_the_solution_fixes(tmp_path: Path) -> None:
    proc = run_lancer("check", str(IC_TASK), *FAST)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "invoice-discount: valid\n"
        "  original code: failed (2 of 3 hidden tests failed: tests.test_discount::test_discount_comes_off_before_tax,"
        " tests.test_discount::test_discount_never_makes_the_total_negative)\n"
        "    failed   tests.test_discount::test_discount_comes_off_before_tax\n"
        "    failed   tests.test_discount::test_discount_never_makes_the_total_negative\n"
        "    ... and 1 more passed\n"
        "  reference solution (solution.yaml): passed (the hidden tests passed: 3 of 3)\n"
        "    passed   tests.test_discount::test_discount_comes_off_before_tax\n"
        "    passed   tests.test_discount::test_discount_never_makes_the_total_negative\n"
        "    ... and 1 more passed\n"
        "all tasks valid\n"
    )


def test_hidden_tests_that_already_pass_make_the_task_invalid(tmp_path: Path) -> None:
    task = copy_task(tmp_path)
    (task / "tests" / "test_discount.py").write_text("def test_nothing_to_fix():\n    pass\n")
    proc = run_lancer("check", str(task), *FAST)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[:3] == [
        "invoice-discount: INVALID: the hidden tests already pass on the original code",
        "  original code: passed (the hidden tests passed: 1 of 1)",
        "    all 1 passed",
    ]


def test_a_reference_patch_that_does_not_pass_makes_the_task_invalid(tmp_path: Path) -> None:
    task = copy_task(tmp_path)
    (task / "solution.yaml").unlink()
    # Fixes the order of discount and tax, but forgets that a total is never negative.
    (task / "solution.patch").write_text(
        "--- a/invoice.py\n+++ b/invoice.py\n@@ -11,2 +11,2 @@\n"
        "-    taxed = subtotal(items) * (1 + tax_rate)\n-    return round(taxed - discount, 2)\n"
        "+    return round((subtotal(items) - discount) * (1 + tax_rate), 2)\n"
        "+\n"
    )
    proc = run_lancer("check", str(task), *FAST)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines()[0] == (
        "invoice-discount: INVALID: the reference solution does not pass: "
        "1 of 3 hidden tests failed: tests.test_discount::test_discount_never_makes_the_total_negative"
    )


def test_tests_that_cannot_run_on_the_original_code_make_the_task_invalid(tmp_path: Path) -> None:
    task = copy_task(tmp_path)
    (task / "tests" / "test_discount.py").write_text("import pytest\n\ndef test_x():\n    pytest.skip('later')\n")
    proc = run_lancer("check", str(task), *FAST)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == (
        "invoice-discount: INVALID: the hidden tests cannot run on the original code (a harness error): "
        "every hidden test was skipped (1 skipped): none ran"
    )


def test_a_folder_of_tasks_is_checked_task_by_task(tmp_path: Path) -> None:
    copy_task(tmp_path / "set", "a")
    no_solution = copy_task(tmp_path / "set", "b")
    (no_solution / "solution.yaml").unlink()
    (tmp_path / "set" / "not-a-task").mkdir()
    proc = run_lancer("check", str(tmp_path / "set"), *FAST)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0] == "invoice-discount: valid"
    no_reference = "no reference solution: add solution.patch or solution.yaml to the task folder"
    assert f"invoice-discount: INVALID: {no_reference}" in lines
    assert lines[-1] == "1 invalid task(s)"


def test_a_folder_without_tasks_is_an_error(tmp_path: Path) -> None:
    proc = run_lancer("check", str(tmp_path))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"lancer: error: {tmp_path} holds no task.yaml (nor Harbor's task.toml), nor task folders that do"
    )
