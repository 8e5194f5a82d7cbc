"""Prompts from the run config (`prompts: {system, ic_swe, swe_manager}`), recorded in the
trajectory header; the manager's system prompt speaks of choosing a proposal."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.conftest import EXAMPLES, ROOT, run_lancer

IC_TASK = EXAMPLES / "invoice-discount"
MANAGER_TASK = EXAMPLES / "manager-date-format"


def run(task: Path, out: Path, *extra: str, cwd: Path = ROOT) -> tuple[int, str, list[dict[str, Any]]]:
    proc = run_lancer(
        "run", str(task), "--model", f"scripted:{task / 'solution.yaml'}", "--out", str(out), *extra, cwd=cwd
    )
    trajectory = out / "trajectory.jsonl"
    records = [json.loads(line) for line in trajectory.read_text().splitlines()] if trajectory.exists() else []
    return proc.returncode, proc.stderr, records


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_text().encode()).hexdigest()


def test_templates_named_in_the_config_replace_the_bundled_ones_and_are_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "experiment"
    (folder / "templates").mkdir(parents=True)
    system, ic_task = folder / "templates" / "terse.j2", folder / "templates" / "ic.j2"
    system.write_text(
        "Fix bugs in {{ workdir }} ({{ task.variant }}). Tools: {{ tools | map(attribute='name') | join(', ') }}."
    )
    ic_task.write_text("{{ task.title }} (${{ '%.0f' | format(task.price) }}). Submit when done.\n")
    (folder / "run.yaml").write_text("prompts:\n  system: templates/terse.j2\n  ic_swe: templates/ic.j2\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()  # relative template paths are read from the config's folder, not the cwd

    code, stderr, records = run(IC_TASK, tmp_path / "run", "--config", str(folder / "run.yaml"), cwd=elsewhere)
    assert code == 0, stderr
    prompt = records[1]
    assert [m["content"] for m in prompt["messages"]] == [
        f"Fix bugs in {prompt['workdir']} (ic_swe). Tools: bash, editor, submit.",
        "Discounts are taxed: invoice totals are too high ($250). Submit when done.",
    ]
    assert records[0]["prompts"] == {
        "system": {"path": str(system), "bundled": False, "sha256": sha256(system)},
        "task": {"path": str(ic_task), "bundled": False, "sha256": sha256(ic_task)},
    }
    assert records[-1]["exit_status"] == "submitted"


def test_without_a_prompts_section_the_bundled_templates_are_recorded(tmp_path: Path) -> None:
    code, stderr, records = run(MANAGER_TASK, tmp_path / "run")
    assert code == 0, stderr
    assert records[0]["prompts"] == {
        "system": {
            "path": "lancer/prompts/system.j2",
            "bundled": True,
            "sha256": sha256(ROOT / "lancer" / "prompts" / "system.j2"),
        },
        "task": {
            "path": "lancer/prompts/swe_manager.j2",
            "bundled": True,
            "sha256": sha256(ROOT / "lancer" / "prompts" / "swe_manager.j2"),
        },
    }


def test_the_manager_system_prompt_is_about_choosing_a_proposal_not_changing_code(tmp_path: Path) -> None:
    _, _, manager = run(MANAGER_TASK, tmp_path / "manager")
    _, _, ic = run(IC_TASK, tmp_path / "ic")
    manager_system, ic_system = manager[1]["messages"][0]["content"], ic[1]["messages"][0]["content"]
    assert "engineering manager" in manager_system
    assert "call `submit` with\nthe `proposal_id` of the best one" in manager_system
    assert "You are choosing, not implementing" in manager_system
    assert "make a focused" not in manager_system and "Hidden tests" not in manager_system
    assert "make a focused\nchange, check it, then call `submit`" in ic_system
    assert "proposal" not in ic_system


def test_template_mistakes_are_one_line_errors_naming_the_file(tmp_path: Path) -> None:
    templates = tmp_path / "t"
    templates.mkdir()
    (templates / "broken.j2").write_text("Fix {{ task.title }\n")
    (templates / "unknown.j2").write_text("Fix {{ task.title }} in {{ repository }}\n")
    cases = {
        "prompts:\n  system: t/broken.j2\n": (
            "prompts.system: prompt template {t}/broken.j2: line 1: unexpected '}}'",
            "{config}: ",
        ),
        "prompts:\n  swe_manager: t/missing.j2\n  sytem: t/broken.j2\n": (
            "prompts.swe_manager: prompt template {t}/missing.j2 does not exist; "
            "prompts.sytem: Extra inputs are not permitted",
            "{config}: ",
        ),
        "prompts:\n  ic_swe: t/unknown.j2\n": ("prompt template {t}/unknown.j2: 'repository' is undefined", ""),
    }
    for i, (text, (message, prefix)) in enumerate(cases.items()):
        config = tmp_path / f"config{i}.yaml"
        config.write_text(text)
        out = tmp_path / f"run{i}"
        code, stderr, _ = run(IC_TASK, out, "--config", str(config))
        expected = f"lancer: error: {prefix.format(config=config)}{message.format(t=templates)}"
        assert (code, stderr.strip().splitlines()[-1]) == (2, expected)
        assert not out.exists()  # stopped before anything was written
