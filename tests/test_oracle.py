"""``--model oracle`` (each task's reference solution) and ``scripted:DIR`` (a script per task)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from lancer.agent.runner import run_task
from lancer.core.config import load_config
from lancer.core.errors import ConfigError, ModelError
from lancer.core.tasks import load_task
from lancer.core.trajectory import read_trajectory
from lancer.formats.swelancer import load_swelancer_task, read_rows
from lancer.models import create_model
from tests.conftest import EXAMPLES, SWELANCER_LITE_CSV, run_lancer

IC_TASK = EXAMPLES / "invoice-discount"
THE_FIX = (
    "    taxed = subtotal(items) * (1 + tax_rate)\n    return round(taxed - discount, 2)\n",
    "    discounted = max(subtotal(items) - discount, 0.0)\n    return round(discounted * (1 + tax_rate), 2)\n",
)


@pytest.mark.parametrize("task", sorted(p.name for p in EXAMPLES.iterdir() if (p / "task.yaml").is_file()))
def test_the_oracle_resolves_every_bundled_task(task: str, tmp_path: Path) -> None:
    proc = run_lancer("run", str(EXAMPLES / task), "--model", "oracle", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert (result["resolved"], result["earned"], result["model"]) == (True, result["price"], "oracle")
    assert f"RESOLVED  earned ${result['price']:,.2f} of ${result['price']:,.2f}" in proc.stderr


def test_the_oracle_earns_the_full_price_of_every_swelancer_manager_task(tmp_path: Path) -> None:
    ids = [row["question_id"] for row in read_rows(SWELANCER_LITE_CSV) if row["variant"] == "swe_manager"]
    assert len(ids) == 113
    config = load_config(None, {})
    earned = possible = 0.0
    for task_id in ids:
        task = load_swelancer_task(task_id, SWELANCER_LITE_CSV)
        result = run_task(task, create_model("oracle", config.model, task), config, tmp_path / task_id)
        assert result["resolved"], (task_id, result["grade"])
        earned, possible = earned + result["earned"], possible + task.price
    assert earned == possible == 202_000  # DESIGN.md: 113 manager tasks worth $202,000
    # And as a user runs one, the CSV named as users name it:
    proc = run_lancer("run", ids[0], "--dataset", "swelancer-lite", "--model", "oracle", "--out", str(tmp_path / "cli"))
    assert proc.returncode == 0 and "RESOLVED" in proc.stderr, proc.stderr
    assert (
        json.loads((tmp_path / "cli" / "result.json").read_text())["earned"]
        == load_swelancer_task(ids[0], SWELANCER_LITE_CSV).price
    )


def patch_task(tmp_path: Path) -> tuple[Path, bytes]:
    """invoice-discount without solution.yaml, with its fix as a git diff in solution.patch.

    The fix also adds a file that is not UTF-8, so the patch must reach the sandbox byte for byte.
    """
    task = tmp_path / "task"
    shutil.copytree(IC_TASK, task)
    (task / "solution.yaml").unlink()
    work = tmp_path / "work"
    shutil.copytree(task / "repo", work)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(work)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    source = work / "invoice.py"
    source.write_text(source.read_text().replace(*THE_FIX))
    (work / "NOTES.latin1").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    subprocess.run([*git, "add", "-A"], check=True)
    patch = subprocess.run([*git, "diff", "--cached", "--binary"], check=True, capture_output=True).stdout
    (task / "solution.patch").write_bytes(patch)
    return task, patch


def test_the_oracle_applies_a_solution_patch_through_the_tools(sandbox_kind: str, tmp_path: Path) -> None:
    task, _ = patch_task(tmp_path)
    out = tmp_path / "run"
    proc = run_lancer("run", str(task), "--model", "oracle", "--sandbox", sandbox_kind, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["resolved"] and result["exit_status"] == "submitted", result
    steps = [r for r in read_trajectory(out / "trajectory.jsonl") if r["type"] == "step"]
    assert [c["name"] for s in steps for c in s["tool_calls"]] == ["bash", "submit"]
    assert "solution.patch (NOTES.latin1, invoice.py)" in steps[0]["content"]
    patch = (out / "patch.diff").read_bytes()
    assert b"+    discounted = max(subtotal(items) - discount, 0.0)" in patch
    assert "caf\xe9 cr\xe8me".encode("latin-1") in patch  # not mangled on the way


def test_a_solution_patch_that_does_not_apply_is_a_model_error_saying_why(tmp_path: Path) -> None:
    task, patch = patch_task(tmp_path)
    (task / "solution.patch").write_bytes(patch.replace(b"return round(taxed - discount, 2)", b"return 0"))
    loaded = load_task(task)
    result = run_task(loaded, create_model("oracle", None, loaded), load_config(None, {}), tmp_path / "r")
    assert result["exit_status"] == "model_error" and not result["resolved"]
    assert result["detail"].startswith("the solution.patch of task invoice-discount did not apply: error: patch failed")


def test_a_task_without_a_reference_solution_is_refused_before_the_run(tmp_path: Path) -> None:
    task = tmp_path / "task"
    shutil.copytree(IC_TASK, task)
    (task / "solution.yaml").unlink()
    proc = run_lancer("run", str(task), "--model", "oracle", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"lancer: error: task invoice-discount has no reference solution for --model oracle: "
        f"add solution.yaml or solution.patch to {task}"
    )
    assert not (tmp_path / "run").exists()


def test_the_oracle_takes_its_answer_from_the_task_only() -> None:
    with pytest.raises(ConfigError, match="the oracle takes no model name"):
        create_model("oracle:gpt-4o")
    unbound = create_model("oracle")
    with pytest.raises(ModelError, match="was given no task"):
        unbound.query([], [])


def test_scripted_dir_plays_the_script_named_after_each_task(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy(IC_TASK / "solution.yaml", scripts / "invoice-discount.yaml")
    proc = run_lancer("run", str(IC_TASK), "--model", f"scripted:{scripts}", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0 and "RESOLVED  earned $250.00" in proc.stderr, proc.stderr

    manager = EXAMPLES / "manager-date-format"
    proc = run_lancer("run", str(manager), "--model", f"scripted:{scripts}", "--out", str(tmp_path / "run2"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"lancer: error: {scripts} has no manager-date-format.yaml (scripted:DIR plays DIR/<task_id>.yaml per task)"
    )
