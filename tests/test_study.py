"""`lancer show` and `lancer compare`: what a user studying runs reads."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import EXAMPLES, run_lancer


def _run(task: str, out: Path, script: str = "solution.yaml") -> None:
    proc = run_lancer("run", str(EXAMPLES / task), "--model", f"scripted:{EXAMPLES / task / script}", "--out", str(out))
    assert proc.returncode == 0, proc.stderr


def test_show_prints_each_step_with_its_calls_and_outputs(tmp_path: Path) -> None:
    _run("invoice-discount", tmp_path / "run")
    proc = run_lancer("show", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith("invoice-discount (ic_swe, $250) with scripted:")
    assert "── step 2" in text and "Reproducing the report" in text and "\n  100.0\n" in text
    assert "exit: submitted" in text and "resolved: True  earned: $250.00" in text


def test_compare_totals_earnings_across_runs(tmp_path: Path) -> None:
    _run("invoice-discount", tmp_path / "a")
    _run("manager-date-format", tmp_path / "b")
    proc = run_lancer("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert proc.returncode == 0, proc.stderr
    assert "invoice-discount" in proc.stdout and "manager-date-format" in proc.stdout
    by_model = [line.split()[1:] for line in proc.stdout.split("by model")[1].splitlines() if "scripted:" in line]
    assert by_model == [
        ["ic_swe", "1", "1", "100.0%", "$250.00", "$250.00", "100.0%", "$0.0000", "0"],
        ["swe_manager", "1", "1", "100.0%", "$500.00", "$500.00", "100.0%", "$0.0000", "0"],
    ]


def test_show_of_a_folder_without_a_run_is_one_clear_line(tmp_path: Path) -> None:
    proc = run_lancer("show", str(tmp_path))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"lancer: error: {tmp_path} holds no run: give a run directory written by lancer run,"
        " or an ATIF trajectory.json"
    )
