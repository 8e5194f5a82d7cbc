"""Whole runs through the CLI and run_task: verdicts, limits, exit statuses, trajectories."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from lancer.agent.runner import run_task
from lancer.core.config import load_config
from lancer.core.tasks import load_task
from lancer.core.trajectory import read_trajectory
from lancer.models import create_model
from tests.conftest import EXAMPLES, ROOT, lancer_argv, run_lancer

IC_TASK = EXAMPLES / "invoice-discount"
MANAGER_TASK = EXAMPLES / "manager-date-format"
RESULT_FIELDS = {
    "task_id",
    "variant",
    "price",
    "resolved",
    "earned",
    "exit_status",
    "steps",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "grade",
}


def script(tmp_path: Path, turns: list[dict[str, Any]], name: str = "turns.yaml") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"turns": turns}))
    return path


def bash_turn(command: str, **extra: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": "bash", "arguments": {"command": command}}], **extra}


SUBMIT = {"tool_calls": [{"name": "submit", "arguments": {}}]}
WRONG_FIX = {
    "tool_calls": [
        {
            "name": "editor",
            "arguments": {
                "command": "str_replace",
                "path": "invoice.py",
                "old_str": "return round(taxed - discount, 2)",
                "new_str": "return round(taxed - discount * 1.1, 2)",
            },
        }
    ]
}


def run(
    tmp_path: Path, turns: list[dict[str, Any]], task: Path = IC_TASK, **limits: Any
) -> tuple[dict[str, Any], Path]:
    config = load_config(None, {f"limits.{k}": v for k, v in limits.items()})
    out = tmp_path / "run"
    result = run_task(load_task(task), create_model(f"scripted:{script(tmp_path, turns)}"), config, out)
    return result, out


def test_the_readme_example_resolves_and_prints_the_dollars(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_lancer("run", str(IC_TASK), "--model", f"scripted:{IC_TASK / 'solution.yaml'}", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "RESOLVED" in proc.stderr and "earned $250.00 of $250.00" in proc.stderr
    assert "Traceback" not in proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result.keys() >= RESULT_FIELDS
    assert (result["resolved"], result["earned"], result["exit_status"], result["steps"]) == (
        True,
        250.0,
        "submitted",
        5,
    )
    patch = (out / "patch.diff").read_text()
    assert "+    discounted = max(subtotal(items) - discount, 0.0)" in patch
    assert "__pycache__" not in patch
    records = read_trajectory(out / "trajectory.jsonl")
    assert [r["type"] for r in records] == ["header", "prompt", *["step"] * 5, "final"]
    system, task_prompt = records[1]["messages"]
    assert system["role"] == "system" and "- editor: View, create and edit files." in system["content"]
    assert task_prompt["content"].startswith("# Task: Discounts are taxed")
    assert "This is a web app" not in task_prompt["content"]
    assert records[0]["task"]["id"] == "invoice-discount" and records[0]["format_version"] == 1
    assert records[3]["observations"][0]["output"].strip() == "100.0"  # the bug, reproduced
    assert records[-1]["exit_status"] == "submitted"


def test_a_wrong_fix_is_not_resolved(tmp_path: Path) -> None:
    result, out = run(tmp_path, [WRONG_FIX, SUBMIT])
    assert result["exit_status"] == "submitted"
    assert (result["resolved"], result["earned"]) == (False, 0.0)
    assert result["grade"]["status"] == "failed"
    assert "failed" in result["grade"]["output_tail"]
    assert "discount * 1.1" in (out / "patch.diff").read_text()


def test_manager_task_right_and_wrong_choice(tmp_path: Path) -> None:
    def choose(n: int) -> list[dict[str, Any]]:
        return [{"tool_calls": [{"name": "submit", "arguments": {"proposal_id": n}}]}]

    right, _ = run(tmp_path / "a", choose(2), task=MANAGER_TASK)
    wrong, _ = run(tmp_path / "b", choose(3), task=MANAGER_TASK)
    assert (right["resolved"], right["earned"], right["answer"]) == (True, 500.0, {"proposal_id": 2})
    assert (wrong["resolved"], wrong["earned"]) == (False, 0.0)


def test_manager_prompt_lists_the_proposals_but_never_the_answer(tmp_path: Path) -> None:
    result, out = run(
        tmp_path,
        [
            {"tool_calls": [{"name": "submit", "arguments": {"proposal_id": 7}}]},
            {"tool_calls": [{"name": "submit", "arguments": {"proposal_id": 1}}]},
        ],
        task=MANAGER_TASK,
    )
    text = (out / "trajectory.jsonl").read_text()
    assert "correct_proposal" not in text
    records = read_trajectory(out / "trajectory.jsonl")
    assert "there is no proposal 7" in records[2]["observations"][0]["output"]
    assert result["answer"] == {"proposal_id": 1}


def test_step_limit(tmp_path: Path) -> None:
    result, out = run(tmp_path, [bash_turn("echo 1")] * 5, max_steps=2)
    assert (result["exit_status"], result["steps"]) == ("step_limit", 2)
    assert read_trajectory(out / "trajectory.jsonl")[-1]["exit_status"] == "step_limit"


def test_cost_limit_stops_before_passing_it(tmp_path: Path) -> None:
    costly = bash_turn("echo spend", usage={"input_tokens": 1000, "output_tokens": 10, "cost_usd": 0.6})
    result, _ = run(tmp_path, [costly] * 5, cost_limit_usd=1.0)
    assert (result["exit_status"], result["steps"]) == ("cost_limit", 2)
    assert result["cost_usd"] == pytest.approx(1.2)
    assert (result["input_tokens"], result["output_tokens"]) == (2000, 20)


def test_time_limit(tmp_path: Path) -> None:
    result, _ = run(tmp_path, [bash_turn("sleep 1.2")] * 5, time_limit_s=1.0)
    assert (result["exit_status"], result["steps"]) == ("time_limit", 1)


def test_malformed_calls_go_back_to_the_model_then_end_the_run(tmp_path: Path) -> None:
    turns: list[dict[str, Any]] = [
        {"tool_calls": [{"name": "grep", "arguments": {"pattern": "x"}}]},
        {"tool_calls": [{"name": "bash", "arguments": {"cmd": "ls"}}]},
        {"content": "I think it is fixed."},
    ]
    result, out = run(tmp_path, [*turns, SUBMIT], max_format_errors=3)
    assert (result["exit_status"], result["steps"]) == ("format_errors", 3)
    steps = [r for r in read_trajectory(out / "trajectory.jsonl") if r["type"] == "step"]
    assert "unknown tool 'grep'; the tools are: bash, editor, submit" in steps[0]["observations"][0]["output"]
    assert "command: Field required" in steps[1]["observations"][0]["output"]
    assert "cmd: Extra inputs are not permitted" in steps[1]["observations"][0]["output"]


def test_a_good_call_resets_the_format_error_count(tmp_path: Path) -> None:
    bad = {"tool_calls": [{"name": "nope", "arguments": {}}]}
    result, _ = run(tmp_path, [bad, bad, bash_turn("true"), bad, bad, SUBMIT], max_format_errors=3)
    assert result["exit_status"] == "submitted"


def test_model_error_when_the_model_fails(tmp_path: Path) -> None:
    result, _ = run(tmp_path, [bash_turn("echo one")])
    assert result["exit_status"] == "model_error"
    assert "no turn left" in result["detail"]
    # A model error is not the model's failed fix: the run is not graded.
    assert (result["resolved"], result["grade"]) == (False, None)


def test_replay_reproduces_a_recorded_run(tmp_path: Path) -> None:
    first = tmp_path / "first"
    assert (
        run_lancer(
            "run", str(IC_TASK), "--model", f"scripted:{IC_TASK / 'solution.yaml'}", "--out", str(first)
        ).returncode
        == 0
    )
    second = tmp_path / "second"
    proc = run_lancer("run", str(IC_TASK), "--model", f"replay:{first / 'trajectory.jsonl'}", "--out", str(second))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((second / "result.json").read_text())["resolved"] is True
    assert (first / "patch.diff").read_bytes() == (second / "patch.diff").read_bytes()


def test_secrets_never_reach_the_run_files(tmp_path: Path) -> None:
    key = "sk-live-abcdefghijklmnopqrstuvwxyz123456"
    turns = [{"content": f"my key is {key}", **bash_turn(f"echo {key}")}, SUBMIT]
    out = tmp_path / "run"
    proc = run_lancer(
        "run",
        str(IC_TASK),
        "--model",
        f"scripted:{script(tmp_path, turns)}",
        "--out",
        str(out),
        env={"OPENAI_API_KEY": key},
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("trajectory.jsonl", "result.json", "patch.diff"):
        assert key not in (out / name).read_text()
    assert "[REDACTED]" in (out / "trajectory.jsonl").read_text()
    assert key not in proc.stdout + proc.stderr


def _start_run(tmp_path: Path, turns: list[dict[str, Any]]) -> tuple[subprocess.Popen[str], Path]:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        lancer_argv("run", str(IC_TASK), "--model", f"scripted:{script(tmp_path, turns)}", "--out", str(out)),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, out


def _wait_for_steps(out: Path, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = out / "trajectory.jsonl"
        if path.exists() and sum(r["type"] == "step" for r in read_trajectory(path)) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"the run did not finish {count} steps in {timeout} s")


def _sleepers(tag: str) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if line.startswith(f"sleep {tag}")]


def test_kill_9_leaves_every_finished_step_readable(tmp_path: Path) -> None:
    proc, out = _start_run(
        tmp_path, [bash_turn("echo first"), bash_turn("echo second"), bash_turn("sleep 77.5"), SUBMIT]
    )
    _wait_for_steps(out, 2)
    time.sleep(0.5)  # inside the third step's sleep
    proc.kill()
    proc.wait()
    records = read_trajectory(out / "trajectory.jsonl")
    lines = (out / "trajectory.jsonl").read_text().splitlines()
    assert len(records) == len(lines) == 4  # header, prompt, two finished steps: every line whole
    assert [r["observations"][0]["output"].strip() for r in records[2:]] == ["first", "second"]
    subprocess.run(["pkill", "-f", "sleep 77.5"], check=False)
    # What the killed run left, `lancer sandbox prune` removes.
    left = [p.parent for p in Path(tempfile.gettempdir()).glob("lancer-*/lancer.pid") if p.read_text() == str(proc.pid)]
    assert len(left) == 1
    pruned = run_lancer("sandbox", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "local sandbox or browser temp folder(s)" in pruned.stdout and not left[0].exists()


def test_ctrl_c_ends_the_run_as_interrupted_and_cleans_up(tmp_path: Path) -> None:
    edit = {
        "tool_calls": [
            {
                "name": "editor",
                "arguments": {
                    "command": "str_replace",
                    "path": "invoice.py",
                    "old_str": "taxed - discount",
                    "new_str": "taxed - 2 * discount",
                },
            }
        ]
    }
    proc, out = _start_run(tmp_path, [edit, bash_turn("sleep 88.5"), SUBMIT])
    _wait_for_steps(out, 1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr  # an interrupted run is not a finished one
    result = json.loads((out / "result.json").read_text())
    assert (result["exit_status"], result["resolved"], result["grade"]) == ("interrupted", False, None)
    assert "taxed - 2 * discount" in (out / "patch.diff").read_text()
    assert read_trajectory(out / "trajectory.jsonl")[-1]["exit_status"] == "interrupted"
    assert _sleepers("88.5") == []
    assert not [
        p
        for p in Path("/tmp").glob("lancer-*")
        if (p / "repo" / "invoice.py").exists() and "2 * discount" in (p / "repo" / "invoice.py").read_text()
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no/such/task", "--model", "scripted:x.yaml"], "task folder no/such/task does not exist"),
        (["run", str(IC_TASK), "--model", "gpt-4o"], "model spec 'gpt-4o' is not provider:model"),
        (["run", str(IC_TASK), "--model", "nosuch:model"], "unknown model provider 'nosuch'"),
        (["run", str(IC_TASK), "--model", "scripted:missing.yaml"], "scripted model file missing.yaml does not exist"),
        (["grade", str(IC_TASK), "missing.diff"], "patch file missing.diff does not exist"),
    ],
)
def test_bad_command_line_input_is_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run_lancer(*args, "--out", str(tmp_path / "o")) if args[0] == "run" else run_lancer(*args)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"lancer: error: {message}" or message in proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "id: t\nvariant: ic_swe\nprice: 1\ntitle: t\ndescripton: typo\n",
            "description: Field required; descripton: Extra inputs are not permitted",
        ),
        (
            "id: t\nvariant: freelance\nprice: 1\ntitle: t\ndescription: d\n",
            "variant: Input should be 'ic_swe' or 'swe_manager'",
        ),
        ("id: t\nvariant: ic_swe\nprice: lots\ntitle: t\ndescription: d\n", "price: Input should be a valid number"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("id: [unclosed\n", "is not valid YAML"),
        (
            "id: t\nvariant: swe_manager\nprice: 1\ntitle: t\ndescription: d\n"
            "proposals: [{id: 1, content: c}]\ncorrect_proposal: 2\n",
            "correct_proposal 2 is not one of the proposal ids",
        ),
    ],
)
def test_bad_task_yaml_names_the_file_and_the_field(tmp_path: Path, yaml_text: str, message: str) -> None:
    task = tmp_path / "task"
    (task / "repo").mkdir(parents=True)
    (task / "task.yaml").write_text(yaml_text)
    proc = run_lancer(
        "run", str(task), "--model", f"scripted:{IC_TASK / 'solution.yaml'}", "--out", str(tmp_path / "o")
    )
    assert proc.returncode == 2
    assert message in proc.stderr and str(task / "task.yaml") in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_config_typo_is_an_error_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "lancer.yaml"
    config.write_text("limits:\n  max_stepz: 3\n")
    proc = run_lancer("run", str(IC_TASK), "--model", f"scripted:{IC_TASK / 'solution.yaml'}", "--config", str(config))
    assert proc.returncode == 2
    assert f"{config}: limits.max_stepz: Extra inputs are not permitted" in proc.stderr


def test_the_run_directory_defaults_under_runs(tmp_path: Path) -> None:
    proc = run_lancer(
        "run", str(IC_TASK.resolve()), "--model", f"scripted:{(IC_TASK / 'solution.yaml').resolve()}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("invoice-discount-")
    assert {p.name for p in run_dir.iterdir()} == {"trajectory.jsonl", "patch.diff", "result.json", "lancer.log"}
    assert os.path.getsize(run_dir / "patch.diff") > 0


def test_out_never_replaces_another_run_without_force(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", str(IC_TASK), "--model", f"scripted:{IC_TASK / 'solution.yaml'}", "--out", str(out)]
    assert run_lancer(*args).returncode == 0
    first = (out / "trajectory.jsonl").read_text()
    again = run_lancer(*args)
    assert again.returncode == 2
    assert f"{out} already holds a run: give another --out, or add --force to replace it" in again.stderr
    assert (out / "trajectory.jsonl").read_text() == first
    forced = run_lancer(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (out / "trajectory.jsonl").read_text() != first  # a new run (another start time)


def test_what_setup_commands_change_stays_out_of_the_patch(tmp_path: Path) -> None:
    task = tmp_path / "task"
    shutil.copytree(IC_TASK, task)
    (task / "task.yaml").write_text((task / "task.yaml").read_text() + "setup: ['echo generated > build-info.txt']\n")
    result, out = run(tmp_path, [bash_turn("cat build-info.txt && echo agent > notes.txt"), SUBMIT], task=task)
    patch = (out / "patch.diff").read_text()
    assert "notes.txt" in patch and "build-info.txt" not in patch
    assert result["grade"]["status"] == "failed"  # graded, with the setup run again before the patch


def test_a_web_task_prompt_points_the_model_at_the_browser() -> None:
    from lancer.core.templates import render

    web = render("ic_swe.j2", task=load_task(EXAMPLES / "web-todo-delete"), workdir="/repo")
    assert "This is a web app. The `browser` tool opens it" in web
    assert "user_tool" in web
