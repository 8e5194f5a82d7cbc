"""SWE-Lancer tasks from a CSV, run for real: manager tasks in the docker sandbox (they have
no code: an empty working tree), and IC tasks whose code lives only in their image, refused
before the run when they cannot run (local sandbox, image missing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from lancer.core.errors import SandboxError
from lancer.core.sandbox import SandboxSpec
from lancer.formats.swelancer import select_tasks
from lancer.sandbox.docker import DockerSandbox, base_image, connect
from tests.conftest import ROOT, SWELANCER_LITE_CSV, run_lancer
from tests.test_docker_sandbox import lancer_containers

pytestmark = pytest.mark.docker

CURRENT_CSV = ROOT / "tests" / "data" / "all_swelancer_tasks_sample.csv"


def containers_of(task_id: str) -> list[Any]:
    client = connect()
    try:
        return lancer_containers(client, task_id)
    finally:
        client.close()


def manager_turns(tmp_path: Path, proposal_id: int) -> Path:
    """Look at the working tree, then pick ``proposal_id``."""
    path = tmp_path / "turns.yaml"
    steps = [
        {"name": "bash", "arguments": {"command": "pwd; git status --short | wc -l; ls -A | tr '\\n' ' '"}},
        {"name": "submit", "arguments": {"proposal_id": proposal_id}},
    ]
    path.write_text(yaml.safe_dump({"turns": [{"tool_calls": [step]} for step in steps]}))
    return path


@pytest.mark.parametrize(
    ("csv_path", "task_id"), [(SWELANCER_LITE_CSV, "15193-manager-0"), (CURRENT_CSV, "90002-manager-0")]
)
def test_a_manager_task_runs_in_docker_on_an_empty_working_tree(tmp_path: Path, csv_path: Path, task_id: str) -> None:
    (task,) = select_tasks(csv_path, ids=[task_id])
    assert task.correct_proposal is not None
    out = tmp_path / "run"
    proc = run_lancer(
        "run", task_id, "--dataset", str(csv_path), "--sandbox", "docker", "--out", str(out),
        "--model", f"scripted:{manager_turns(tmp_path, task.correct_proposal)}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert (result["exit_status"], result["resolved"], result["earned"]) == ("submitted", True, task.price)
    assert result["answer"] == {"proposal_id": task.correct_proposal}
    steps = [json.loads(line) for line in (out / "trajectory.jsonl").read_text().splitlines()]
    looked = steps[2]["observations"][0]["output"]
    assert looked.split() == ["/repo", "0", ".git"]  # an empty tree with lancer's baseline commit
    assert containers_of(task_id) == []


def test_an_ic_task_whose_code_is_in_its_image_is_refused_by_the_local_sandbox(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_lancer(
        "run", "90001_101", "--dataset", str(CURRENT_CSV), "--model", "scripted:none.yaml", "--out", str(out)
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "lancer: error: task 90001_101's code is in its image (swelancer/swelancer_x86_90001_101:releasev1), "
        "which the local sandbox cannot use: run it with --sandbox docker"
    ]
    assert not out.exists()


def test_an_ic_task_whose_image_is_missing_is_refused_with_how_to_get_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_lancer(
        "run", "90004_202", "--dataset", str(CURRENT_CSV), "--sandbox", "docker", "--model", "scripted:none.yaml",
        "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 2
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("lancer: error:")]
    image = "swelancer/swelancer_x86_90004_202:releasev1"
    assert line.startswith(
        f"lancer: error: task 90004_202: image {image} is not on this machine and could not be pulled"
    )
    assert f"`docker pull {image}`" in line
    assert "`uv run python scripts/build_images.py 90004_202 --skip-push`" in line
    assert "--image swelancer_x86_90004_202:latest" in line
    assert not out.exists()
    assert containers_of("90004_202") == []


def test_an_image_without_the_working_tree_a_task_needs_is_one_clear_line() -> None:
    spec = SandboxSpec(repo_dir=None, image=base_image(), workdir="/app/expensify", label="pytest-no-tree")
    with pytest.raises(SandboxError) as caught:
        DockerSandbox(spec)
    assert str(caught.value) == (
        "the image has no /app/expensify: a task without a repo/ folder needs an image that holds its code "
        "at container.workdir"
    )
    assert containers_of("pytest-no-tree") == []
