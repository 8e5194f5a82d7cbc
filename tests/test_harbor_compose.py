"""Harbor's compose environments (the cookbook's recipes/multi-container: a main service and
an API sidecar) run through the real `docker compose` plugin, and leave nothing behind:
after a run, after Ctrl-C, after `kill -9` of lancer (its watcher removes the project; with
the watcher killed too, `lancer sandbox prune` or the next compose sandbox's start does).
Never skipped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, lancer_argv, run_lancer

pytestmark = pytest.mark.docker

TASK = ROOT / "tests" / "fixtures" / "harbor" / "harbor-cookbook" / "multi-container"
KINDS = {"containers": ["ps", "-a"], "networks": ["network", "ls"], "volumes": ["volume", "ls"]}


def docker_names(kind: str, label: str) -> list[str]:
    """What `docker ps -a`, `docker network ls` or `docker volume ls` shows with ``label``."""
    argv = ["docker", *KINDS[kind], "--filter", f"label={label}", "--format", "{{.Names}}"]
    if kind != "containers":
        argv[-1] = "{{.Name}}"
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()


def leftovers(label: str) -> dict[str, list[str]]:
    return {kind: docker_names(kind, label) for kind in KINDS}


NOTHING: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}


def slow_copy(tmp: Path, name: str) -> Path:
    """The task, its sidecar with a named volume, its solution stuck mid-run once started."""
    folder = tmp / name
    shutil.copytree(TASK, folder)
    compose_file = folder / "environment" / "docker-compose.yaml"
    compose = yaml.safe_load(compose_file.read_text())
    compose["services"]["api-server"]["volumes"] = ["cache:/cache"]
    compose["volumes"] = {"cache": {}}
    compose_file.write_text(yaml.safe_dump(compose))
    (folder / "solution" / "solve.sh").write_text("#!/bin/bash\ntouch /app/started\nsleep 600\n")
    return folder


def start_mid_run(task: Path, out: Path) -> tuple[subprocess.Popen[str], str]:
    """lancer running ``task`` with the oracle, once its solution runs in main; and the project's name."""
    proc = subprocess.Popen(
        lancer_argv("run", str(task), "--model", "oracle", "--sandbox", "docker", "--out", str(out)),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 600
    main = f"label=lancer.task={task.name}"
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        ids = subprocess.run(
            ["docker", "ps", "-q", "--filter", main, "--filter", "label=com.docker.compose.service=main"],
            capture_output=True,
            text=True,
        ).stdout.split()
        if ids and subprocess.run(["docker", "exec", ids[0], "test", "-e", "/app/started"]).returncode == 0:
            project = subprocess.run(
                ["docker", "inspect", "-f", '{{index .Config.Labels "com.docker.compose.project"}}', ids[0]],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            return proc, project
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"the solution never started: {proc.communicate()[0]}")


def assert_running(project: str) -> None:
    """The project is there: its two services, its network, its sidecar's volume."""
    left = leftovers(f"com.docker.compose.project={project}")
    assert sorted(left["containers"]) == [f"{project}-api-server-1", f"{project}-main-1"], left
    assert (left["networks"], left["volumes"]) == ([f"{project}_default"], [f"{project}_cache"]), left


def result_of(run_dir: Path) -> dict[str, object]:
    return dict(json.loads((run_dir / "result.json").read_text()))


@pytest.mark.timeout(900)
def test_the_multi_container_task_is_valid_and_the_oracle_resolves_it_through_its_sidecar(tmp_path: Path) -> None:
    proc = run_lancer("check", str(TASK), "--sandbox", "docker", timeout=800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "multi-container: valid\n" in proc.stdout and "all tasks valid" in proc.stdout, proc.stdout
    assert "    failed   test_outputs.py::test_items_file_exists\n" in proc.stdout  # before the solution
    assert "  reference solution (solution/solve.sh): passed (reward 1)" in proc.stdout, proc.stdout
    assert leftovers("lancer.task=multi-container") == NOTHING

    out = tmp_path / "run"
    proc = run_lancer("run", str(TASK), "--model", "oracle", "--sandbox", "docker", "--out", str(out), timeout=800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = result_of(out)
    assert (result["resolved"], result["grade"]["reward"]) == (True, 1.0)  # type: ignore[index]
    # What the agent's curl got from the api-server sidecar, over the project's network.
    patch = (out / "patch.diff").read_text()
    assert '+[{"id":1,"name":"alpha"},{"id":2,"name":"bravo"},{"id":3,"name":"harbor"}]' in patch, patch
    assert "3 passed" in (out / "logs" / "verifier" / "test-stdout.txt").read_text()
    assert leftovers("lancer.task=multi-container") == NOTHING


@pytest.mark.timeout(900)
def test_harbor_compose_variables_and_a_no_network_agent_phase_whose_sidecar_still_answers(tmp_path: Path) -> None:
    task = tmp_path / "compose-vars"
    shutil.copytree(TASK, task)
    compose_file = task / "environment" / "docker-compose.yaml"
    compose = yaml.safe_load(compose_file.read_text())
    compose["services"]["main"]["environment"] = {
        "SEEN": "${CPUS} ${MEMORY} ${ENV_VERIFIER_LOGS_PATH} ${ENV_AGENT_LOGS_PATH} ${TEST_DIR} ${MAIN_IMAGE_NAME}"
    }
    compose_file.write_text(yaml.safe_dump(compose))
    toml = (task / "task.toml").read_text().replace("[agent]", '[agent]\nnetwork_mode = "no-network"')
    (task / "task.toml").write_text(toml)
    solve = task / "solution" / "solve.sh"
    reach = "curl -sS -m 10 https://pypi.org/simple/ >/dev/null 2>&1 && echo reached || echo unreachable"
    solve.write_text(solve.read_text() + f'\necho "$SEEN" > /app/seen.txt\n({reach}) > /app/pypi.txt\n')
    out = tmp_path / "run"
    proc = run_lancer("run", str(task), "--model", "oracle", "--sandbox", "docker", "--out", str(out), timeout=800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = result_of(out)
    assert result["resolved"] is True and result["network"] == {"agent": "off", "grader": "on"}, result
    patch = (out / "patch.diff").read_text()
    assert "+unreachable\n" in patch  # no internet for the agent ...
    assert '"name":"harbor"' in patch  # ... but its sidecar answers, on the project's internal network
    assert "+1 2048m /logs/verifier /logs/agent /tests lancer-task-compose-vars:" in patch, patch
    assert leftovers("lancer.task=compose-vars") == NOTHING


@pytest.mark.timeout(900)
def test_ctrl_c_mid_run_leaves_no_container_network_or_volume(tmp_path: Path) -> None:
    task = slow_copy(tmp_path, "compose-sigint")
    proc, project = start_mid_run(task, tmp_path / "run")
    assert_running(project)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "exit: interrupted" in output, output
    assert leftovers(f"com.docker.compose.project={project}") == NOTHING
    assert leftovers(f"lancer.compose={project}") == NOTHING


def watcher_of(project: str) -> int:
    """The pid of the project's lifeline watcher (lancer.sandbox.docker.lifeline)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(arg.endswith(b"/lifeline.py") for arg in argv) and project.encode() in argv:
                return int(entry.name)
    raise AssertionError(f"no watcher for {project}")


def gone_within(project: str, seconds: float) -> dict[str, list[str]]:
    """What is left of the project once it is gone, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while (left := leftovers(f"com.docker.compose.project={project}")) != NOTHING and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.mark.timeout(900)
def test_kill_9_mid_run_leaves_no_container_network_or_volume(tmp_path: Path) -> None:
    task = slow_copy(tmp_path, "compose-kill")
    proc, project = start_mid_run(task, tmp_path / "run")
    assert_running(project)
    proc.kill()  # SIGKILL: no close runs; the watcher sees lancer's end of its pipe close
    proc.communicate(timeout=60)
    assert gone_within(project, 60) == NOTHING
    assert leftovers("lancer.task=compose-kill") == NOTHING
    assert "trajectory.jsonl" in os.listdir(tmp_path / "run")


@pytest.mark.timeout(1200)
def test_a_project_whose_watcher_was_killed_too_is_removed_by_prune_or_the_next_start(tmp_path: Path) -> None:
    task = slow_copy(tmp_path, "compose-orphan")
    proc, project = start_mid_run(task, tmp_path / "run1")
    os.kill(watcher_of(project), signal.SIGKILL)
    proc.kill()
    proc.communicate(timeout=60)
    time.sleep(2)
    assert_running(project)
    pruned = run_lancer("sandbox", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert leftovers(f"com.docker.compose.project={project}") == NOTHING

    # Both killed again; this time the next compose sandbox's start removes what they left.
    proc, project = start_mid_run(task, tmp_path / "run2")
    os.kill(watcher_of(project), signal.SIGKILL)
    proc.kill()
    proc.communicate(timeout=60)
    time.sleep(2)
    assert_running(project)
    (task / "solution" / "solve.sh").write_text((TASK / "solution" / "solve.sh").read_text())
    out = tmp_path / "run3"
    done = run_lancer("run", str(task), "--model", "oracle", "--sandbox", "docker", "--out", str(out), timeout=800)
    assert done.returncode == 0, done.stdout + done.stderr
    assert result_of(out)["resolved"] is True
    assert leftovers(f"com.docker.compose.project={project}") == NOTHING
    assert leftovers("lancer.task=compose-orphan") == NOTHING


def test_a_compose_task_is_refused_in_one_line_without_the_compose_plugin_or_in_the_local_sandbox(
    tmp_path: Path,
) -> None:
    # A docker whose compose plugin is missing: every other command is the real one.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = shutil.which("docker")
    fake = bin_dir / "docker"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = compose ]; then echo "docker: \'compose\' is not a docker command." >&2; exit 1; fi\n'
        f'exec {real} "$@"\n'
    )
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    out = tmp_path / "run"
    proc = run_lancer("run", str(TASK), "--model", "oracle", "--sandbox", "docker", "--out", str(out), env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "lancer: error: task multi-container: docker compose v2 is not installed (`docker compose version` fails), "
        "and this task's environment is a docker-compose file: run `bash scripts/setup.sh`, or install the docker "
        "compose v2 plugin"
    ]
    assert not out.exists()

    proc = run_lancer("run", str(TASK), "--model", "oracle", "--sandbox", "local", "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "lancer: error: task multi-container's environment is a docker-compose file (environment/docker-compose.yaml), "
        "which the local sandbox cannot run: run it with --sandbox docker"
    ]


@pytest.mark.timeout(600)
def test_a_sidecar_that_fails_its_healthcheck_or_lacks_its_base_image_is_one_line_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    unhealthy = tmp_path / "compose-sick"
    shutil.copytree(TASK, unhealthy)
    compose_file = unhealthy / "environment" / "docker-compose.yaml"
    compose = yaml.safe_load(compose_file.read_text())
    compose["services"]["api-server"]["healthcheck"] = {"test": ["CMD", "false"], "interval": "1s", "retries": 1}
    compose_file.write_text(yaml.safe_dump(compose))
    out = tmp_path / "sick"
    proc = run_lancer("run", str(unhealthy), "--model", "oracle", "--sandbox", "docker", "--out", str(out), timeout=500)
    assert proc.returncode == 1 and "exit: error" in proc.stderr, proc.stdout + proc.stderr
    why = result_of(out)["detail"]
    assert isinstance(why, str) and "\n" not in why
    assert why.startswith(f"SandboxError: task compose-sick: the compose environment {compose_file} did not start"), why
    assert why.endswith("-api-server-1 is unhealthy"), why
    assert leftovers("lancer.task=compose-sick") == NOTHING

    orphan = tmp_path / "compose-orphan"
    shutil.copytree(TASK, orphan)
    sidecar = orphan / "environment" / "api-server" / "Dockerfile"
    sidecar.write_text(sidecar.read_text().replace("FROM lancer-base:bookworm", "FROM python:3.12-slim"))
    out = tmp_path / "orphan"
    proc = run_lancer("run", str(orphan), "--model", "oracle", "--sandbox", "docker", "--out", str(out), timeout=500)
    assert proc.returncode == 1 and "exit: error" in proc.stderr, proc.stdout + proc.stderr
    assert result_of(out)["detail"] == (
        "SandboxError: task compose-orphan: the base image python:3.12-slim of service api-server "
        f"({sidecar}) is not on this machine: build or load it first (`docker build -t python:3.12-slim DIR`, "
        "`docker load -i FILE`), or build FROM lancer-base:bookworm"
    )
    assert leftovers("lancer.task=compose-orphan") == NOTHING
