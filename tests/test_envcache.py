"""Task environments built once and reused (lancer.sandbox.envcache): real pip and uv, real
bubblewrap sandboxes, real runs and a real eval."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lancer.agent.runner import run_task
from lancer.core.config import RunConfig
from lancer.core.tasks import load_task
from lancer.core.trajectory import read_trajectory
from lancer.models import create_model
from lancer.sandbox import create_sandbox
from lancer.sandbox.taskenv import cache_dir
from tests.conftest import EXAMPLES, run_lancer

SETUP = "pip install -q -e . -r requirements.txt && echo ran >> setup-runs.txt"


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cache of task environments of this test's own (the base environments, which need
    the package index to build, are the machine's)."""
    base_envs = cache_dir() / "envs"
    base_envs.mkdir(parents=True, exist_ok=True)
    own = tmp_path / "cache"
    own.mkdir()
    (own / "envs").symlink_to(base_envs)
    monkeypatch.setenv("LANCER_CACHE_DIR", str(own))
    yield own


def make_task(root: Path, task_id: str = "tiny-double", setup: str = SETUP, requirements: str = "") -> Path:
    """A package installed in editable mode by its setup, offline (build backends come from
    the base environment's wheelhouse), with a hidden test that imports it."""
    folder = root / task_id
    package = folder / "repo" / "tiny"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("def double(x):\n    return x * 2\n")
    (folder / "repo" / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "tiny"\nversion = "1.0"\n'
    )
    (folder / "repo" / "requirements.txt").write_text(requirements or "# nothing yet\n")
    (folder / "tests").mkdir()
    (folder / "tests" / "test_tiny.py").write_text(
        "from tiny import double\n\n\ndef test_double():\n    assert double(2) == 4\n"
    )
    task = {"id": task_id, "variant": "ic_swe", "price": 100, "title": "t", "description": "d", "setup": [setup]}
    (folder / "task.yaml").write_text(yaml.safe_dump(task))
    return folder


def turns(*commands: str) -> list[dict[str, Any]]:
    calls = [{"tool_calls": [{"name": "bash", "arguments": {"command": c}}]} for c in commands]
    return [*calls, {"tool_calls": [{"name": "submit", "arguments": {}}]}]


def run(tmp_path: Path, task: Path, name: str, *commands: str) -> tuple[dict[str, Any], list[str]]:
    """A whole run; its result and the outputs its bash calls showed the model."""
    script = tmp_path / f"{name}.yaml"
    script.write_text(yaml.safe_dump({"turns": turns(*commands)}))
    out = tmp_path / name
    result = run_task(load_task(task), create_model(f"scripted:{script}"), RunConfig(), out)
    steps = [r for r in read_trajectory(out / "trajectory.jsonl") if r["type"] == "step"]
    return result, [str(obs["output"]) for step in steps for obs in step.get("observations", [])]


def environment(task: Path) -> str:
    """What a sandbox of the task says of its environment ("built KEY" / "reused KEY"),
    after checking the setup's editable install works in it."""
    sandbox = create_sandbox("local", load_task(task).sandbox_spec(for_agent=True))
    try:
        check = sandbox.exec(["bash", "-c", "python -c 'import tiny; print(tiny.double(21))'"])
        assert check.text.strip() == "42", check.text
        return str(getattr(sandbox, "environment", ""))
    finally:
        sandbox.close()


def test_an_attempt_starts_from_the_cached_setup_and_cannot_change_it_for_the_next(tmp_path: Path) -> None:
    task = make_task(tmp_path / "tasks")
    first, seen = run(
        tmp_path,
        task,
        "first",
        "pip install -q flit-core && python -c 'import flit_core; print(\"installed\", flit_core.__name__)'",
        "echo changed >> setup-runs.txt && cat setup-runs.txt",
    )
    assert "installed flit_core" in seen[0]
    second, seen = run(tmp_path, task, "second", "python -c 'import flit_core'", "cat setup-runs.txt")
    # The first attempt's install and edit are its own: the second starts from the setup's result.
    assert "ModuleNotFoundError: No module named 'flit_core'" in seen[0]
    assert seen[1].strip() == "ran"  # the setup ran once, for both attempts and both gradings
    for result in (first, second):
        assert result["resolved"] is True, result["grade"]  # the grader's sandbox has the editable install too
        timing = result["timing"]
        assert {k: type(v) for k, v in timing.items() if k != "environment"} == dict.fromkeys(
            ("setup_s", "agent_s", "grading_s"), float
        )
    assert first["timing"]["environment"].startswith("built ")
    assert second["timing"]["environment"] == "reused " + first["timing"]["environment"].split()[1]
    prompt = next(r for r in read_trajectory(tmp_path / "second" / "trajectory.jsonl") if r["type"] == "prompt")
    assert prompt["timing"]["setup_s"] == second["timing"]["setup_s"]


def test_a_changed_requirements_file_or_setup_rebuilds_and_prune_removes_the_entries(tmp_path: Path) -> None:
    task = make_task(tmp_path / "tasks")
    built = environment(task)
    assert built.startswith("built ")
    assert environment(task) == "reused " + built.split()[1]

    (task / "repo" / "requirements.txt").write_text("flit-core\n")
    rebuilt = environment(task)
    assert rebuilt.startswith("built ") and rebuilt != built
    sandbox = create_sandbox("local", load_task(task).sandbox_spec(for_agent=True))
    try:
        assert (
            sandbox.exec(["bash", "-c", "python -c 'import flit_core'"]).exit_code == 0
        )  # the new requirement is there
    finally:
        sandbox.close()

    data = yaml.safe_load((task / "task.yaml").read_text())
    data["setup"] = [SETUP + " && echo again"]
    (task / "task.yaml").write_text(yaml.safe_dump(data))
    assert environment(task).startswith("built ")

    listed = run_lancer("sandbox", "prune", "--envs")
    assert listed.returncode == 0, listed.stderr
    assert "removed 3 cached task environment(s)" in listed.stdout
    assert environment(task).startswith("built ")  # gone: built again when needed


def test_a_failing_setup_in_an_eval_is_one_error_line_per_task_and_no_failed_fix(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    make_task(tasks, "good")
    make_task(tasks, "broken", setup="pip install -q -e . && echo 'no such tool' >&2 && exit 3")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for task_id in ("good", "broken"):
        (scripts / f"{task_id}.yaml").write_text(yaml.safe_dump({"turns": turns()}))
    out = tmp_path / "eval"
    args = ["eval", str(tasks), "--model", f"scripted:{scripts}", "--attempts", "2", "--workers", "2"]
    done = run_lancer(*args, "--out", str(out), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stderr.splitlines()  # lancer prints its progress on stderr
    failed = [line for line in lines if line.startswith("broken: ERROR its environment could not be built")]
    assert len(failed) == 1, done.stderr
    assert (
        "2 attempt(s) not run" in failed[0]
        and "task setup command" in failed[0]
        and "exited 3" in failed[0]
        and "no such tool" in failed[0]
    )
    assert sum(line.startswith("good: environment built") for line in lines) == 1, done.stderr

    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    broken = [r for r in rows if r["task_id"] == "broken"]
    assert [(r["exit_status"], r["resolved"]) for r in broken] == [("error", False)] * 2
    assert not (out / "runs" / "broken").exists()  # its attempts never ran
    good = [r for r in rows if r["task_id"] == "good"]
    assert [r["resolved"] for r in good] == [True, True]
    assert all(r["setup_s"] is not None and r["grading_s"] is not None for r in good)
    summary = json.loads((out / "summary.json").read_text())["overall"]
    assert (summary["errors"], summary["graded"], summary["pass_at"]["1"]) == (2, 2, 1.0)
    assert set(summary["mean_time_s"]) == {"setup_s", "agent_s", "grading_s"}


def test_docker_keeps_the_setup_as_an_image_every_container_starts_from(tmp_path: Path) -> None:
    import docker

    from lancer.sandbox.docker import MANAGED_LABEL

    task_id = f"envcache-{uuid.uuid4().hex[:8]}"
    folder = tmp_path / task_id
    shutil.copytree(EXAMPLES / "invoice-discount", folder)
    data = yaml.safe_load((folder / "task.yaml").read_text())
    data.update(id=task_id, setup=["python3 -c 'print(6 * 7)' > build-info.txt && echo setup > ~/marker"])
    (folder / "task.yaml").write_text(yaml.safe_dump(data))
    spec = load_task(folder).sandbox_spec(for_agent=True)

    seen = []
    for change in ("echo changed > ~/marker && rm build-info.txt", ""):
        sandbox = create_sandbox("docker", spec)
        try:
            seen.append(str(getattr(sandbox, "environment", "")))
            shown = sandbox.exec(["sh", "-c", "cat build-info.txt ~/marker && git status --porcelain"])
            assert shown.text == "42\nsetup\n"  # the setup's result, part of the baseline: not in the patch
            sandbox.exec(["sh", "-c", change or "true"])
        finally:
            sandbox.close()
    assert seen[0].startswith("built ") and seen[1] == "reused " + seen[0].split()[1]

    client = docker.from_env()
    kept = client.images.list(filters={"label": f"{MANAGED_LABEL}=env", "reference": f"lancer-env-{task_id}"})
    assert len(kept) == 1
    pruned = run_lancer("sandbox", "prune", "--envs")
    assert pruned.returncode == 0 and "task environment images" in pruned.stdout, pruned.stdout + pruned.stderr
    assert client.images.list(filters={"reference": f"lancer-env-{task_id}"}) == []
