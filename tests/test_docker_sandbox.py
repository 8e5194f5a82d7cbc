"""The docker sandbox against a real engine (CI starts one: scripts/docker-up.sh). Never
skipped: without an engine these tests fail, saying how to start one."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from lancer.core.config import SandboxConfig, load_config
from lancer.core.errors import LancerError, SandboxError
from lancer.core.tasks import load_task
from lancer.sandbox import SandboxSpec, create_sandbox
from lancer.sandbox.docker import MANAGED_LABEL, DockerSandbox, base_image, connect, prune
from lancer.sandbox.shell import PersistentShell
from tests.conftest import EXAMPLES, ROOT, make_repo, run_lancer

pytestmark = pytest.mark.docker

IC_TASK = EXAMPLES / "invoice-discount"
FIX = {
    "name": "editor",
    "arguments": {
        "command": "str_replace",
        "path": "invoice.py",
        "old_str": "    taxed = subtotal(items) * (1 + tax_rate)\n    return round(taxed - discount, 2)",
        "new_str": "    return round(max(subtotal(items) - discount, 0.0) * (1 + tax_rate), 2)",
    },
}
SUBMIT = {"name": "submit", "arguments": {}}


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    try:
        c = connect()
    except LancerError as e:
        pytest.fail(f"these tests need a Docker engine: {e}")
    yield c
    c.close()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path)


def sandbox_of(**spec: Any) -> DockerSandbox:
    return DockerSandbox(SandboxSpec(**{"repo_dir": None, "label": "pytest-docker", **spec}))


def lancer_containers(client: docker.DockerClient, task_id: str | None = None) -> list[Any]:
    label = f"lancer.task={task_id}" if task_id else f"{MANAGED_LABEL}=1"
    return client.api.containers(all=True, filters={"label": label})  # type: ignore[no-any-return]


def bash(command: str) -> dict[str, Any]:
    return {"name": "bash", "arguments": {"command": command}}


def task_copy(tmp_path: Path, source: Path = IC_TASK, **changes: Any) -> Path:
    """A copy of an example task with a unique id (so its containers can be told apart)."""
    folder = tmp_path / "task"
    shutil.copytree(source, folder)
    spec = yaml.safe_load((folder / "task.yaml").read_text())
    spec.update({"id": f"pytest-{uuid.uuid4().hex[:10]}", **changes})
    (folder / "task.yaml").write_text(yaml.safe_dump(spec))
    return folder


def turns_file(tmp_path: Path, *steps: dict[str, Any]) -> Path:
    path = tmp_path / "turns.yaml"
    path.write_text(yaml.safe_dump({"turns": [{"tool_calls": [step]} for step in steps]}))
    return path


# -- isolation -------------------------------------------------------------------------


def test_commands_run_in_the_container_as_a_non_root_user(client: docker.DockerClient, repo: Path) -> None:
    sb = sandbox_of(repo_dir=repo)
    try:
        out = sb.exec(["sh", "-c", "id -un; id -u; test -f /.dockerenv && echo in-docker; echo $HOME"]).text.split()
        assert out[0] == "lancer" and out[1] != "0" and out[2] == "in-docker"
        assert sb.exec(["sh", "-c", "touch $HOME/ok && touch src/ok"]).exit_code == 0
        assert sb.exec(["touch", "/etc/owned"]).exit_code != 0
        # no-new-privileges: no setuid way back to root
        assert "NoNewPrivs:\t1" in sb.exec(["cat", "/proc/self/status"]).text
        labels = client.api.inspect_container(sb._cid)["Config"]["Labels"]
        assert labels[MANAGED_LABEL] == "1" and labels["lancer.task"] == "pytest-docker"
        assert labels["lancer.pid"] == str(os.getpid())
    finally:
        sb.close()


def test_root_and_named_users_on_request(repo: Path) -> None:
    sb = sandbox_of(repo_dir=repo, user="root")
    try:
        assert sb.exec(["id", "-u"]).text.strip() == "0"
    finally:
        sb.close()
    sb = sandbox_of(repo_dir=repo, user="nobody")
    try:
        assert sb.exec(["sh", "-c", "id -un; echo $HOME"]).text.split() == ["nobody", "/nonexistent"]
    finally:
        sb.close()
    with pytest.raises(SandboxError, match="no user 'no-such-user'"):
        sandbox_of(repo_dir=repo, user="no-such-user")


def test_no_network_unless_asked(repo: Path) -> None:
    probe = (
        "import socket\ntry:\n socket.create_connection(('192.0.2.1', 80), timeout=3)\n"
        "except OSError as e:\n print(type(e).__name__, e.errno)"
    )
    sb = sandbox_of(repo_dir=repo)
    try:
        interfaces = sb.exec(["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1"]).text.split()
        assert interfaces == ["lo"]
        assert "OSError 101" in sb.exec(["python3", "-c", probe], timeout=30).text  # network unreachable
    finally:
        sb.close()
    sb = sandbox_of(repo_dir=repo, network=True)
    try:
        assert "eth0" in sb.exec(["cat", "/proc/net/dev"]).text
    finally:
        sb.close()


def test_timeout_kills_inside_the_container_and_the_shell_recovers(repo: Path) -> None:
    sb = sandbox_of(repo_dir=repo)
    shell = PersistentShell(sb)
    try:
        shell.run("cd src && export KEEP=kept", 10)
        started = time.monotonic()
        result = shell.run("sleep 311 & (sleep 312; echo late) & sleep 313", 2)
        assert result.timed_out and time.monotonic() - started < 15
        ps = sb.exec(["ps", "-eo", "user,args"]).text
        assert "sleep 31" not in ps, ps
        after = shell.run("pwd; echo $KEEP", 10)
        assert after.output.split()[-2:] == [f"{sb.workdir}/src", "kept"] and after.exit_code == 0
    finally:
        shell.close()
        sb.close()


def test_a_fork_bomb_hits_the_process_limit_and_the_sandbox_recovers(repo: Path) -> None:
    sb = sandbox_of(repo_dir=repo, pids_limit=64)
    shell = PersistentShell(sb)
    try:
        assert sb.exec(["cat", "/sys/fs/cgroup/pids/pids.max"]).text.strip() in ("64", "")  # cgroup v1 path
        result = shell.run("bomb() { bomb | bomb & }; bomb; sleep 30", 5)
        assert result.exit_code is None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the bomb's processes are gone, not merely stopped
            ps = sb.exec(["ps", "-eo", "comm"]).text.split()
            if ps.count("bash") <= 2:
                break
            time.sleep(0.5)
        assert ps.count("bash") <= 2, ps
        assert shell.run("echo alive", 20).output.strip().endswith("alive")
    finally:
        shell.close()
        sb.close()


def test_a_memory_hog_is_killed_and_the_shell_goes_on(repo: Path) -> None:
    sb = sandbox_of(repo_dir=repo, memory="96m")
    shell = PersistentShell(sb)
    try:
        hog = shell.run("python3 -c 'b = bytearray(1 << 30); print(len(b))'", 60)
        assert hog.exit_code == 137 and "1073741824" not in hog.output  # SIGKILL by the OOM killer
        assert shell.run("echo still here", 10).output.strip() == "still here"
    finally:
        shell.close()
        sb.close()


def test_cpu_and_memory_limits_are_set(client: docker.DockerClient, repo: Path) -> None:
    sb = sandbox_of(repo_dir=repo, memory="256m", cpus=0.5, pids_limit=100)
    try:
        host = client.api.inspect_container(sb._cid)["HostConfig"]
        assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == (
            256 * 2**20,
            256 * 2**20,
            500_000_000,
            100,
        )
    finally:
        sb.close()


# -- images ----------------------------------------------------------------------------


def test_a_dockerfile_task_builds_a_labelled_image_once(client: docker.DockerClient, tmp_path: Path) -> None:
    context = tmp_path / "image"
    context.mkdir()
    marker = uuid.uuid4().hex
    (context / "Dockerfile").write_text(f"FROM {base_image()}\nRUN echo {marker} > /opt/marker\n")
    spec = SandboxSpec(repo_dir=make_repo(tmp_path), dockerfile=context / "Dockerfile", label="pytest-build")
    sb = create_sandbox("docker", spec)
    try:
        assert sb.exec(["cat", "/opt/marker"]).text.strip() == marker
        image = client.api.inspect_container(sb._cid)["Config"]["Image"]  # type: ignore[attr-defined]
    finally:
        sb.close()
    assert client.images.get(image).labels[MANAGED_LABEL] == "built"
    started = time.monotonic()
    create_sandbox("docker", spec).close()  # the same context: the image is reused
    assert time.monotonic() - started < 10
    assert prune(images=True) >= 1
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(image)


def test_the_image_option_replaces_the_tasks_image_and_dockerfile(tmp_path: Path) -> None:
    folder = task_copy(tmp_path, dockerfile="Dockerfile")
    spec = load_task(folder).sandbox_spec(for_agent=True, config=SandboxConfig(kind="docker", image="other:1"))
    assert (spec.image, spec.dockerfile) == ("other:1", None)
    spec = load_task(folder).sandbox_spec(for_agent=True, config=SandboxConfig(memory="1g", network=True))
    assert (spec.image, spec.dockerfile, spec.memory, spec.network) == (None, folder / "Dockerfile", "1g", True)


# -- clear errors, nothing left --------------------------------------------------------


def test_no_engine_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, repo: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(SandboxError) as info:
        sandbox_of(repo_dir=repo)
    message = str(info.value)
    assert "no Docker engine answers at unix://" in message and "scripts/docker-up.sh" in message
    assert "\n" not in message


def test_a_missing_image_is_named_with_how_to_get_it(client: docker.DockerClient, tmp_path: Path) -> None:
    folder = task_copy(tmp_path)
    before = len(lancer_containers(client))
    proc = run_lancer(
        "run", str(folder), "--model", f"scripted:{turns_file(tmp_path, SUBMIT)}", "--sandbox", "docker",
        "--image", "lancer-no-such-image:1", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert "image lancer-no-such-image:1 is not on this machine and could not be pulled" in proc.stderr
    assert "docker build -t lancer-no-such-image:1" in proc.stderr
    assert len(lancer_containers(client)) == before


def test_a_container_that_cannot_start_is_one_line_and_leaves_nothing(client: docker.DockerClient, repo: Path) -> None:
    before = len(lancer_containers(client))
    with pytest.raises(SandboxError, match="failed to start") as info:
        sandbox_of(repo_dir=repo, memory="1m")  # below Docker's minimum
    assert "\n" not in str(info.value)
    assert len(lancer_containers(client)) == before


def test_a_bad_setup_command_ends_the_run_and_removes_the_container(
    client: docker.DockerClient, tmp_path: Path
) -> None:
    folder = task_copy(tmp_path, setup=["echo broken >&2; exit 7"])
    proc = run_lancer(
        "run", str(folder), "--model", f"scripted:{turns_file(tmp_path, SUBMIT)}", "--sandbox", "docker",
        "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert "exited 7" in proc.stderr
    assert lancer_containers(client, load_task(folder).id) == []


# -- whole runs ------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["resolved", "wrong fix", "timed out"])
def test_runs_resolve_or_fail_and_leave_no_container(client: docker.DockerClient, tmp_path: Path, outcome: str) -> None:
    folder = task_copy(tmp_path)
    steps = {
        "resolved": [bash("find / -name 'test_discount*' -not -path '/proc/*' 2>/dev/null; echo searched"), FIX],
        "wrong fix": [bash("echo nothing to see")],
        "timed out": [bash("sleep 600")],
    }[outcome]
    out = tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text("tools: {bash_timeout_s: 3}\n")
    args = ["run", str(folder), "--model", f"scripted:{turns_file(tmp_path, *steps, SUBMIT)}", "--sandbox", "docker"]
    proc = run_lancer(*args, "--out", str(out), "--config", str(config), timeout=180)
    result = json.loads((out / "result.json").read_text())
    assert result["resolved"] is (outcome == "resolved"), proc.stderr
    records = [json.loads(line) for line in (out / "trajectory.jsonl").read_text().splitlines()]
    observations = [r for r in records if r["type"] == "step"]
    if outcome == "resolved":  # the hidden tests were nowhere in the agent's container
        assert observations[0]["observations"][0]["output"].strip() == "searched"
    if outcome == "timed out":
        assert "timed out after 3 s" in observations[0]["observations"][0]["output"]
    assert lancer_containers(client, load_task(folder).id) == []


def test_the_grader_uses_a_fresh_container(client: docker.DockerClient, tmp_path: Path) -> None:
    folder = task_copy(tmp_path)
    (folder / "tests" / "test_fresh.py").write_text(
        "import os\n\ndef test_nothing_of_the_agents_container_but_the_patch():\n"
        "    assert not os.path.exists('/tmp/agent-was-here')\n"
    )
    turns = turns_file(tmp_path, bash("touch /tmp/agent-was-here"), FIX, SUBMIT)
    out = tmp_path / "run"
    proc = run_lancer("run", str(folder), "--model", f"scripted:{turns}", "--sandbox", "docker", "--out", str(out))
    result = json.loads((out / "result.json").read_text())
    assert result["resolved"] is True, (proc.stderr, result["grade"])
    assert "4 passed" in result["grade"]["output_tail"]
    assert lancer_containers(client, load_task(folder).id) == []


def _start_run(tmp_path: Path, folder: Path, *steps: dict[str, Any]) -> subprocess.Popen[str]:
    turns = turns_file(tmp_path, *steps)
    return subprocess.Popen(
        [sys.executable, "-m", "lancer", "run", str(folder), "--model", f"scripted:{turns}", "--sandbox", "docker",
         "--out", str(tmp_path / "run")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_container(client: docker.DockerClient, task_id: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = lancer_containers(client, task_id)
        if found:
            return str(found[0]["Id"])
        time.sleep(0.2)
    raise AssertionError("the run started no container")


def _wait_gone(client: docker.DockerClient, task_id: str, seconds: float) -> list[Any]:
    deadline = time.monotonic() + seconds
    while (left := lancer_containers(client, task_id)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_ctrl_c_removes_the_container(client: docker.DockerClient, tmp_path: Path) -> None:
    folder = task_copy(tmp_path)
    proc = _start_run(tmp_path, folder, bash("sleep 300"), SUBMIT)
    _wait_for_container(client, load_task(folder).id)
    time.sleep(1.5)  # inside the sleep
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert json.loads((tmp_path / "run" / "result.json").read_text())["exit_status"] == "interrupted", stderr
    assert lancer_containers(client, load_task(folder).id) == []


def test_even_kill_9_of_lancer_leaves_no_container(client: docker.DockerClient, tmp_path: Path) -> None:
    folder = task_copy(tmp_path)
    proc = _start_run(tmp_path, folder, bash("sleep 300"), SUBMIT)
    _wait_for_container(client, load_task(folder).id)
    time.sleep(1.5)
    proc.kill()
    proc.communicate(timeout=30)
    # The container's init loses its stdin (lancer's end of the attach) and exits; Docker removes it.
    assert _wait_gone(client, load_task(folder).id, 20) == []


def test_prune_removes_what_dead_processes_left(client: docker.DockerClient) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()

    def leftover(pid: int) -> str:
        labels = {MANAGED_LABEL: "1", "lancer.task": "pytest-prune", "lancer.pid": str(pid)}
        labels["lancer.host"] = os.uname().nodename
        host_config = client.api.create_host_config(network_mode="none")
        created = client.api.create_container(base_image(), ["sleep", "600"], labels=labels, host_config=host_config)
        client.api.start(created["Id"])
        return str(created["Id"])

    orphan, ours = leftover(dead.pid), leftover(os.getpid())
    try:
        assert prune() >= 1
        ids = {c["Id"] for c in lancer_containers(client, "pytest-prune")}
        assert orphan not in ids and ours in ids  # a live process's container stays
        proc = run_lancer("sandbox", "prune", "--all")
        assert proc.returncode == 0 and proc.stdout.startswith("removed "), proc.stderr
        assert lancer_containers(client, "pytest-prune") == []
    finally:
        for cid in (orphan, ours):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(cid, force=True)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("container: {workdir: app}", "container.workdir: Value error, 'app' must be an absolute path"),
        ("container: {workdir: /app/x, hide: [/app]}", "hide: /app would remove the working tree /app/x"),
        ("container: {image_command: true}", "container.image_command needs the task's image or dockerfile"),
        ("container: {ready_fil: /x}", "container.ready_fil: Extra inputs are not permitted"),
        ("image: a\ndockerfile: Dockerfile", "give image or dockerfile, not both"),
    ],
)
def test_bad_container_settings_name_the_field(tmp_path: Path, yaml_text: str, message: str) -> None:
    folder = task_copy(tmp_path)
    (folder / "task.yaml").write_text((folder / "task.yaml").read_text() + yaml_text + "\n")
    with pytest.raises(LancerError, match=re.escape(message)):
        load_task(folder)


def test_bad_docker_limits_in_the_config_name_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("sandbox: {kind: docker, memory: 4 GB}\n")
    with pytest.raises(LancerError, match=r"sandbox\.memory: String should match pattern"):
        load_config(config)
