"""Harbor (Terminal-Bench 2) task folders in (examples/harbor/), lancer tasks out
(`lancer export --format harbor`), against the real Docker engine. Never skipped."""

from __future__ import annotations

import csv
import json
import shlex
import shutil
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from lancer.core.chromium import CHROMIUM_ARGS
from lancer.core.errors import TaskError
from lancer.formats import load_task_folder
from lancer.formats.harbor import TaskToml
from lancer.grader.reward import RewardError, parse_reward
from tests.conftest import EXAMPLES, ROOT, run_lancer

pytestmark = pytest.mark.docker

HARBOR = ROOT / "examples" / "harbor"
WRONG = ROOT / "tests" / "data" / "harbor_wrong"  # a scripted wrong fix per task
SUBMIT = {"name": "submit", "arguments": {}}


def results(out: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {row["task_id"]: row for row in rows}


def grade_of(out: Path, row: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads((out / row["run_dir"] / "result.json").read_text())["grade"])


def copy_task(name: str, tmp: Path, new_name: str | None = None) -> Path:
    folder = tmp / (new_name or name)
    shutil.copytree(HARBOR / name, folder)
    return folder


def check_verdicts(folder: Path) -> dict[str, str]:
    """`lancer check`'s gradings in docker: "right" (the reference solution, the correct
    proposal) and "wrong" (the original code, another proposal) to their status."""
    proc = run_lancer("check", str(folder), "--sandbox", "docker", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdicts = {}
    for line in proc.stdout.splitlines()[1:]:
        label, _, rest = line.strip().partition(": ")
        if label.startswith(("reference solution", "correct proposal")):
            verdicts["right"] = rest.split()[0]
        elif label.startswith(("original code", "another proposal")):
            verdicts["wrong"] = rest.split()[0]
    return verdicts


def test_the_oracle_resolves_every_task_and_the_breakdowns_follow_the_metadata(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    proc = run_lancer(
        "eval", str(HARBOR), "--model", "oracle", "--sandbox", "docker", "--workers", "2", "--out", str(out),
        timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = results(out)
    assert sorted(rows) == ["fizzbuzz-off-by-one", "status-endpoint", "word-stats"]
    for task_id, row in rows.items():
        assert (row["resolved"], row["reward"], row["grade_status"]) == (True, 1.0, "passed"), (task_id, row)
    # The service task's reward came from querying the server the image's entrypoint started.
    assert (
        "GET /health.json: {'status': 'ok', 'version': '2.4.1'}"
        in grade_of(out, rows["status-endpoint"])["output_tail"]
    )
    assert grade_of(out, rows["word-stats"])["reward_metrics"] == {"count_words": 1, "count_lines": 1, "top_word": 1}

    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["resolved"] == 3 and summary["overall"]["mean_reward"] == 1.0
    assert sorted(summary["by_difficulty"]) == ["easy", "medium"]
    assert summary["by_difficulty"]["medium"]["tasks"] == 2
    assert sorted(summary["by_category"]) == ["devops", "programming"]
    assert summary["by_tag"]["python"]["tasks"] == 2 and summary["by_tag"]["http"]["resolved"] == 1
    plan = json.loads((out / "eval.json").read_text())
    assert {t["id"]: t.get("difficulty") for t in plan["tasks"]}["fizzbuzz-off-by-one"] == "easy"

    report = tmp_path / "report"
    proc = run_lancer("report", str(out), "-o", str(report))
    assert proc.returncode == 0, proc.stderr
    with (report / "summary.csv").open() as f:
        scopes = {row["scope"]: row for row in csv.DictReader(f)}
    assert {"difficulty easy", "difficulty medium", "category devops", "tag http", "tag partial-credit"} <= set(scopes)
    assert scopes["category devops"]["graded"] == "1"


def test_wrong_fixes_are_not_resolved_and_a_partial_reward_is_recorded(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    proc = run_lancer(
        "eval", str(HARBOR), "--model", f"scripted:{WRONG}", "--sandbox", "docker", "--workers", "2",
        "--out", str(out), timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = results(out)
    for task_id, row in rows.items():
        assert (row["resolved"], row["grade_status"], row["exit_status"]) == (False, "failed", "submitted"), task_id
    assert rows["fizzbuzz-off-by-one"]["reward"] == 0.0
    assert rows["status-endpoint"]["reward"] == 0.0
    assert "GET /health.json: {'status': 'ok'}" in grade_of(out, rows["status-endpoint"])["output_tail"]
    # Two of three functions: a partial reward, recorded and shown, not a resolved task.
    partial = grade_of(out, rows["word-stats"])
    assert partial["reward"] == pytest.approx(0.6667)
    assert partial["reward_metrics"] == {"count_words": 1, "count_lines": 1, "top_word": 0}
    assert partial["detail"] == "reward 0.6667 (count_words 1, count_lines 1, top_word 0)"
    assert "word-stats #1  not resolved (reward 0.6667)" in proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())["overall"]
    assert (summary["resolved"], summary["errors"], summary["graded"]) == (0, 0, 3)
    assert summary["mean_reward"] == pytest.approx(0.6667 / 3, abs=1e-4)


def test_the_task_limits_reach_the_container_and_the_run(tmp_path: Path) -> None:
    task = copy_task("fizzbuzz-off-by-one", tmp_path)  # cpus 1, memory_mb 1024, verifier 120 s
    toml = (task / "task.toml").read_text().replace("timeout_sec = 600.0", "timeout_sec = 2.0")
    (task / "task.toml").write_text(toml)
    script = tmp_path / "slow.yaml"
    # The container's limits, from cgroup v2's files or v1's.
    limits = (
        "(cat /sys/fs/cgroup/memory.max || cat /sys/fs/cgroup/memory/memory.limit_in_bytes) 2>/dev/null; "
        "(cut -d' ' -f1 /sys/fs/cgroup/cpu.max || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) 2>/dev/null; pwd; sleep 3"
    )
    turns = [{"tool_calls": [{"name": "bash", "arguments": {"command": limits}}]}, {"tool_calls": [SUBMIT]}]
    script.write_text(json.dumps({"turns": turns}))
    out = tmp_path / "run"
    proc = run_lancer("run", str(task), "--model", f"scripted:{script}", "--sandbox", "docker", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["exit_status"] == "time_limit", result  # [agent] timeout_sec
    trajectory = [json.loads(line) for line in (out / "trajectory.jsonl").read_text().splitlines()]
    config = trajectory[0]["config"]
    assert (config["limits"]["time_limit_s"], config["grader"]["timeout_s"]) == (2.0, 120.0)
    observation = next(r for r in trajectory if r.get("type") == "step")["observations"][0]["output"]
    assert observation == "1073741824\n100000\n/app\n", observation  # 1024 MB, 1 CPU, the image's WORKDIR


def test_a_harbor_task_is_refused_by_the_local_sandbox_before_the_run(tmp_path: Path) -> None:
    proc = run_lancer("run", str(HARBOR / "word-stats"), "--model", "oracle", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "lancer: error: task word-stats's code is in its image (environment/Dockerfile), which the local sandbox "
        "cannot use: run it with --sandbox docker"
    ]
    assert not (tmp_path / "run").exists()


def test_an_unknown_task_toml_key_is_one_warning_and_a_wrong_value_one_line_naming_the_task_and_the_key(
    tmp_path: Path,
) -> None:
    task = copy_task("word-stats", tmp_path, "colourful")
    toml = (task / "task.toml").read_text()
    # Harbor's [metadata] is free-form; a key no section of Harbor's has is ignored, as Harbor ignores it.
    toml = toml.replace("[metadata]", '[metadata]\ncolour = "red"').replace("[agent]", "[agent]\nmood = 3")
    (task / "task.toml").write_text(toml + '\n[sidecar]\nname = "x"\n')
    proc = run_lancer("run", str(task), "--sandbox", "docker", "--model", "oracle", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert warnings == ["lancer: warning: task colourful: task.toml agent.mood, sidecar: not a Harbor key, ignored"], (
        proc.stderr
    )
    assert json.loads((tmp_path / "run" / "result.json").read_text())["resolved"] is True
    for command, where in (("run", task), ("eval", tmp_path)):
        (task / "task.toml").write_text('[metadata]\ntags = "not-a-list"\n')
        proc = run_lancer(
            command, str(where), "--sandbox", "docker", "--model", "oracle", "--out", str(tmp_path / command)
        )
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [
            "lancer: error: task colourful: task.toml metadata.tags: Input should be a valid list"
        ]
    (task / "task.toml").write_text("[agent]\ntimeout_sec = -1\n")
    with pytest.raises(TaskError, match=r"^task colourful: task.toml agent.timeout_sec: Input should be greater"):
        load_task_folder(task)


def test_a_failed_or_slow_build_a_missing_base_image_and_no_reward_are_errors_not_failed_fixes(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    broken = copy_task("fizzbuzz-off-by-one", tasks, "broken-build")
    with (broken / "environment" / "Dockerfile").open("a") as f:
        f.write("RUN echo the build breaks here && exit 3\n")
    missing = copy_task("fizzbuzz-off-by-one", tasks, "missing-base")
    dockerfile = missing / "environment" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("lancer-base:bookworm", "lancer-no-such-base:1"))
    slow = copy_task("fizzbuzz-off-by-one", tasks, "slow-build")  # build_timeout_sec 2
    (slow / "task.toml").write_text((slow / "task.toml").read_text().replace("300.0", "2.0"))
    with (slow / "environment" / "Dockerfile").open("a") as f:
        f.write("RUN sleep 60\n")
    silent = copy_task("fizzbuzz-off-by-one", tasks, "no-reward")
    (silent / "tests" / "test.sh").write_text("#!/bin/bash\npython3 -m pytest -q -p no:cacheprovider /tests\n")
    out = tmp_path / "eval"
    proc = run_lancer(
        "eval", str(tasks), "--model", "oracle", "--sandbox", "docker", "--workers", "2", "--out", str(out), timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())["overall"]
    assert (summary["errors"], summary["graded"], summary["resolved"]) == (4, 0, 0)
    reasons = {e["task_id"]: e["reason"] for e in summary["error_details"]}
    assert reasons["broken-build"].startswith(
        f"SandboxError: task broken-build: building an image from {broken}/environment/Dockerfile failed: "
    )
    assert "returned a non-zero code: 3" in reasons["broken-build"]
    assert reasons["missing-base"].startswith(
        f"SandboxError: task missing-base: the base image lancer-no-such-base:1 of {dockerfile} is not on this machine"
    )
    assert reasons["slow-build"] == (
        f"SandboxError: task slow-build: building an image from {slow}/environment/Dockerfile took longer than 2 s"
    )
    assert reasons["no-reward"] == (
        "task no-reward: the test command (bash /tests/test.sh) wrote no reward "
        "(/logs/verifier/reward.txt or reward.json)"
    )
    assert all("\n" not in reason for reason in reasons.values())
    assert "no-reward #1  ERROR" in proc.stdout + proc.stderr


BUNDLED = sorted(p.name for p in EXAMPLES.iterdir() if (p / "task.yaml").is_file())
WEB = ["web-notes-search", "web-todo-delete"]


@pytest.fixture(scope="session")
def exported_examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every bundled example exported as Harbor tasks, once a session. The same export is
    the same image tag (a hash of environment/), so the web ones' image (Chromium and
    Playwright on lancer's base) is built once and reused by every test here."""
    exported = tmp_path_factory.mktemp("harbor") / "exported"
    proc = run_lancer("export", *(str(EXAMPLES / n) for n in BUNDLED), "--format", "harbor", str(exported), timeout=600)
    assert proc.returncode == 0, proc.stderr
    return exported


def test_every_bundled_example_exports_as_a_harbor_task(exported_examples: Path) -> None:
    assert len(BUNDLED) == 6 and set(WEB) < set(BUNDLED)
    for name in BUNDLED:  # what `harbor run --agent oracle` reads
        folder = exported_examples / name
        spec = TaskToml.model_validate(tomllib.loads((folder / "task.toml").read_text()))
        assert spec.lancer_metadata().price == load_task_folder(EXAMPLES / name).price
        assert (folder / "instruction.md").read_text().startswith("# ")
        assert (folder / "environment" / "Dockerfile").read_text().startswith("FROM lancer-base:bookworm\n")
        for script in ("solution/solve.sh", "tests/test.sh"):
            assert (folder / script).stat().st_mode & 0o111, script
    # A web task carries its browser: Chromium and lancer's Playwright in the image, lancer's
    # fixtures in tests/, and a test.sh that starts the app first.
    for name in WEB:
        folder = exported_examples / name
        dockerfile = (folder / "environment" / "Dockerfile").read_text()
        assert "apt-get install -y -q --no-install-recommends chromium" in dockerfile
        assert f"pip install --no-cache-dir -q playwright=={version('playwright')}" in dockerfile
        conftest = (folder / "tests" / "conftest.py").read_text()
        assert f"CHROMIUM_ARGS = {json.dumps(CHROMIUM_ARGS)}" in conftest
        assert "def page(context):" in conftest and "def app_url():" in conftest
        app = load_task_folder(EXAMPLES / name).app
        assert app is not None and shlex.quote(app.command) in (folder / "tests" / "test.sh").read_text()


# The first web example's check builds the browser layer (about a minute alone, more on a
# loaded machine); the other reuses it from Docker's build cache.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_example_round_trips_with_the_same_verdicts(exported_examples: Path, name: str) -> None:
    """The same verdicts, in docker: the reference solution (or correct proposal) passes; the
    untouched code (or another proposal) fails. The real-upstream examples build their
    package with pip in the image (humanize's version comes from git: hatch-vcs); the web
    ones run their browser tests in it."""
    verdicts = [check_verdicts(folder) for folder in (EXAMPLES / name, exported_examples / name)]
    assert verdicts[0] == verdicts[1] == {"right": "passed", "wrong": "failed"}, verdicts


def test_a_web_task_whose_tests_have_their_own_conftest_is_refused(tmp_path: Path) -> None:
    task = tmp_path / "web-todo-delete"
    shutil.copytree(EXAMPLES / "web-todo-delete", task)
    (task / "tests" / "conftest.py").write_text("")
    proc = run_lancer("export", str(task), "--format", "harbor", str(tmp_path / "harbor"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "lancer: error: task web-todo-delete cannot be exported as a Harbor task: its tests/ has a conftest.py "
        "of its own, where the export puts the browser fixtures"
    )
    assert not (tmp_path / "harbor").exists()


def grade_patch(task: Path, patch: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = run_lancer("grade", str(task), str(patch), "--sandbox", "docker", env=env)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout)["grade"])


def test_a_web_export_fails_a_fix_that_kills_the_app_and_errs_without_its_browser_as_lancer_does(
    exported_examples: Path, tmp_path: Path
) -> None:
    exported = exported_examples / "web-notes-search"
    repo = tmp_path / "repo"  # the fix: a server.py that exits at once
    shutil.copytree(EXAMPLES / "web-notes-search" / "repo", repo)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    server = repo / "server.py"
    server.write_text('raise SystemExit("the server is broken")\n' + server.read_text())
    broken = tmp_path / "broken.diff"
    broken.write_text(subprocess.run(["git", "diff"], cwd=repo, capture_output=True, text=True, check=True).stdout)
    # The patched app exits before it answers: a failed fix both ways, with the app's own words.
    own, harbor = (grade_patch(task, broken) for task in (EXAMPLES / "web-notes-search", exported))
    assert (own["status"], own["detail"]) == ("failed", "the app did not start"), own
    assert (harbor["status"], harbor["reward"]) == ("failed", 0.0), harbor
    for grade in (own, harbor):
        assert "the app exited before it answered at http://127.0.0.1:" in grade["output_tail"], grade
        assert "the server is broken" in grade["output_tail"], grade

    # No Chromium where the tests run: the reference fix is not graded at all (an error, no
    # reward), as lancer's own grading says when its Chromium is missing.
    blind = tmp_path / "blind" / "web-notes-search"  # the same name and environment/: the same image
    shutil.copytree(exported, blind)
    conftest = blind / "tests" / "conftest.py"
    conftest.write_text(
        conftest.read_text().replace('CHROMIUM = "/usr/bin/chromium"', 'CHROMIUM = "/nowhere/chromium"')
    )
    fix = exported / "solution" / "solution.patch"
    own = grade_patch(EXAMPLES / "web-notes-search", fix, env={"LANCER_CHROMIUM": "/nowhere/chromium"})
    assert own["status"] == "error" and "cannot start Chromium" in own["output_tail"], own
    grade = grade_patch(blind, fix)
    assert grade["status"] == "error" and "cannot start Chromium" in grade["output_tail"], grade
    assert grade["detail"] == (
        "task web-notes-search: the test command (bash /tests/test.sh) wrote no reward "
        "(/logs/verifier/reward.txt or reward.json)"
    )
    assert "the hidden tests could not run (exit 3): no reward" in grade["output_tail"]


@pytest.mark.parametrize(
    ("name", "content", "reward", "metrics"),
    [
        ("reward.txt", b"0.25\n", 0.25, {}),
        ("reward.json", b'{"reward": 1}', 1.0, {}),
        ("reward.json", b'{"reward": 0.5, "tests": 0.5}', 0.5, {"tests": 0.5}),
        ("reward.json", b'{"unit": 1, "lint": 0}', 0.5, {"unit": 1.0, "lint": 0.0}),
    ],
)
def test_reward_files_read_as_harbor_writes_them(
    name: str, content: bytes, reward: float, metrics: dict[str, float]
) -> None:
    parsed = parse_reward(name, content)
    assert (parsed.value, parsed.metrics, parsed.resolved) == (reward, metrics, reward >= 1)


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("reward.txt", b"", "reward.txt is '', not a number"),
        ("reward.txt", b"passed", "reward.txt is 'passed', not a number"),
        ("reward.json", b"[1]", 'reward.json must be an object of numbers, e.g. {"reward": 1}'),
        ("reward.json", b'{"reward": true}', "reward.json's reward is True, not a number"),
    ],
)
def test_a_reward_that_is_not_a_number_is_an_error(name: str, content: bytes, error: str) -> None:
    with pytest.raises(RewardError) as caught:
        parse_reward(name, content)
    assert str(caught.value) == error


def test_swelancer_manager_rows_export_and_their_ic_rows_are_refused(tmp_path: Path) -> None:
    sample = ROOT / "tests" / "data" / "all_swelancer_tasks_sample.csv"
    exported = tmp_path / "harbor"
    ic = run_lancer("export", "--dataset", str(sample), "--ids", "90001_101", "--format", "harbor", str(exported))
    assert ic.returncode == 2
    assert ic.stderr.strip() == (
        "lancer: error: task 90001_101 cannot be exported as a Harbor task: its image's own setup "
        "(container.image_command, prepare) has no Harbor equivalent"
    )
    proc = run_lancer(
        "export", "--dataset", str(sample), "--variant", "swe_manager", "--format", "harbor", str(exported)
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in exported.iterdir()) == ["90002-manager-0", "90003-manager-0"]
    task = load_task_folder(exported / "90002-manager-0")
    assert (task.price, task.variant, task.reward_dir) == (1000.0, "ic_swe", "/logs/verifier")
    assert "Pick the proposal that fixes the issue" in task.description
    assert check_verdicts(exported / "90002-manager-0") == {"right": "passed", "wrong": "failed"}
