"""`lancer grade`: passed, failed, error, a patch that does not apply, retries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import EXAMPLES, run_lancer

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
