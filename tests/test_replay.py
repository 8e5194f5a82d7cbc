"""`lancer replay RUN`: the task comes from the trajectory header; the replay says whether
the run reproduces (each step's observations, the patch) and what changed when it does not."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

from lancer.agent.provenance import task_hashes
from lancer.core.tasks import load_task
from tests.conftest import EXAMPLES, run_lancer
from tests.fakes.conversation import OPENAI_KEY
from tests.fakes.llm_server import FakeLLMServer


def record(task: Path | str, out: Path, *extra: str, script: Path | None = None) -> dict[str, Any]:
    script = script or Path(task) / "solution.yaml"
    proc = run_lancer("run", str(task), "--model", f"scripted:{script}", "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "trajectory.jsonl").read_text().splitlines()[0])  # type: ignore[no-any-return]


def test_a_replay_of_a_bundled_run_reproduces_it_without_naming_the_task(tmp_path: Path) -> None:
    task = EXAMPLES / "invoice-discount"
    header = record(task, tmp_path / "run")
    assert header["task_source"] == {"folder": str(task)}
    assert header["task_hashes"] == task_hashes(load_task(task))

    proc = run_lancer("replay", str(tmp_path / "run"), "--out", str(tmp_path / "replay"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in proc.stderr
    assert proc.stdout.splitlines() == [
        f"replay of {tmp_path / 'run'} in {tmp_path / 'replay'}",
        "steps: the observations of all 5 steps match the recording",
        "patch: the same as the recorded patch.diff",
        "verdict: recorded resolved (exit: submitted, earned $250.00), "
        "replayed resolved (exit: submitted, earned $250.00)",
        "REPRODUCED",
    ]
    assert (tmp_path / "replay" / "patch.diff").read_bytes() == (tmp_path / "run" / "patch.diff").read_bytes()
    assert json.loads((tmp_path / "replay" / "replay.json").read_text())["reproduced"] is True


def test_a_changed_task_repo_is_warned_and_the_first_differing_step_and_the_patch_shown(tmp_path: Path) -> None:
    task = tmp_path / "task"
    shutil.copytree(EXAMPLES / "invoice-discount", task)
    record(task, tmp_path / "run")
    code = task / "repo" / "invoice.py"
    code.write_text(code.read_text().replace("for price, quantity in items)", "for price, quantity in items) + 1"))

    proc = run_lancer("replay", str(tmp_path / "run"), "--out", str(tmp_path / "replay"))
    assert proc.returncode == 1
    assert (
        "warning: the task differs from the recorded one: its repo changed since the run "
        "(the replay may not reproduce)" in proc.stderr
    )
    out = proc.stdout
    # Step 1 (a grep) still matches; step 2 runs the changed code.
    assert 'first differing step: 2, bash {"command": "python3 -c \'import invoice;' in out
    assert "  recorded output:\n    100.0\n  replayed output:\n    101.1\n" in out
    assert (
        "patch: differs from the recorded patch.diff\n    --- recorded/patch.diff\n    +++ replayed/patch.diff" in out
    )
    assert "replayed not resolved (exit: submitted, earned $0.00)" in out
    assert out.rstrip().endswith("NOT REPRODUCED")
    check = json.loads((tmp_path / "replay" / "replay.json").read_text())
    assert (check["reproduced"], check["task_changes"], check["first_difference"]["step"]) == (False, ["repo"], 2)


def test_a_dataset_task_is_found_again_by_its_csv_and_id(tmp_path: Path) -> None:
    dataset = tmp_path / "tasks.csv"
    proposals = [{"id": 1, "content": "Retry the upload."}, {"id": 2, "content": "Fix the MIME type check."}]
    with dataset.open("w", newline="") as f:
        writer = csv.DictWriter(
            f, ["question_id", "variant", "price", "title", "description", "proposals", "manager_data"]
        )
        writer.writeheader()
        writer.writerow(
            {
                "question_id": "777-manager-0",
                "variant": "swe_manager",
                "price": "1000",
                "title": "PDF receipts fail to upload",
                "description": "Uploading a PDF receipt shows an error.",
                "proposals": "".join(f"Proposal: {p['id']}:\n{p['content']}\n\n--------\n" for p in proposals),
                "manager_data": repr({"game": {"correct_proposal": {"id": 2}}}),
            }
        )
    script = tmp_path / "choose.yaml"
    script.write_text("turns:\n  - tool_calls: [{name: submit, arguments: {proposal_id: 2}}]\n")
    header = record("777-manager-0", tmp_path / "run", "--dataset", str(dataset), script=script)
    assert header == {**header, "task_source": {"dataset": str(dataset), "id": "777-manager-0"}}
    assert header["task"]["proposals"] == proposals and "correct_proposal" not in header["task"]

    proc = run_lancer("replay", str(tmp_path / "run"), "--out", str(tmp_path / "replay"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "replayed resolved (exit: submitted, earned $1,000.00)" in proc.stdout


def test_a_run_that_does_not_say_where_its_task_is_needs_the_task_named(tmp_path: Path) -> None:
    record(EXAMPLES / "invoice-discount", tmp_path / "run")
    trajectory = tmp_path / "run" / "trajectory.jsonl"
    lines = trajectory.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    del header["task_source"], header["task_hashes"]  # as lancer 0.1.0 wrote it
    trajectory.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))

    proc = run_lancer("replay", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"lancer: error: {trajectory} does not record where its task came from (an older or in-code run); "
        "name the task: lancer replay RUN --task TASK [--dataset CSV]"
    )
    named = run_lancer("replay", str(tmp_path / "run"), "--task", str(EXAMPLES / "invoice-discount"))
    assert named.returncode == 0, named.stdout + named.stderr
    assert named.stdout.rstrip().endswith("REPRODUCED")


def test_a_web_run_of_a_model_that_takes_images_reproduces_though_ports_and_temp_paths_differ(
    tmp_path: Path,
) -> None:
    task = EXAMPLES / "web-todo-delete"
    with FakeLLMServer.from_turns_file(task / "solution.yaml") as server:
        env = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": server.openai_base_url}
        proc = run_lancer("run", str(task), "--model", "openai:gpt-4o", "--out", str(tmp_path / "run"), env=env)
    assert proc.returncode == 0, proc.stderr
    proc = run_lancer("replay", str(tmp_path / "run"), "--out", str(tmp_path / "replay"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "steps: the observations of all 9 steps match the recording" in proc.stdout
    assert proc.stdout.rstrip().endswith("REPRODUCED")
    # The replay attached the screenshot as the recorded model (one that takes images) had it.
    replayed = [json.loads(line) for line in (tmp_path / "replay" / "trajectory.jsonl").read_text().splitlines()]
    shots = [o["images"] for r in replayed if r["type"] == "step" for o in r["observations"] if o["images"]]
    assert shots[0] == [str(tmp_path / "replay" / "screenshots" / "shot-001.png")]


def test_a_replay_cut_short_by_its_config_says_how_many_steps_each_has(tmp_path: Path) -> None:
    record(EXAMPLES / "invoice-discount", tmp_path / "run")
    config = tmp_path / "short.yaml"
    config.write_text("limits:\n  max_steps: 3\n")
    proc = run_lancer("replay", str(tmp_path / "run"), "--config", str(config), "--out", str(tmp_path / "replay"))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[1:3] == [
        "steps: the recording has 5, the replay 3; the observations of the first 3 match",
        "patch: the same as the recorded patch.diff",  # step 3 made the fix
    ]
    assert "replayed resolved (exit: step_limit, earned $250.00)" in lines[3]
    assert lines[-1] == "NOT REPRODUCED"
