"""SWE-bench instances without an eval_script (the older dataset files), graded as SWE-bench
grades them, on real upstream fixes (tests/swebench_real.py): pallets/click pins its build
backend (flit_core<4, outside lancer's offline wheelhouse, so its environment is built with
the network), and its FAIL_TO_PASS / PASS_TO_PASS hold parametrized ids cut at a space, as
swebench's parse_log_pytest cuts them. Each verdict and each listed test's status must be
what the official `swebench.harness.grading` gives on the same test log."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import run_lancer
from tests.swebench_real import WRONG_PATCHES, make_real_dataset
from tests.test_swebench import make_dataset as make_release_dataset


def _rows(dataset: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in dataset.read_text().splitlines()]


def _apply(patch: str) -> str:
    return f"echo {base64.b64encode(patch.encode()).decode()} | base64 -d | git apply" if patch else "true"


def _scripts(tmp_path: Path, name: str, commands: dict[str, str]) -> Path:
    """A scripted model per instance: it records the agent's network interfaces, runs its
    command (applying its patch) and submits."""
    folder = tmp_path / name
    folder.mkdir()
    # The interfaces of the agent's network namespace, as the kernel lists them.
    interfaces = "awk -F: 'NR > 2 {gsub(/ /, \"\", $1); print $1}' /proc/net/dev > network.txt"
    for instance_id, command in commands.items():
        turns = [{"tool_calls": [{"name": "bash", "arguments": {"command": f"{interfaces}; {command}"}}]},
                 {"tool_calls": [{"name": "submit", "arguments": {}}]}]  # fmt: skip
        (folder / f"{instance_id}.yaml").write_text(yaml.safe_dump({"turns": turns}))
    return folder


def _official_verdict(row: dict[str, Any], log: str) -> tuple[bool, dict[str, str | None], dict[str, str]]:
    """What swebench itself makes of ``log``: resolved, each listed test's grading, each one's status."""
    from swebench.harness.constants import EvalType, ResolvedStatus
    from swebench.harness.grading import _resolve_case, get_eval_tests_report, get_logs_eval, get_resolution_status
    from swebench.types import TestSpec

    listed = {"FAIL_TO_PASS": json.loads(row["FAIL_TO_PASS"]), "PASS_TO_PASS": json.loads(row["PASS_TO_PASS"])}
    spec = TestSpec(row["instance_id"], "", [], row["repo"], row["version"], listed["FAIL_TO_PASS"],
                    listed["PASS_TO_PASS"], log_parser="parse_log_pytest", eval_type="pass_and_fail")  # fmt: skip
    with_log = Path(f"/tmp/lancer-test-{row['instance_id']}.log")
    with_log.write_text(log)
    try:
        status_map, found = get_logs_eval(spec, str(with_log))
    finally:
        with_log.unlink()
    assert found, log[-2000:]
    report = get_eval_tests_report(status_map, listed, eval_type=EvalType.PASS_AND_FAIL)
    judged: dict[str, str | None] = {
        name: "success" if name in report[kind]["success"] else "failure" if name in report[kind]["failure"] else None
        for kind in listed for name in listed[kind]
    }  # fmt: skip
    statuses = {}
    for name in judged:
        key = _resolve_case(name, status_map)
        statuses[name] = status_map[key] if key is not None else None
    return get_resolution_status(report) == ResolvedStatus.FULL.value, judged, statuses  # type: ignore[return-value]


def _assert_parity(out: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every attempt's verdict and listed tests equal swebench's on its test log; the grades."""
    grades = []
    for row in rows:
        run = out / "runs" / row["instance_id"] / "1"
        result = json.loads((run / "result.json").read_text())
        grade = result["grade"]
        resolved, judged, statuses = _official_verdict(row, (run / "logs" / "test_output.txt").read_text())
        assert result["resolved"] is resolved, (row["instance_id"], grade["detail"])
        assert [t["name"] for t in grade["tests"]] == list(judged)
        assert {t["name"]: t["graded"] for t in grade["tests"]} == judged
        assert {t["name"]: t["status"] for t in grade["tests"]} == statuses
        assert grade["basis"] == "swebench log" and re.fullmatch(r"5\.\d+\.\d+", grade["swebench_version"])
        patch = (run / "patch.diff").read_text() if (run / "patch.diff").exists() else ""
        if "network.txt" in patch:  # the agent's sandbox: loopback only, though its setup had the network
            assert re.search(r"^\+\+\+ b/network\.txt\n@@ [^\n]*\n\+lo\n(?!\+)", patch, re.MULTILINE), patch
        grades.append(grade)
    return grades


def _eval(dataset: Path, repos: Path, model: str, out: Path, *extra: str) -> None:
    done = run_lancer("eval", "--dataset", str(dataset), "--repos", str(repos), "--model", model, "--out", str(out),
                      "--workers", "2", *extra, timeout=1800)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("sandbox", ["local", "docker"])
def test_real_click_fixes_are_valid_and_graded_exactly_as_swebench_grades_them(tmp_path: Path, sandbox: str) -> None:
    repos, dataset = make_real_dataset(tmp_path)
    rows = _rows(dataset)
    common = ("--sandbox", sandbox)
    # lancer check with the default config: the environment (flit_core<4 from PyPI) builds,
    # the original code fails, the gold patch passes.
    checked = run_lancer("check", "--dataset", str(dataset), "--repos", str(repos), *common, timeout=1800)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for row in rows:
        assert f"{row['instance_id']}: valid" in checked.stdout, checked.stdout
    assert "reference solution (solution.patch): passed" in checked.stdout, checked.stdout

    for name, commands in (
        ("gold", None),
        ("empty", {row["instance_id"]: "true" for row in rows}),
        ("wrong", {instance_id: _apply(patch) for instance_id, patch in WRONG_PATCHES.items()}),
    ):
        model = "oracle" if commands is None else f"scripted:{_scripts(tmp_path, name + '-scripts', commands)}"
        out = tmp_path / name
        _eval(dataset, repos, model, out, *common)
        grades = _assert_parity(out, rows)
        if name == "gold":
            assert all(g["status"] == "passed" for g in grades), [g["detail"] for g in grades]
        else:  # failed, not an error, naming the FAIL_TO_PASS tests that did not pass
            assert all(g["status"] == "failed" for g in grades), [g["detail"] for g in grades]
            for grade in grades:
                f2p = [t for t in grade["tests"] if t["kind"] == "FAIL_TO_PASS"]
                failing = [t["name"] for t in f2p if t["graded"] == "failure"]
                assert failing and f"FAIL_TO_PASS tests did not pass: {failing[0]}" in grade["detail"], grade["detail"]
                assert all(t["graded"] == "success" for t in grade["tests"] if t["kind"] == "PASS_TO_PASS")
    # The wrong fix of 2365 passes one of its five FAIL_TO_PASS tests: the cut id [text/int.
    wrong = json.loads((tmp_path / "wrong" / "runs" / "pallets__click-2365" / "1" / "result.json").read_text())
    outcomes = {t["name"]: t["graded"] for t in wrong["grade"]["tests"] if t["kind"] == "FAIL_TO_PASS"}
    assert outcomes == {
        "tests/test_options.py::test_usage_show_choices[text": "failure",
        "tests/test_options.py::test_usage_show_choices[int": "failure",
        "tests/test_options.py::test_usage_show_choices[float": "failure",
        "tests/test_options.py::test_usage_show_choices[bool": "failure",
        "tests/test_options.py::test_usage_show_choices[text/int": "success",
    }, outcomes


def test_release_fixtures_gold_empty_and_wrong_equal_swebench(tmp_path: Path) -> None:
    """pathspec's and toml's fixes (tests/test_swebench.py): the same parity, local sandbox."""
    repos, dataset = make_release_dataset(tmp_path)
    rows = _rows(dataset)
    checked = run_lancer("check", "--dataset", str(dataset), "--repos", str(repos), timeout=1800)
    assert checked.returncode == 0 and checked.stdout.count(": valid") == len(rows), checked.stdout + checked.stderr
    for name, command in (("gold", None), ("empty", "true"), ("wrong", "echo '# a wrong fix' >> setup.cfg")):
        commands = {row["instance_id"]: command for row in rows} if command else None
        model = "oracle" if commands is None else f"scripted:{_scripts(tmp_path, name + '-scripts', commands)}"
        _eval(dataset, repos, model, tmp_path / name)
        grades = _assert_parity(tmp_path / name, rows)
        expected = "passed" if name == "gold" else "failed"
        assert all(g["status"] == expected for g in grades), [g["detail"] for g in grades]


def test_an_old_format_row_of_a_repository_with_another_runner_is_refused_naming_the_current_dataset(
    tmp_path: Path,
) -> None:
    row = {
        "instance_id": "django__django-11099", "repo": "django/django", "base_commit": "d26b242",
        "patch": "", "test_patch": "", "problem_statement": "UsernameValidator allows a trailing newline",
        "FAIL_TO_PASS": '["test_unicode_validator (auth_tests.test_validators.UsernameValidatorsTests)"]',
        "PASS_TO_PASS": "[]", "version": "3.0",
    }  # fmt: skip
    dataset = tmp_path / "old.jsonl"
    for repo, runner in (("django/django", "runtests.py"), ("sympy/sympy", "bin/test")):
        dataset.write_text(json.dumps({**row, "repo": repo}) + "\n")
        done = run_lancer("eval", "--dataset", str(dataset), "--repos", str(tmp_path), "--model", "oracle",
                          "--out", str(tmp_path / "eval"))  # fmt: skip
        lines = (done.stdout + done.stderr).strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, lines
        assert runner in lines[0] and "no eval_script" in lines[0] and "--dataset swe-bench-verified" in lines[0]
    assert not (tmp_path / "eval").exists()


def test_without_the_swebench_package_a_swebench_dataset_is_refused_in_one_line(tmp_path: Path) -> None:
    repos, dataset = make_real_dataset(tmp_path)
    hide = tmp_path / "hide"
    hide.mkdir()
    # As if the [swebench] extra were not installed: importing swebench fails.
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['swebench'] = None\n")
    done = run_lancer("eval", "--dataset", str(dataset), "--repos", str(repos), "--model", "oracle",
                      "--out", str(tmp_path / "eval"), env={"PYTHONPATH": str(hide)})  # fmt: skip
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, lines
    assert "pip install 'lancer-bench[swebench]'" in lines[0]


def test_a_failed_setup_shows_pips_reason_in_lancer_check(tmp_path: Path) -> None:
    repos, dataset = make_real_dataset(tmp_path)
    rows = _rows(dataset)[:1]
    # The same repository with a build backend no index has: pip's own error must be shown.
    import subprocess

    repo = repos / "pallets__click"
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", rows[0]["base_commit"]], check=True)
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"flit_core<4"', '"lancer-no-such-backend"'))
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", "no such backend"], check=True, env=env)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    rows[0]["base_commit"] = rows[0]["environment_setup_commit"] = head.stdout.strip()
    dataset.write_text(json.dumps(rows[0]) + "\n")
    checked = run_lancer("check", "--dataset", str(dataset), "--repos", str(repos), timeout=900)
    assert checked.returncode != 0
    assert f"{rows[0]['instance_id']}: INVALID" in checked.stdout, checked.stdout
    assert "lancer-no-such-backend" in checked.stdout and "| " in checked.stdout, checked.stdout
