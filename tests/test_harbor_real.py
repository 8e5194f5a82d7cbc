"""Real published Harbor tasks (tests/fixtures/harbor: the cookbook's recipes, Terminal-Bench
2 tasks) run as Harbor runs them, against the real Docker engine: task.toml 1.x, the network
per phase (their verifiers install pytest from PyPI), reward.json metrics, CTRF reports,
Harbor's log folders, registry datasets, and the export's schema. Never skipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from lancer.core.errors import TaskError
from lancer.formats import load_task_folder
from tests.conftest import EXAMPLES, ROOT, run_lancer

pytestmark = pytest.mark.docker

FIXTURES = ROOT / "tests" / "fixtures" / "harbor"
COOKBOOK = FIXTURES / "harbor-cookbook"
TB2 = FIXTURES / "terminal-bench-2"
TB2_TASKS = ["log-summary-date-ranges", "regex-log", "sqlite-db-truncate"]


def result_of(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "result.json").read_text()))


def header_of(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "trajectory.jsonl").read_text().splitlines()[0]))


def copy_task(source: Path, tmp: Path, name: str | None = None) -> Path:
    folder = tmp / (name or source.name)
    shutil.copytree(source, folder)
    return folder


@pytest.mark.timeout(1500)
def test_the_real_tasks_are_valid_under_the_default_config_and_the_oracle_resolves_each(tmp_path: Path) -> None:
    """`lancer check` (the untouched task fails, the reference solution passes) and an
    oracle eval, with the default configuration: their verifiers reach PyPI (public, Harbor's default)."""
    proc = run_lancer("check", str(COOKBOOK), str(TB2), "--sandbox", "docker", timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": valid\n") == 6 and "all tasks valid" in proc.stdout, proc.stdout
    # CTRF: the verifier's per-test outcomes, before and after the reference solution.
    assert "    failed   test_state.py::test_hello_file_exists\n" in proc.stdout
    assert "  reference solution (solution/solve.sh): passed (reward 1 (correctness 1, performance 1))" in proc.stdout

    out = tmp_path / "eval"
    proc = run_lancer(
        "eval", str(COOKBOOK), str(TB2), "--model", "oracle", "--sandbox", "docker", "--workers", "2",
        "--out", str(out), timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {json.loads(line)["task_id"]: json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()}
    assert sorted(rows) == sorted(["multi-container", "multi-reward", "simple-task", *TB2_TASKS])
    for task_id, row in rows.items():
        assert (row["resolved"], row["grade_status"], row["reward"]) == (True, "passed", 1.0), (task_id, row)
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["by_category"]) == ["data-processing", "debugging"]  # TB2's [metadata]

    simple = out / rows["simple-task"]["run_dir"]
    result = result_of(simple)
    assert result["network"] == {"agent": "on", "grader": "on"}
    assert result["grade"]["tests"] == [
        {"name": "test_state.py::test_hello_file_exists", "outcome": "passed"},
        {"name": "test_state.py::test_hello_file_contents", "outcome": "passed"},
    ]
    assert result["grade"]["reward_source"] == "reward.txt"
    # Harbor's log folders, in the run directory.
    verifier = simple / "logs" / "verifier"
    assert (verifier / "reward.txt").read_text().strip() == "1"
    assert json.loads((verifier / "ctrf.json").read_text())["results"]["summary"]["passed"] == 2
    assert "2 passed" in (verifier / "test-stdout.txt").read_text()
    assert (simple / "logs" / "agent").is_dir() and (simple / "logs" / "artifacts").is_dir()

    multi = result_of(out / rows["multi-reward"]["run_dir"])["grade"]
    assert multi["reward_metrics"] == {"correctness": 1.0, "performance": 1.0}
    assert multi["reward_source"] == "the mean of reward.json's correctness, performance"


@pytest.mark.timeout(900)
def test_a_no_network_verifier_cannot_reach_pypi_a_public_one_can_and_sandbox_network_forces_it_off(
    tmp_path: Path,
) -> None:
    public = tmp_path / "public"
    proc = run_lancer("run", str(COOKBOOK / "simple-task"), "--model", "oracle", "--sandbox", "docker",
                      "--out", str(public), timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert result_of(public)["resolved"] is True
    assert "Installed" in (public / "logs" / "verifier" / "test-stdout.txt").read_text()  # uv's packages, from PyPI

    # The same task, its verifier's phase without the network (the agent's keeps it).
    task = copy_task(COOKBOOK / "simple-task", tmp_path / "tasks")
    toml = (task / "task.toml").read_text().replace("[verifier]", '[verifier]\nnetwork_mode = "no-network"')
    # And the reference solution's and the agent's env reach solve.sh (the oracle is the agent here).
    toml = toml.replace("[agent]", '[agent]\nenv = { WHO = "the agent" }')
    (task / "task.toml").write_text(toml + '\n[solution]\nenv = { GREETING = "Hello, world!" }\n')
    (task / "solution" / "solve.sh").write_text('#!/bin/bash\necho "$GREETING" > hello.txt\necho "$WHO" > who.txt\n')
    offline = tmp_path / "offline"
    proc = run_lancer("run", str(task), "--model", "oracle", "--sandbox", "docker", "--out", str(offline), timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = result_of(offline)
    assert (result["resolved"], result["grade"]["status"], result["grade"]["reward"]) == (False, "failed", 0.0)
    assert result["network"] == {"agent": "on", "grader": "off"}
    stdout = (offline / "logs" / "verifier" / "test-stdout.txt").read_text()
    assert "Installed" not in stdout and "pip install" not in stdout
    assert any(word in stdout for word in ("Temporary failure in name resolution", "Failed to establish")), stdout
    patch = (offline / "patch.diff").read_text()
    assert "+Hello, world!\n" in patch and "+the agent\n" in patch, patch

    # sandbox.network: false forces both phases off, and the header and result.json say so.
    config = tmp_path / "offline.yaml"
    config.write_text("sandbox:\n  network: false\n")
    forced = tmp_path / "forced"
    proc = run_lancer("run", str(COOKBOOK / "simple-task"), "--model", "oracle", "--sandbox", "docker",
                      "--config", str(config), "--out", str(forced), timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    said = {
        "agent": "off",
        "grader": "off",
        "forced_by": "sandbox.network: false",
        "task_asks": {"agent": "on", "grader": "on"},
    }
    assert result_of(forced)["network"] == header_of(forced)["network"] == said
    assert result_of(forced)["resolved"] is False


def test_task_toml_is_read_as_harbor_reads_it(tmp_path: Path) -> None:
    task = copy_task(COOKBOOK / "simple-task", tmp_path)
    (task / "task.toml").write_text(
        'schema_version = "1.4"\n\n[task]\nname = "harbor/hello"\ndescription = "Say hello."\n'
        'authors = [{ name = "A. Author" }]\n\n[metadata]\ndifficulty = "easy"\nfree_form = { any = 1 }\n\n'
        '[agent]\ntimeout_sec = 60\nuser = "agent"\nenv = { MODE = "agent" }\n\n'
        '[verifier]\ntimeout_sec = 30\nuser = 0\nenv = { STRICT = "1" }\nnetwork_mode = "no-network"\n\n'
        "[environment]\ncpus = 2\nmemory_mb = 1024\nbuild_timeout_sec = 90\n"
        'env = { GREETING = "${LANCER_NO_SUCH_VAR:-hi}", HOME_IS = "${HOME}" }\n\n'
        '[solution]\nenv = { HINT = "x y" }\n'
    )
    loaded = load_task_folder(task)
    assert (loaded.network, loaded.grader_network) == (True, False)
    assert (loaded.container and loaded.container.user, loaded.container and loaded.container.grader_user) == (
        "agent",
        "0",
    )
    assert (loaded.agent_env, loaded.solution_env) == ({"MODE": "agent"}, {"HINT": "x y"})
    assert loaded.env == {"GREETING": "hi", "HOME_IS": os.environ["HOME"]}  # filled from this machine's
    assert loaded.test_command == "export STRICT=1; bash /tests/test.sh"
    limits = loaded.limits
    assert (limits.time_limit_s, limits.grader_timeout_s, limits.build_timeout_s) == (60, 30, 90)
    assert (limits.cpus, limits.memory, loaded.difficulty) == (2, "1024m", "easy")

    # Schema 1.0's spellings (Terminal-Bench 2's): version, memory and storage as sizes;
    # allow_internet = false is no network in either phase; Harbor's defaults fill the rest.
    (task / "task.toml").write_text(
        'version = "1.0"\n[environment]\nmemory = "2G"\nstorage = "10G"\nallow_internet = false\n'
    )
    loaded = load_task_folder(task)
    assert (loaded.network, loaded.grader_network) == (False, False)
    assert (loaded.limits.memory, loaded.limits.cpus, loaded.limits.grader_timeout_s) == ("2048m", 1, 600)

    for toml, error in (
        ('[task]\nname = "no-slash"\n', "task.toml task.name: String should match pattern"),
        ('schema_version = "2.0"\n', "schema_version: Value error, '2.0' is not a schema lancer reads (1.0, 1.1,"),
        ('[environment]\nmemory = "lots"\n', "environment.memory 'lots': expected a size like '2G'"),
        (
            '[environment]\nenv = { TOKEN = "${LANCER_NO_SUCH_VAR}" }\n',
            "task.toml environment.env.TOKEN needs $LANCER_NO_SUCH_VAR, which is not set here",
        ),
        ('[agent]\nnetwork_mode = "public"\nallowed_hosts = ["pypi.org"]\n', "allowed_hosts is only valid when"),
    ):
        (task / "task.toml").write_text(toml)
        with pytest.raises(TaskError, match=r"^task simple-task: ") as caught:
            load_task_folder(task)
        assert error in str(caught.value) and "\n" not in str(caught.value)


def test_an_allowlist_is_refused_in_one_line_before_the_run(tmp_path: Path) -> None:
    task = copy_task(COOKBOOK / "simple-task", tmp_path / "tasks")
    (task / "task.toml").write_text('[environment]\nallowed_hosts = ["pypi.org", "files.pythonhosted.org"]\n')
    proc = run_lancer("run", str(task), "--model", "oracle", "--sandbox", "docker", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "lancer: error: task simple-task: task.toml asks for network_mode 'allowlist' (pypi.org, "
        "files.pythonhosted.org) in its agent phase, which lancer does not enforce: use 'public' or 'no-network'"
    ]
    assert not (tmp_path / "run").exists()


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.timeout(900)
def test_a_registry_dataset_is_cloned_once_at_its_pinned_commit_and_run_from_the_cache(tmp_path: Path) -> None:
    # A repository of the Terminal-Bench 2 tasks; the registry pins its first commit, and a
    # later commit breaks regex-log's solution (a pinned dataset must not see it).
    upstream = tmp_path / "terminal-bench-2"
    shutil.copytree(TB2, upstream)
    _git("init", "-q", cwd=upstream)
    _git("add", "-A", cwd=upstream)
    _git("-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "tasks", cwd=upstream)
    pinned = _git("rev-parse", "HEAD", cwd=upstream)
    (upstream / "regex-log" / "solution" / "solve.sh").write_text("#!/bin/bash\necho '(' > /app/regex.txt\n")
    _git("-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "break it", cwd=upstream)
    tasks = [
        {"name": name, "git_url": f"file://{upstream}", "git_commit_id": pinned, "path": name}
        for name in ("regex-log", "sqlite-db-truncate")
    ]
    registry = tmp_path / "registry.json"
    registry.write_text(
        json.dumps(
            [
                {"name": "hello-world", "version": "head", "description": "", "tasks": []},
                {"name": "terminal-bench", "version": "2.0", "description": "Terminal-Bench 2.0", "tasks": tasks},
            ]
        )
    )
    env = {"LANCER_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "eval"
    proc = run_lancer(
        "eval", "--dataset", "terminal-bench@2.0", "--registry", str(registry), "--model", "oracle",
        "--sandbox", "docker", "--workers", "2", "--out", str(out), env=env, timeout=800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted((r["task_id"], r["resolved"]) for r in rows) == [("regex-log", True), ("sqlite-db-truncate", True)]
    clones = list((tmp_path / "cache" / "harbor-registry").glob("*/*"))
    assert [c.name for c in clones] == [pinned]  # one clone for both tasks, at the pinned commit
    assert _git("rev-parse", "HEAD", cwd=clones[0]) == pinned

    # From the cache: the repository is gone, the dataset still loads (and checks); a clone
    # a killed lancer left (its owner's process gone) is removed on the way.
    shutil.rmtree(upstream)
    abandoned = clones[0].parent / ".clone-killed"
    (abandoned / "repo").mkdir(parents=True)
    (abandoned / "lancer.pid").write_text("999999999")
    proc = run_lancer(
        "check", "--dataset", "terminal-bench@2.0", "--registry", str(registry), "--ids", "regex-log",
        "--sandbox", "docker", env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0 and "regex-log: valid" in proc.stdout, proc.stdout + proc.stderr
    assert not abandoned.exists()

    proc = run_lancer("check", "--dataset", "terminal-bench@9", "--registry", str(registry), env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"lancer: error: --dataset terminal-bench@9: {registry} has terminal-bench in versions 2.0: "
        "name one as terminal-bench@VERSION"
    )


def test_an_export_is_schema_1x_with_the_network_explicit_and_reads_back_every_field(tmp_path: Path) -> None:
    exported = tmp_path / "exported"
    names = ["invoice-discount", "slugify-uppercase"]  # the second asks for the network
    proc = run_lancer("export", *(str(EXAMPLES / n) for n in names), "--format", "harbor", str(exported), timeout=600)
    assert proc.returncode == 0, proc.stderr
    for name in names:
        original, back = load_task_folder(EXAMPLES / name), load_task_folder(exported / name)
        toml = tomllib.loads((exported / name / "task.toml").read_text())
        assert toml["schema_version"] == "1.4"
        assert toml["environment"]["network_mode"] == ("public" if original.network else "no-network")
        kept = ("price", "difficulty", "category", "tags", "network")
        assert {k: getattr(back, k) for k in kept} == {k: getattr(original, k) for k in kept}, name
        assert back.grader_network == original.network
        assert back.limits.time_limit_s == original.limits.time_limit_s
        # An unbounded build is Harbor's default build time (TOML has no null to write).
        assert back.limits.build_timeout_s == (original.limits.build_timeout_s or 600)
        # What the original left to the run's configuration is written out as lancer's defaults.
        assert back.limits.cpus == (original.limits.cpus or 2)
        assert back.limits.memory == (original.limits.memory or "4096m")
        assert back.limits.grader_timeout_s == (original.limits.grader_timeout_s or 1800)
