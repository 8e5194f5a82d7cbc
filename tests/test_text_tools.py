"""The text tools a user studies runs with: show (the task, one step in full), compare
(repeated attempts, unknown costs), models, --version."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from lancer import __version__
from tests.conftest import EXAMPLES, run_lancer
from tests.fakes.conversation import OPENAI_KEY
from tests.fakes.llm_server import FakeLLMServer

IC_TASK = EXAMPLES / "invoice-discount"
MANAGER_TASK = EXAMPLES / "manager-date-format"


def scripted_run(task: Path, out: Path, *extra: str, script: Path | None = None) -> dict[str, object]:
    script = script or task / "solution.yaml"
    proc = run_lancer("run", str(task), "--model", f"scripted:{script}", "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "result.json").read_text())  # type: ignore[no-any-return]


def test_show_starts_with_the_task_text_and_a_manager_task_lists_its_proposals(tmp_path: Path) -> None:
    scripted_run(MANAGER_TASK, tmp_path / "run")
    proc = run_lancer("show", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    task_text = proc.stdout.split("── step 1")[0]
    task = yaml.safe_load((MANAGER_TASK / "task.yaml").read_text())
    assert f"# {task['title']}\nPrice: $500\n" in task_text
    assert task["description"].strip() in task_text
    for proposal in task["proposals"]:
        assert f"## Proposal {proposal['id']}\n{proposal['content'].strip()}" in task_text
    assert "correct" not in (tmp_path / "run" / "trajectory.jsonl").read_text()  # the answer stays out


def test_show_step_prints_one_step_in_full(tmp_path: Path) -> None:
    script = tmp_path / "turns.yaml"
    long_line = "0123456789" * 300
    script.write_text(
        yaml.safe_dump(
            {
                "turns": [
                    {"content": "first look", "tool_calls": [{"name": "bash", "arguments": {"command": "ls"}}]},
                    {
                        "content": "a long output",
                        "tool_calls": [
                            {"name": "bash", "arguments": {"command": "printf '0123456789%.0s' $(seq 300)"}}
                        ],
                    },
                    {"tool_calls": [{"name": "submit", "arguments": {}}]},
                ]
            }
        )
    )
    scripted_run(IC_TASK, tmp_path / "run", script=script)

    everything = run_lancer("show", str(tmp_path / "run")).stdout
    assert long_line not in everything
    assert f"{long_line[:800]}… [2200 more characters; --step 2 shows them]" in everything

    proc = run_lancer("show", str(tmp_path / "run"), "--step", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("invoice-discount (ic_swe, $250) with scripted:")
    assert lines[2].startswith("── step 2  (")
    assert lines[3:] == [
        "a long output",
        """$ bash {"command": "printf '0123456789%.0s' $(seq 300)"}""",
        f"  {long_line}",
    ]


def test_show_of_a_step_the_run_lacks_names_the_steps_it_has(tmp_path: Path) -> None:
    scripted_run(IC_TASK, tmp_path / "run")
    proc = run_lancer("show", str(tmp_path / "run"), "--step", "9")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"lancer: error: {tmp_path / 'run'} has no step 9 (it has steps 1-5)"


def test_compare_counts_a_task_once_however_often_tried_and_says_unknown_costs(tmp_path: Path) -> None:
    scripted = [
        scripted_run(IC_TASK, tmp_path / "s1"),
        scripted_run(IC_TASK, tmp_path / "s2"),
        scripted_run(IC_TASK, tmp_path / "s3", "--max-steps", "2"),  # stops before the fix: not resolved
    ]
    assert [r["resolved"] for r in scripted] == [True, True, False]
    # An OpenAI-compatible model lancer has no price for: its cost is unknown unless the config gives one.
    priced = tmp_path / "priced.yaml"
    priced.write_text(json.dumps({"model": {"price": {"input": 1.0, "output": 2.0}}}))
    local = [
        server_run(tmp_path / "p1", "--config", str(priced)),
        server_run(tmp_path / "p2"),
    ]
    assert local[0]["cost_usd"] and local[1]["cost_usd"] is None
    unfinished = tmp_path / "killed"
    unfinished.mkdir()
    lines = (tmp_path / "s1" / "trajectory.jsonl").read_text().splitlines(keepends=True)
    (unfinished / "trajectory.jsonl").write_text("".join(lines[:3]))  # what kill -9 after step 1 leaves

    runs = ["s1", "s2", "s3", "p1", "p2", "killed"]
    proc = run_lancer("compare", *(str(tmp_path / r) for r in runs))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    scripted_model = f"scripted:{IC_TASK / 'solution.yaml'}"
    by_task, by_model = out.split("by model")
    # 3 attempts of a $250 task, 2 resolved: $250 x 2/3, never $500 of $750.
    assert_row(by_task, scripted_model, "invoice-discount", "ic_swe", "$250", "3", "2/3 (67%)", "$166.67", "$0.0000")
    assert_row(by_model, scripted_model, "ic_swe", "1", "3", "66.7%", "$166.67", "$250.00", "66.7%", "$0.0000")
    known = f"${local[0]['cost_usd']:.4f}"
    assert_row(by_task, "openai-compatible:local-coder", "2/2 (100%)", "$250.00", f"≥ {known} (1 unknown)")
    assert_row(by_model, "openai-compatible:local-coder", "100.0%", "$250.00", "$250.00", f"≥ {known} (1 unknown)")
    assert f"not counted: 1 unfinished run(s) without result.json: {unfinished}" in out


def server_run(out: Path, *extra: str) -> dict[str, object]:
    with FakeLLMServer.from_turns_file(IC_TASK / "solution.yaml") as server:
        proc = run_lancer(
            "run",
            str(IC_TASK),
            "--model",
            "openai-compatible:local-coder",
            "--base-url",
            server.openai_base_url,
            "--out",
            str(out),
            *extra,
            env={"OPENAI_API_KEY": OPENAI_KEY},
        )
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "result.json").read_text())  # type: ignore[no-any-return]


def assert_row(table: str, first: str, *cells: str) -> None:
    """The line of ``table`` starting with ``first`` has ``cells`` in this order."""
    row = next((line for line in table.splitlines() if line.strip().startswith(first + " ")), None)
    assert row is not None, f"no row for {first} in:\n{table}"
    position = len(first)
    for cell in cells:
        found = row.find(cell, position)
        assert found >= 0, f"{cell!r} not after column {position} in: {row}"
        position = found + len(cell)


def test_models_lists_builtins_and_installed_plugins_with_where_they_come_from(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "goodplug").mkdir(parents=True)
    (site / "goodplug" / "__init__.py").write_text("def make(name, config):\n    raise NotImplementedError\n")
    dist = site / "goodplug-2.5.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: goodplug\nVersion: 2.5\n")
    (dist / "entry_points.txt").write_text("[lancer.models]\ngood = goodplug:make\nbad = nosuchmodule:make\n")
    proc = run_lancer("models", env={"PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip() and "─" not in line}
    for name in ("scripted", "replay", "openai", "openai-compatible", "anthropic"):
        assert rows[name].split()[1:2] == ["built-in"] and rows[name].rstrip().endswith("ok")
    assert "plugin: goodplug 2.5" in rows["good"] and "goodplug:make" in rows["good"]
    assert rows["good"].rstrip().endswith("ok")
    assert "plugin: goodplug 2.5" in rows["bad"]
    assert "cannot load: ModuleNotFoundError: No module named 'nosuchmodule'" in rows["bad"]


def test_version_is_the_package_version() -> None:
    proc = run_lancer("--version")
    assert (proc.returncode, proc.stdout.strip()) == (0, f"lancer {__version__}")
