"""The local sandbox isolates (bubblewrap), limits (cgroups) and brings the task's own Python.

Probed as a user would: from the agent's shell in a real sandbox, the host's files,
other tasks' folders and the host's loopback are out of reach; a fork bomb and a memory
hog end with a message and the next command works; ``pip install`` changes the task's
environment only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lancer.core.errors import SandboxError
from lancer.sandbox import SandboxSpec, create_sandbox
from lancer.sandbox.local import LocalSandbox
from lancer.sandbox.shell import PersistentShell
from tests.conftest import EXAMPLES, make_repo, run_lancer


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalSandbox]:
    spec = SandboxSpec(repo_dir=make_repo(tmp_path), label="pytest", memory="1g", pids_limit=256)
    sandbox = LocalSandbox(spec)
    try:
        yield sandbox
    finally:
        sandbox.close()


@pytest.fixture
def shell(local: LocalSandbox) -> Iterator[PersistentShell]:
    persistent = PersistentShell(local)
    try:
        yield persistent
    finally:
        persistent.close()


def test_the_hosts_home_and_other_task_folders_are_not_there(
    shell: PersistentShell, tmp_path: Path, hidden_file_name: str
) -> None:
    secrets = [tmp_path / "home" / hidden_file_name, Path.home() / hidden_file_name]
    for secret in secrets:
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text("api-key\n")
    try:
        for secret in secrets:
            result = shell.run(f"cat {secret}", timeout=30)
            assert result.exit_code != 0 and "No such file" in result.output
        other_task = EXAMPLES / "invoice-discount"
        result = shell.run(f"ls {other_task}/tests", timeout=30)
        assert result.exit_code != 0 and "No such file" in result.output
        found = shell.run(f"find / -name {hidden_file_name} 2>/dev/null; ls /", timeout=120)
        assert hidden_file_name not in found.output and "work" not in found.output.split()
    finally:
        for secret in secrets:
            secret.unlink()


def test_the_hosts_loopback_is_out_of_reach(shell: PersistentShell) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        probe = f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), timeout=5)'"
        result = shell.run(probe, timeout=30)
    assert result.exit_code != 0 and "Connection refused" in result.output


def test_a_fork_bomb_ends_with_a_message_and_the_next_command_works(shell: PersistentShell) -> None:
    shell.run("bomb() { bomb | bomb & }; bomb 2>/dev/null &", timeout=30)
    hit = shell.run("sleep 10; echo survived", timeout=60)
    # Told by the limits watcher (in the output) or by the shell that could not fork (its note).
    assert "process limit" in hit.output + hit.note and "survived" not in hit.output
    assert "a new shell was started" in hit.note
    after = shell.run("echo next; ps -e --no-headers | wc -l", timeout=30)
    assert after.exit_code == 0 and after.output.split()[0] == "next"
    assert int(after.output.split()[1]) < 10  # the bomb is gone


def test_a_6gb_allocation_is_killed_with_a_message_and_the_shell_goes_on(shell: PersistentShell) -> None:
    hog = shell.run("python3 -c 'x = bytearray(6 * 2**30); print(len(x))'", timeout=120)
    told = hog.output + hog.note  # the model sees both
    assert hog.exit_code == 137 and told.count("memory limit") == 1 and "6442450944" not in told
    assert shell.run("echo alive", timeout=30).output.strip() == "alive"


def test_pip_install_changes_the_task_env_only(shell: PersistentShell, tmp_path: Path) -> None:
    name = f"lancer_probe_{uuid.uuid4().hex[:8]}"
    package = f"{shell.cwd}/{name}"
    shell.run(f"mkdir -p {package}/{name} && echo 'VALUE = 42' > {package}/{name}/__init__.py", timeout=30)
    pyproject = f'[project]\\nname = "{name}"\\nversion = "1.0"\\n'
    shell.run(f"printf '{pyproject}' > {package}/pyproject.toml", timeout=30)
    site_packages = Path(sysconfig.get_paths()["purelib"])
    lancer_site = sorted(os.listdir(site_packages))
    # Offline: the build backend comes from lancer's wheelhouse, not the network.
    installed = shell.run(f"pip install -q ./{name}", timeout=300)
    assert installed.exit_code == 0, installed.output
    used = shell.run(f"python3 -c 'import {name}; print({name}.VALUE)'; which python3 pip pytest", timeout=30)
    assert used.output.split()[0] == "42"
    assert all(path.startswith(str(Path(shell.cwd).parent / "venv")) for path in used.output.split()[1:])
    assert sorted(os.listdir(site_packages)) == lancer_site
    lancer = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True)
    assert lancer.returncode != 0


def test_a_repos_own_test_suite_runs_with_the_task_envs_pytest(shell: PersistentShell) -> None:
    shell.run("mkdir -p tests && printf 'from src.app import greet\\n\\n' > tests/test_app.py", timeout=30)
    shell.run('printf \'def test_greet():\\n    assert greet("x") == "hi x"\\n\' >> tests/test_app.py', timeout=30)
    result = shell.run("touch src/__init__.py && pytest -q tests && python3 -m pytest --version", timeout=120)
    assert result.exit_code == 0 and "1 passed" in result.output, result.output
    where = shell.run("python3 -c 'import pytest, sys; print(pytest.__file__); print(sys.prefix)'", timeout=30)
    pytest_file, prefix = where.output.split()
    assert pytest_file.startswith("/opt/lancer-env/") and not pytest_file.startswith(sys.prefix)
    assert prefix == str(Path(shell.cwd).parent / "venv")


def test_isolation_none_runs_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sandbox = create_sandbox("local", SandboxSpec(repo_dir=make_repo(tmp_path), isolation="none"))
    try:
        warning = capsys.readouterr().err
        assert "warning: sandbox.isolation is none" in warning and "unisolated" in warning
        result = sandbox.exec(["sh", "-c", "cat hello.txt; which python3"])
        venv_python = str(Path(sandbox.workdir).parent / "venv" / "bin" / "python3")
        assert result.exit_code == 0 and result.stdout.decode().split() == ["hello", "world", venv_python]
    finally:
        sandbox.close()


def test_without_bubblewrap_the_local_sandbox_refuses_in_one_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh"):
        (bin_dir / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip())
    result = run_lancer(
        "run",
        str(EXAMPLES / "invoice-discount"),
        "--model",
        f"scripted:{EXAMPLES / 'invoice-discount' / 'solution.yaml'}",
        "--out",
        str(tmp_path / "run"),
        env={"PATH": str(bin_dir)},
    )
    result_json = json.loads((tmp_path / "run" / "result.json").read_text())
    assert "sandbox_isolation" not in result_json  # no sandbox was made
    detail = result_json["detail"]
    assert "\n" not in detail and "not on PATH" in detail
    assert "apt-get install bubblewrap" in detail and "sandbox.isolation: none" in detail
    assert "apt-get install bubblewrap" in " ".join(result.stderr.split())  # what the user sees


def test_bubblewrap_that_cannot_run_is_refused_with_the_reason(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    env_path = f"{fake.parent}:{os.environ['PATH']}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", env_path)
        with pytest.raises(SandboxError) as refused:
            LocalSandbox(SandboxSpec(repo_dir=make_repo(tmp_path)))
    message = str(refused.value)
    assert "\n" not in message and "No permissions to create new namespace" in message
    assert "apt-get install bubblewrap" in message


def test_with_the_network_allowed_the_hosts_loopback_answers(tmp_path: Path) -> None:
    sandbox = LocalSandbox(SandboxSpec(repo_dir=make_repo(tmp_path), network=True))
    try:
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('reached')"
            result = sandbox.exec(["python3", "-c", probe], timeout=30)
        assert result.stdout == b"reached\n", result.text
    finally:
        sandbox.close()


def test_where_no_cgroup_is_writable_prlimit_caps_memory(tmp_path: Path) -> None:
    spec = SandboxSpec(repo_dir=make_repo(tmp_path), memory="1g")
    sandbox = LocalSandbox(spec, limits_backend="prlimit")
    try:
        assert sandbox.limits.startswith("prlimit (no writable cgroup): memory 1 GiB per process")
        hog = sandbox.exec(["python3", "-c", "x = bytearray(6 * 2**30)"], timeout=60)
        assert hog.exit_code == 1 and b"MemoryError" in hog.stderr
        assert sandbox.exec(["echo", "fine"]).stdout == b"fine\n"
    finally:
        sandbox.close()


def test_killing_lancer_kills_everything_in_its_sandbox(tmp_path: Path) -> None:
    marker = f"sleep {1000 + uuid.uuid4().int % 1000}.5"
    script = (
        "import sys, time; from pathlib import Path; from lancer.core.sandbox import SandboxSpec; "
        "from lancer.sandbox.local import LocalSandbox; from lancer.sandbox.shell import PersistentShell; "
        f"sb = LocalSandbox(SandboxSpec(repo_dir=Path({str(make_repo(tmp_path))!r}))); "
        f"PersistentShell(sb).run('(setsid {marker} &) ; {marker} &', 30); print('ready', flush=True); time.sleep(600)"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent)
    assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 10
    while len(_processes_running(marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_processes_running(marker)) == 2
    child.kill()
    child.wait()
    deadline = time.monotonic() + 10
    while _processes_running(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_running(marker) == []


def _processes_running(command: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip() == command.encode()
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_the_grader_tests_with_the_task_env_its_setup_installed_into(tmp_path: Path) -> None:
    task = tmp_path / "task"
    repo = make_repo(task)
    (repo / "dep" / "lancer_dep").mkdir(parents=True)
    (repo / "dep" / "lancer_dep" / "__init__.py").write_text("ANSWER = 42\n")
    (repo / "dep" / "pyproject.toml").write_text('[project]\nname = "lancer-dep"\nversion = "1.0"\n')
    (task / "tests").mkdir()
    (task / "tests" / "test_env.py").write_text(
        "import sys, pytest, lancer_dep\n\n"
        "def test_env():\n"
        "    assert lancer_dep.ANSWER == 42\n"
        "    assert pytest.__file__.startswith('/opt/lancer-env/')\n"
        "    assert sys.prefix.endswith('/venv') and 'lancer-' in sys.prefix\n"
    )
    (task / "task.yaml").write_text(
        "id: env-probe\nvariant: ic_swe\nprice: 1\ntitle: t\ndescription: d\nsetup: ['pip install -q ./dep']\n"
    )
    (tmp_path / "empty.diff").write_text("")
    result = run_lancer("grade", str(task), str(tmp_path / "empty.diff"))
    assert json.loads(result.stdout)["grade"]["status"] == "passed", result.stdout + result.stderr


def test_a_task_pins_its_python_and_a_missing_one_is_named(tmp_path: Path) -> None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    sandbox = LocalSandbox(SandboxSpec(repo_dir=make_repo(tmp_path / "a"), python=version))
    try:
        probe = sandbox.exec(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        assert probe.stdout.decode().strip() == version
    finally:
        sandbox.close()
    with pytest.raises(SandboxError, match=r"needs Python 3\.99, which is not installed here: install it"):
        LocalSandbox(SandboxSpec(repo_dir=make_repo(tmp_path / "b"), python="3.99"))


def test_a_run_records_the_isolation_and_limits_it_had(tmp_path: Path) -> None:
    task = EXAMPLES / "invoice-discount"
    result = run_lancer("run", str(task), "--model", f"scripted:{task / 'solution.yaml'}", "--out", str(tmp_path))
    recorded = json.loads((tmp_path / "result.json").read_text())
    assert recorded["resolved"] is True, result.stdout + result.stderr
    assert recorded["sandbox_isolation"].startswith("bwrap; ") and "memory 4 GiB" in recorded["sandbox_isolation"]


def test_a_fifo_is_refused_and_the_sandbox_goes_on(local: LocalSandbox) -> None:
    """Opening a named pipe waits for its other end: the sandbox's init must not (it serves
    every request, so all later commands would hang)."""
    assert local.exec(["mkfifo", "pipe"]).exit_code == 0
    pipe, notes = f"{local.workdir}/pipe", f"{local.workdir}/notes.txt"
    for attempt in (lambda: local.read_file(pipe), lambda: local.write_file(pipe, b"x")):
        with pytest.raises(OSError):
            attempt()
    assert local.exec(["echo", "still here"], timeout=10).stdout == b"still here\n"
    local.write_file(notes, b"longer text\n")
    local.write_file(notes, b"short\n")  # replaced whole, as before
    assert local.read_file(notes) == b"short\n"
