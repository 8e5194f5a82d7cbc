"""SWE-bench instances of the current datasets (image + eval_script + log_parser), run as the
official harness runs them, in docker. The instance is a real upstream fix graded by a runner
other than pytest: python-json-patch's PR #134 (tests/fixtures/swebench/python-json-patch, at
its parent commit), its unittest output read by swebench's parse_log_django. Its image is
built here FROM lancer-base:bookworm, its dependency (jsonpointer) from PyPI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_lancer
from tests.test_swebench import _git

FIXTURE = Path(__file__).parent / "fixtures" / "swebench" / "python-json-patch"
INSTANCE_ID = "stefankoegl__python-json-patch-134"
IMAGE = "swebench/sweb.eval.x86_64.stefankoegl_1776_python-json-patch-134:latest"
F2P = ["test_remove_invalid_item (tests.ApplyPatchTestCase.test_remove_invalid_item)"]
P2P = [
    "test_remove_array_item (tests.ApplyPatchTestCase.test_remove_array_item)",
    "test_remove_object_key (tests.ApplyPatchTestCase.test_remove_object_key)",
    "test_append (tests.ApplyPatchTestCase.test_append)",
]
# The shape of the current datasets' eval scripts for a repository without conda (swebench
# 5's, as in SWE-bench Verified's rows): its test files reset to base_commit, the test
# patch applied, the test command between the markers, the test files reset again.
EVAL_SCRIPT = """#!/bin/bash
set -uxo pipefail
cd /testbed
git config --global --add safe.directory /testbed
cd /testbed
git status
git show
git -c core.fileMode=false diff {base}
git checkout {base} tests.py
git apply -v - <<'EOF_114329324912'
{test_patch}
EOF_114329324912
: '>>>>> Start Test Output'
python3 -m unittest -v tests
: '>>>>> End Test Output'
git checkout {base} tests.py
"""
DOCKERFILE = """FROM lancer-base:bookworm
COPY testbed /testbed
RUN python3 -m pip install -q --break-system-packages 'jsonpointer>=1.9'
WORKDIR /testbed
"""
CONTEXT = "image context"  # the fixture's key for the image's build context (not a column)
# A wrong fix: the invalid index raises, but not the error the test expects.
WRONG_FIX = """--- a/jsonpatch.py
+++ b/jsonpatch.py
@@ -234,6 +234,8 @@ class RemoveOperation(PatchOperation):
 
     def apply(self, obj):
         subobj, part = self.pointer.to_last(obj)
+        if part == '-':
+            raise ValueError("invalid array index '-'")
         try:
             del subobj[part]
         except (KeyError, IndexError) as ex:
"""


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The instance's row; its image built (and removed after the module's tests)."""
    work = tmp_path_factory.mktemp("json-patch")
    repo = work / "repo"
    shutil.copytree(FIXTURE / "base", repo)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "parent of the fix")
    base = _git(repo, "rev-parse", "HEAD").strip()
    context = work / "image"
    context.mkdir()
    shutil.copytree(repo, context / "testbed")  # the image's tree: the history up to base_commit only
    (context / "Dockerfile").write_text(DOCKERFILE)
    _git(repo, "apply", str(FIXTURE / "134.patch"))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "fix invalid remove index")
    test_patch = _git(repo, "diff", base, "HEAD", "--", "tests.py")
    row = {
        "instance_id": INSTANCE_ID,
        "repo": "stefankoegl/python-json-patch",
        "base_commit": base,
        "patch": _git(repo, "diff", base, "HEAD", "--", "jsonpatch.py"),
        "test_patch": test_patch,
        "problem_statement": "Removing '/foo/-' from a list raises TypeError, not JsonPointerException.",
        "hints_text": "",
        "created_at": "2021-04-06T11:33:18Z",
        "version": "1.32",
        "environment_setup_commit": base,
        "FAIL_TO_PASS": json.dumps(F2P),
        "PASS_TO_PASS": json.dumps(P2P),
        "image": IMAGE,
        "eval_script": EVAL_SCRIPT.format(base=base, test_patch=test_patch.rstrip("\n")),
        "log_parser": "parse_log_django",
        "eval_type": "pass_and_fail",
    }
    built = subprocess.run(["docker", "build", "-q", "-t", IMAGE, str(context)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    try:
        yield {**row, CONTEXT: context}
    finally:
        subprocess.run(["docker", "rmi", "-f", IMAGE], capture_output=True)


def _dataset(tmp_path: Path, *rows: dict[str, Any]) -> Path:
    path = tmp_path / "instances.jsonl"
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != CONTEXT}) + "\n" for r in rows))
    return path


def _grade(tmp_path: Path, row: dict[str, Any], patch: str, *extra: str) -> dict[str, Any]:
    diff = tmp_path / "patch.diff"
    diff.write_text(patch)
    done = run_lancer(
        "grade", INSTANCE_ID, str(diff), "--dataset", str(_dataset(tmp_path, row)), "--sandbox", "docker", *extra,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def test_the_oracle_resolves_it_in_its_image_and_check_validates_it(tmp_path: Path, instance: dict[str, Any]) -> None:
    dataset = _dataset(tmp_path, instance)
    out = tmp_path / "eval"
    done = run_lancer(
        "eval", "--dataset", str(dataset), "--sandbox", "docker", "--model", "oracle", "--out", str(out), timeout=900
    )  # no --repos: the tree is the image's
    assert done.returncode == 0, done.stdout + done.stderr
    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert row["resolved"] and row["grade_status"] == "passed", row
    grade = json.loads((out / str(row["run_dir"]) / "result.json").read_text())["grade"]
    assert grade["basis"] == "swebench log"
    assert {t["name"]: t["outcome"] for t in grade["tests"]} == {name: "passed" for name in [*F2P, *P2P]}
    checked = run_lancer("check", "--dataset", str(dataset), "--sandbox", "docker", timeout=900)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{INSTANCE_ID}: valid" in checked.stdout and "original code: failed" in checked.stdout


@pytest.mark.parametrize("which", ["empty", "wrong"])
def test_an_empty_patch_and_a_wrong_fix_fail_naming_the_fail_to_pass_test(
    tmp_path: Path, instance: dict[str, Any], which: str
) -> None:
    verdict = _grade(tmp_path, instance, "" if which == "empty" else WRONG_FIX)
    assert verdict["resolved"] is False and verdict["grade"]["status"] == "failed", verdict
    assert f"1 of 1 FAIL_TO_PASS tests did not pass: {F2P[0]}" in verdict["grade"]["detail"]
    outcomes = {t["name"]: t["outcome"] for t in verdict["grade"]["tests"]}
    assert outcomes == {F2P[0]: "error", **{name: "passed" for name in P2P}}, outcomes


def test_per_test_statuses_equal_the_official_harness_on_the_same_instance(
    tmp_path: Path, instance: dict[str, Any]
) -> None:
    """The gold patch and the wrong fix through `python -m swebench.harness.run_evaluation`
    (the official harness, with this image), and through lancer: the same verdict and the
    same status of every listed test."""
    from swebench.harness.grading import get_logs_eval
    from swebench.harness.utils import make_test_spec

    dataset = _dataset(tmp_path, instance)
    for name, patch in (("gold", instance["patch"]), ("wrong", WRONG_FIX)):
        predictions = tmp_path / f"{name}.jsonl"
        prediction = {"instance_id": INSTANCE_ID, "model_name_or_path": name, "model_patch": patch}
        predictions.write_text(json.dumps(prediction) + "\n")
        harness = subprocess.run(
            [sys.executable, "-m", "swebench.harness.run_evaluation", "-d", str(dataset), "-p", str(predictions),
             "-id", f"parity-{name}", "--max_workers", "1", "--report_dir", str(tmp_path)],
            cwd=tmp_path, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert harness.returncode == 0, harness.stdout + harness.stderr
        logs = tmp_path / "logs" / "run_evaluation" / f"parity-{name}" / name / INSTANCE_ID
        report = json.loads((logs / "report.json").read_text())[INSTANCE_ID]
        row = {k: v for k, v in instance.items() if k != CONTEXT}
        status_map, found = get_logs_eval(make_test_spec(row), str(logs / "test_output.txt"))
        assert found
        verdict = _grade(tmp_path, instance, patch)
        assert verdict["resolved"] is report["resolved"] is (name == "gold"), (verdict, report)
        official = {test: status_map.get(test, "missing") for test in [*F2P, *P2P]}
        ours = {t["name"]: t["outcome"].upper() for t in verdict["grade"]["tests"]}
        assert ours == official, (ours, official)
        status = report["tests_status"]
        failed = set(status["FAIL_TO_PASS"]["failure"] + status["PASS_TO_PASS"]["failure"])
        assert failed == {t for t, outcome in ours.items() if outcome != "PASSED"}

    # The empty patch: the harness skips an empty prediction, so swebench's grader is given
    # the log lancer's run kept (logs/test_output.txt) and must agree with lancer's verdict.
    from swebench.harness.constants import EvalType, ResolvedStatus
    from swebench.harness.grading import get_eval_tests_report, get_resolution_status

    turns = tmp_path / "submit.yaml"
    turns.write_text("turns:\n  - tool_calls: [{name: submit, arguments: {}}]\n")
    out = tmp_path / "empty-run"
    done = run_lancer("run", INSTANCE_ID, "--dataset", str(dataset), "--sandbox", "docker", "--model",
                      f"scripted:{turns}", "--out", str(out), timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    grade = json.loads((out / "result.json").read_text())["grade"]
    row = {k: v for k, v in instance.items() if k != CONTEXT}
    status_map, found = get_logs_eval(make_test_spec(row), str(out / "logs" / "test_output.txt"))
    assert found
    report = get_eval_tests_report(
        status_map, {"FAIL_TO_PASS": F2P, "PASS_TO_PASS": P2P}, eval_type=EvalType.PASS_AND_FAIL
    )
    assert grade["status"] == "failed" and get_resolution_status(report) != ResolvedStatus.FULL.value
    assert {t["name"]: t["status"] for t in grade["tests"]} == {t: status_map.get(t) for t in [*F2P, *P2P]}
    assert {t["name"] for t in grade["tests"] if t["graded"] == "failure"} == set(report["FAIL_TO_PASS"]["failure"])


def test_a_missing_image_is_one_line_naming_the_pull_and_the_local_sandbox_refuses(
    tmp_path: Path, instance: dict[str, Any]
) -> None:
    missing = {**instance, "instance_id": "stefankoegl__python-json-patch-0", "image": "swebench/nothere-134:latest"}
    dataset = _dataset(tmp_path, missing, instance)
    empty = tmp_path / "empty.diff"
    empty.write_text("")
    for sandbox, instance_id, said in (
        ("docker", missing["instance_id"], "swebench/nothere-134:latest is not on this machine: "
                                           "`docker pull swebench/nothere-134:latest`, or give --pull"),
        ("local", INSTANCE_ID, f"runs its eval_script in its image {IMAGE}, which the local sandbox cannot use: "
                               "run it with --sandbox docker"),
    ):  # fmt: skip
        done = run_lancer("grade", instance_id, str(empty), "--dataset", str(dataset), "--sandbox", sandbox)
        lines = (done.stdout + done.stderr).strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and said in lines[0], lines


def test_a_swebench_task_repo_builds_its_image_once_and_prune_envs_removes_it(
    tmp_path: Path, instance: dict[str, Any]
) -> None:
    """swebench 5's task repo layout (sweb.yaml, tasks/<instance_id>/...), checked by
    swebench's own checker; lancer builds the image from the task's Dockerfile (its folder
    the context, as swebench builds it), once."""
    import docker
    from swebench.task.checks import check_task_repo, errors, expected_image

    repo = tmp_path / "tasks-repo"
    task = repo / "tasks" / INSTANCE_ID
    shutil.copytree(instance[CONTEXT], task)  # Dockerfile and testbed/, which it COPYs
    (repo / "sweb.yaml").write_text("datasets: [lancer/json-patch]\nsplits: [test]\n")
    meta = {key: instance[key] for key in ("instance_id", "repo", "version", "base_commit", "log_parser", "eval_type")}
    meta.update(split="test", datasets=["lancer/json-patch"], image=expected_image(INSTANCE_ID))
    (task / "task.yaml").write_text(json.dumps(meta))
    (task / "tests.json").write_text(json.dumps({"FAIL_TO_PASS": F2P, "PASS_TO_PASS": P2P}))
    for name, column in (("gold.patch", "patch"), ("test.patch", "test_patch"), ("eval.sh", "eval_script"),
                         ("problem_statement.md", "problem_statement")):  # fmt: skip
        (task / name).write_text(instance[column])
    assert not errors(check_task_repo(repo)), check_task_repo(repo)

    client = docker.from_env()

    def built() -> list[str]:
        images = client.images.list(filters={"label": "lancer.managed=env-built"})
        return [tag for image in images for tag in image.tags if INSTANCE_ID in tag]

    assert built() == []
    for run in ("first", "again"):
        out = tmp_path / run
        done = run_lancer(
            "eval", "--dataset", str(repo), "--sandbox", "docker", "--model", "oracle", "--out", str(out), timeout=900
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        assert row["resolved"] and row["grade_status"] == "passed", row
        assert ("lancer: building" in done.stderr) is (run == "first"), done.stderr
        (tag,) = built()
        assert tag.startswith(f"lancer-env-{INSTANCE_ID}:"), tag
    pruned = run_lancer("sandbox", "prune", "--envs")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert built() == []


def test_an_export_with_its_image_is_resolved_by_the_official_harness_and_by_lancer(tmp_path: Path) -> None:
    task = Path(__file__).parent.parent / "examples" / "tasks" / "invoice-discount"
    out = tmp_path / "out" / "instances.jsonl"
    exported = run_lancer("export", str(task), "--format", "swebench", str(out), "--images", timeout=600)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    row = json.loads(out.read_text())
    assert row["image"].startswith("lancer-env-swebench-invoice-discount:"), row
    assert row["log_parser"] == "parse_log_pytest" and row["eval_type"] == "pass_and_fail"
    assert ": '>>>>> Start Test Output'" in row["eval_script"]
    try:
        harness = subprocess.run(
            [sys.executable, "-m", "swebench.harness.run_evaluation", "-d", str(out), "-p", "gold", "-id", "export",
             "--max_workers", "1", "--report_dir", str(tmp_path)],
            cwd=tmp_path, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert harness.returncode == 0, harness.stdout + harness.stderr
        report = json.loads((tmp_path / "logs/run_evaluation/export/gold/invoice-discount/report.json").read_text())
        assert report["invoice-discount"]["resolved"] is True, report
        evaluated = run_lancer(
            "eval", "--dataset", str(out), "--sandbox", "docker", "--model", "oracle", "--price-from", "price",
            "--out", str(tmp_path / "eval"), timeout=900,
        )  # fmt: skip
        assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
        (result,) = [json.loads(line) for line in (tmp_path / "eval" / "results.jsonl").read_text().splitlines()]
        assert result["resolved"] is True and result["earned"] == 250.0, result
    finally:
        subprocess.run(["docker", "rmi", "-f", row["image"]], capture_output=True)
