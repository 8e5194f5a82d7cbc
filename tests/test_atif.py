"""ATIF out and in, and chat fine-tuning data (docs/study.md "Trajectories for other tools").

Two real evals of the bundled tasks: ``lancer eval`` with the oracle over the four offline
tasks (both web tasks among them: their screenshots are saved by the tools), and the study
eval of tests/study_helpers.py (the web task through the Anthropic protocol, so its
screenshots were sent to the model as images, with tokens, cost and a retry). Each is
exported with ``lancer export --format atif|sft``; every file is checked against lancer's
ATIF models and against the independent ``atif`` package, read back into ``lancer view`` and
``lancer show``, and loaded with Hugging Face ``datasets``. A real ATIF file written by
Harbor's claude-code agent (tests/fixtures/atif/) opens as a run.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import atif
import pytest

from lancer.core.records import read_eval, read_run
from lancer.formats.atif import SCHEMA_VERSION, read_trajectory_file
from lancer.formats.atif_in import read_atif_run
from lancer.study.show import render_run
from lancer.study.view.run_page import render_run_page
from tests.conftest import EXAMPLES, run_lancer
from tests.study_helpers import build_bundled_eval

pytestmark = pytest.mark.browser
OFFLINE_TASKS = ("invoice-discount", "manager-date-format", "web-todo-delete", "web-notes-search")
FOREIGN = Path(__file__).parent / "fixtures" / "atif" / "trajectory.json"


@pytest.fixture(scope="module")
def oracle_eval(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("atif") / "oracle"
    proc = run_lancer("eval", *(str(EXAMPLES / t) for t in OFFLINE_TASKS), "--model", "oracle", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def model_eval(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundled_eval(tmp_path_factory.mktemp("atif") / "anthropic")


def export(source: Path, fmt: str, dest: Path, *extra: str) -> str:
    proc = run_lancer("export", str(source), "--format", fmt, str(dest), *extra)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr  # what lancer says goes to stderr


def check_file(path: Path) -> dict[str, Any]:
    """One exported file: valid by lancer's models and by the atif package; its images exist."""
    data = json.loads(path.read_text())
    assert read_trajectory_file(path).schema_version == SCHEMA_VERSION == data["schema_version"] == "ATIF-v1.8"
    atif.Trajectory.model_validate(data)  # an implementation of the RFC that is not lancer's
    for step in data["steps"]:
        for result in (step.get("observation") or {}).get("results", []):
            assert result["source_call_id"] in {c["tool_call_id"] for c in step["tool_calls"]}
            for part in result["content"] if isinstance(result["content"], list) else []:
                if part["type"] == "image":
                    assert part["source"]["media_type"] == "image/png"
                    assert (path.parent / part["source"]["path"]).read_bytes().startswith(b"\x89PNG")
    return data


def test_an_eval_of_the_bundled_tasks_exports_one_valid_atif_file_per_attempt(
    oracle_eval: Path, tmp_path: Path
) -> None:
    out = export(oracle_eval, "atif", tmp_path / "atif")
    rows = read_eval(oracle_eval).rows
    assert out.strip() == f"wrote {len(rows)} ATIF trajectories under {tmp_path / 'atif'}"
    assert len(rows) == 4
    for row in rows:
        data = check_file(tmp_path / "atif" / row["task_id"] / str(row["attempt"]) / "trajectory.json")
        assert data["extra"]["task_id"] == row["task_id"]
        assert data["extra"]["verdict"] == "resolved" and data["extra"]["earned"] == row["earned"] == row["price"]
        assert data["agent"]["name"] == "lancer" and data["agent"]["model_name"] == "oracle"
        assert [s["source"] for s in data["steps"][:2]] == ["system", "user"]
        agent_steps = [s for s in data["steps"] if s["source"] == "agent"]
        assert len(agent_steps) == row["steps"] == data["final_metrics"]["total_steps"] - 2
        tools = {t["function"]["name"]: t["function"] for t in data["agent"]["tool_definitions"]}
        if row["task_id"].startswith("web-"):
            assert {"browser", "user_tool"} <= set(tools)
            parts = [p for s in agent_steps for r in s.get("observation", {}).get("results", [])
                     for p in (r["content"] if isinstance(r["content"], list) else [])]  # fmt: skip
            assert any(p["type"] == "image" and p["source"]["path"].startswith("screenshots/") for p in parts)
        if row["task_id"] == "manager-date-format":
            assert "proposal_id" in tools["submit"]["parameters"]["properties"]


def test_tokens_cost_reasoning_and_sent_screenshots_are_in_the_atif_file(model_eval: Path, tmp_path: Path) -> None:
    export(model_eval, "atif", tmp_path / "atif")
    data = check_file(tmp_path / "atif" / "web-todo-delete" / "1" / "trajectory.json")
    run = read_run(model_eval / "runs" / "web-todo-delete" / "1")
    agent_steps = [s for s in data["steps"] if s["source"] == "agent"]
    for step, record in zip(agent_steps, run.steps, strict=True):
        assert step["metrics"]["prompt_tokens"] == record["usage"]["input_tokens"] > 0
        assert step["metrics"]["completion_tokens"] == record["usage"]["output_tokens"]
        assert step["metrics"]["cost_usd"] == pytest.approx(record["usage"]["cost_usd"])
    assert data["final_metrics"]["total_cost_usd"] == pytest.approx(run.result["cost_usd"])  # type: ignore[index]
    sent = [r for s in agent_steps for r in s.get("observation", {}).get("results", [])
            if isinstance(r["content"], list) and "not_sent_to_model" not in r["extra"]]  # fmt: skip
    assert sent, "the screenshots the model was sent are image parts"
    assert any(e.get("type") == "retry" for e in agent_steps[0]["extra"]["events"])  # the 429 the run went through
    assert data["extra"]["lancer"]["patch"] == run.patch and "removeTodo(todos[index].id)" in run.patch


def steps_section(html: str) -> str:
    match = re.search(r'<section id="steps">.*?</section>', html, re.S)
    assert match is not None
    return match.group(0)


@pytest.mark.parametrize("which", ["oracle", "model"])
def test_an_atif_export_reads_back_as_the_run_it_was(
    which: str, oracle_eval: Path, model_eval: Path, tmp_path: Path
) -> None:
    source = {"oracle": oracle_eval, "model": model_eval}[which]
    export(source, "atif", tmp_path / "atif")
    for task in ("web-todo-delete", "invoice-discount", "manager-date-format"):
        original = read_run(source / "runs" / task / "1")
        back = read_atif_run(tmp_path / "atif" / task / "1" / "trajectory.json")
        before, after = render_run_page(original), render_run_page(back)
        assert steps_section(after) == steps_section(before)  # steps, calls, outputs, screenshots, facts
        assert after.count('<img class="shot"') == before.count('<img class="shot"')
        if task.startswith("web-"):
            assert before.count('<img class="shot"') >= 2
        for section in ("task", "outcome", "patch", "grade"):
            pick = re.compile(rf'<section id="{section}">.*?</section>', re.S)
            assert pick.findall(after) == pick.findall(before)
        # The images sent to the model are shown by path: the copies beside the export.
        exported, recorded = str(tmp_path / "atif" / task / "1"), str(source / "runs" / task / "1")
        shown = render_run(Path(exported) / "trajectory.json").replace(exported, recorded).splitlines()
        assert shown[1] == f"an ATIF-v1.8 trajectory by lancer 0.1.0 (session {source.name}/{task}/1)"
        assert [shown[0], *shown[2:]] == render_run(source / "runs" / task / "1").splitlines()


def test_the_sft_file_loads_with_datasets_one_row_per_attempt(
    oracle_eval: Path, model_eval: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datasets import load_dataset

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    every, resolved = tmp_path / "all.jsonl", tmp_path / "resolved.jsonl"
    rows = read_eval(model_eval).rows
    assert export(model_eval, "sft", every).strip() == f"wrote {every}: {len(rows)} attempt(s)"
    export(model_eval, "sft", resolved, "--resolved-only")
    export(oracle_eval, "sft", tmp_path / "oracle.jsonl")
    cache = str(tmp_path / "hf-cache")
    ds = load_dataset("json", data_files=str(every), split="train", cache_dir=cache)
    assert ds.num_rows == len(rows) == 6
    assert load_dataset("json", data_files=str(resolved), split="train", cache_dir=cache).num_rows == sum(
        1 for r in rows if r["resolved"]
    )
    oracle = load_dataset("json", data_files=str(tmp_path / "oracle.jsonl"), split="train", cache_dir=cache)
    assert oracle.num_rows == 4
    for example in [*ds, *oracle]:
        messages = example["messages"]
        assert [m["role"] for m in messages[:2]] == ["system", "user"]
        pending: list[str] = []
        for message in messages[2:]:
            if message["role"] == "assistant":
                assert not pending, "every tool call is answered before the next assistant turn"
                pending = [c["id"] for c in message.get("tool_calls") or []]
                for call in message.get("tool_calls") or []:
                    json.loads(call["function"]["arguments"])
            else:
                assert message["role"] == "tool" and message["tool_call_id"] == pending.pop(0)
        names = {t["function"]["name"] for t in example["tools"]}
        assert {"bash", "editor", "submit"} <= names
        assert all(
            t["type"] == "function" and t["function"]["parameters"]["type"] == "object" for t in example["tools"]
        )


def test_secrets_are_redacted_from_atif_and_sft(tmp_path: Path) -> None:
    secret = "hunter2-not-a-real-key-8731"
    script = tmp_path / "leak.yaml"
    script.write_text(
        "turns:\n  - content: 'my token is " + secret + "'\n"
        "    tool_calls: [{name: bash, arguments: {command: 'echo " + secret + "'}}]\n"
        "  - tool_calls: [{name: submit, arguments: {}}]\n"
    )
    run = tmp_path / "run"
    proc = run_lancer("run", str(EXAMPLES / "invoice-discount"), "--model", f"scripted:{script}", "--out", str(run))
    assert proc.returncode == 0, proc.stderr
    assert secret in (run / "trajectory.jsonl").read_text()  # not a secret when the run ran
    env = {"DEPLOY_API_KEY": secret}
    for fmt, dest in (("atif", tmp_path / "atif"), ("sft", tmp_path / "out.jsonl")):
        proc = run_lancer("export", str(run), "--format", fmt, str(dest), env=env)
        assert proc.returncode == 0, proc.stderr
    written = (tmp_path / "atif" / "trajectory.json").read_text()
    assert secret not in written and "my token is [REDACTED]" in written
    assert secret not in (tmp_path / "out.jsonl").read_text()
    assert "echo [REDACTED]" in (tmp_path / "out.jsonl").read_text()


def test_a_harbor_claude_code_trajectory_opens_in_show(tmp_path: Path) -> None:
    proc = run_lancer("show", str(FOREIGN), "--max-chars", "100000")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith("a3b10bae-3ebd-4b8e-8779-3d21ce098521 (?, no price) with claude-opus-4-6\n")
    assert "an ATIF-v1.7 trajectory by claude-code 2.1.178 (session a3b10bae-3ebd-4b8e-8779-3d21ce098521)" in text
    assert "You are a software engineer. Implement the following fix" in text  # the user step: the task
    assert text.count("── step ") == 11
    assert '$ Read {"file_path": "/repo/maas-controller/pkg/controller/maas/providers_llmisvc.go"}' in text
    assert "  1\t/*\n  2\tCopyright 2025." in text  # the Read call's observation, under its call
    assert "34547 in / 220 out" in text  # step 2's metrics
    assert "totals: 12 steps, 485630 prompt tokens, 3304 completion tokens, 461807 cached tokens, 0.4623" in text
    step = run_lancer("show", str(FOREIGN.parent), "--step", "4")
    assert step.returncode == 0 and "Now I understand the situation" in step.stdout  # reasoning, via the folder
    bad = tmp_path / "trajectory.json"
    bad.write_text(json.dumps({"schema_version": "ATIF-v1.7", "agent": {"name": "x", "version": "1"}, "steps": []}))
    proc = run_lancer("show", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(f"{bad} is not a valid ATIF trajectory: steps: List should have at least 1 "
                                        "item after validation, not 0 (1 problem(s))")  # fmt: skip


def test_a_harbor_trial_folder_shows_its_verifiers_reward(tmp_path: Path) -> None:
    trial = tmp_path / "fix-endpoint__a3b10ba"  # a trial folder as Harbor lays it out
    (trial / "agent").mkdir(parents=True)
    (trial / "verifier").mkdir()
    shutil.copy(FOREIGN, trial / "agent" / "trajectory.json")
    (trial / "verifier" / "reward.txt").write_text("1\n")
    proc = run_lancer("show", str(trial))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[2] == "reward: 1 (the Harbor trial's verifier)"
    assert run_lancer("view", str(trial)).returncode == 0
    assert "<th>reward</th><td>1 (the Harbor trial&#x27;s verifier)</td>" in (trial / "view.html").read_text()


def test_a_harbor_claude_code_trajectory_opens_in_view(tmp_path: Path) -> None:
    from lancer.browser.chromium import Chromium

    out = tmp_path / "claude.html"
    proc = run_lancer("view", str(FOREIGN), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    chromium = Chromium()
    try:
        tab = chromium.browser.new_page(viewport={"width": 1280, "height": 800})
        tab.goto(out.as_uri())
        assert tab.locator("article.step").count() == 11
        outcome = tab.locator("#outcome").inner_text()
        assert "ATIF-v1.7 by claude-code 2.1.178" in outcome and "$0.4624" in outcome
        assert "485,630 in / 3,304 out (461,807 cached)" in outcome
        assert "You are a software engineer" in tab.locator("#task").inner_text()
        step2 = tab.locator("#step-2")
        assert [n.strip() for n in step2.locator(".call .name").all_inner_texts()] == ["Read", "Bash"]
        assert "34,547 in / 220 out · 24,306 cached" in step2.locator(".facts").inner_text()
        assert "Copyright 2025." in step2.locator(".call").first.inner_text()
        assert tab.locator("#step-4 details summary").first.inner_text() == "thinking"
    finally:
        chromium.close()
