"""SWE-Lancer's container steps, on a small image built here that mimics theirs: the repo
at /app/expensify with a history that holds the fix and ``*.orig`` leftovers, the hidden
tests in /app/tests, and an entrypoint that sets up (with network) and then writes
/setup_done.txt. Their real images cannot be pulled here; docs/docker.md says how to use them."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from lancer.core.errors import LancerError, SandboxError
from lancer.core.tasks import load_task
from lancer.sandbox import create_sandbox
from lancer.sandbox.docker import MANAGED_LABEL, base_image, connect
from tests.conftest import ROOT, lancer_argv, run_lancer

pytestmark = pytest.mark.docker

BROKEN = "export function total(a, b) {\n    return a - b;\n}\n"
FIXED = "export function total(a, b) {\n    return a + b;\n}\n"
RUN_SH = """#!/bin/bash
set -e
[ -z "$FAIL_SETUP" ] || { echo "their setup broke" >&2; exit 1; }
ls /sys/class/net > /app/setup_network.txt
sleep 2
echo done > /setup_done.txt
tail -f /dev/null
"""
HIDDEN_TEST = """import os, pathlib

def test_total_adds():
    source = pathlib.Path("/app/expensify/src/total.js").read_text()
    assert "a + b" in source and os.environ["ISSUE_ID"] == "4242_1"
"""
DOCKERFILE = f"""FROM {base_image()}
COPY expensify /app/expensify
COPY tests /app/tests
RUN cd /app/expensify && git init -q && git add -A \\
 && git -c user.name=dev -c user.email=dev@example.com commit -qm "the fix: total adds" \\
 && printf 'export function total(a, b) {{\\n    return a - b;\\n}}\\n' > src/total.js \\
 && cp src/total.js src/total.js.rej && printf '{FIXED.encode("unicode_escape").decode()}' > src/total.js.orig
ENTRYPOINT ["/bin/bash", "-l", "-c"]
CMD ["/app/tests/run.sh"]
"""


@pytest.fixture(scope="module")
def fake_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        client = connect()
    except LancerError as e:
        pytest.fail(f"these tests need a Docker engine: {e}")
    context = tmp_path_factory.mktemp("swelancer-image")
    (context / "expensify" / "src").mkdir(parents=True)
    (context / "expensify" / "src" / "total.js").write_text(FIXED)
    (context / "tests" / "issues" / "4242_1").mkdir(parents=True)
    (context / "tests" / "issues" / "4242_1" / "test.py").write_text(HIDDEN_TEST)
    (context / "tests" / "run.sh").write_text(RUN_SH)
    (context / "tests" / "run.sh").chmod(0o755)
    (context / "Dockerfile").write_text(DOCKERFILE)
    tag = f"lancer-test-swelancer:{uuid.uuid4().hex[:8]}"
    client.images.build(path=str(context), tag=tag, labels={MANAGED_LABEL: "test"}, rm=True, forcerm=True)
    try:
        yield tag
    finally:
        client.images.remove(tag, force=True)
        client.close()


def task_folder(tmp_path: Path, image: str, **env: str) -> Path:
    folder = tmp_path / f"task-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    spec: dict[str, Any] = {
        "id": f"pytest-swelancer-{uuid.uuid4().hex[:8]}",
        "variant": "ic_swe",
        "price": 500,
        "title": "Totals subtract",
        "description": "total(2, 3) gives -1; it should give 5.",
        "image": image,
        "env": {"ISSUE_ID": "4242_1", **env},
        "container": {
            "workdir": "/app/expensify",
            "user": "root",
            "image_command": True,
            "ready_file": "/setup_done.txt",
            "ready_timeout_s": 60,
            "setup_network": True,
            "prepare": ["find /app/expensify -xdev -type f -name '*.orig' -delete"],
            "hide": ["/app/tests"],
        },
        "test_command": "cd /app/tests && python3 -m pytest -q -p no:cacheprovider issues/$ISSUE_ID/test.py",
    }
    (folder / "task.yaml").write_text(yaml.safe_dump(spec))
    return folder


def test_the_agent_gets_their_repo_with_a_fresh_baseline_no_tests_and_no_internet(
    fake_image: str, tmp_path: Path
) -> None:
    task = load_task(task_folder(tmp_path, fake_image))
    sb = create_sandbox("docker", task.sandbox_spec(for_agent=True))
    try:

        def sh(command: str) -> str:
            return sb.exec(["bash", "-c", command]).text

        assert sb.workdir == "/app/expensify"
        assert sh("cat /setup_done.txt").strip() == "done"  # waited for their setup
        assert "eth0" in sh("cat /app/setup_network.txt")  # which had the network ...
        assert sh("tail -n +3 /proc/net/dev | cut -d: -f1").split() == ["lo"]  # ... now cut
        assert sh("ls /app; find / -path /proc -prune -o -name '4242_1*' -print 2>/dev/null").split() == [
            "expensify",
            "setup_network.txt",
        ]
        assert sh("git log --format=%s").strip() == "lancer baseline"  # the history with the fix is gone
        assert sh("git status --porcelain; ls src").split() == ["total.js", "total.js.rej"]  # *.orig deleted
        assert sh("id -u").strip() == "0"
        assert BROKEN in sh("cat src/total.js")
    finally:
        sb.close()


def test_a_run_on_their_image_is_graded_with_the_tests_the_image_holds(fake_image: str, tmp_path: Path) -> None:
    folder = task_folder(tmp_path, fake_image)
    fix = {"command": "str_replace", "path": "src/total.js", "old_str": "a - b", "new_str": "a + b"}
    turns = {
        "turns": [
            {"tool_calls": [{"name": "editor", "arguments": fix}]},
            {"tool_calls": [{"name": "submit", "arguments": {}}]},
        ]
    }
    (tmp_path / "turns.yaml").write_text(yaml.safe_dump(turns))
    out = tmp_path / "run"
    proc = run_lancer(
        "run", str(folder), "--model", f"scripted:{tmp_path / 'turns.yaml'}", "--sandbox", "docker", "--out", str(out),
    )  # fmt: skip
    result = json.loads((out / "result.json").read_text())
    assert (result["resolved"], result["earned"]) == (True, 500.0), (proc.stderr, result)
    patch = (out / "patch.diff").read_text()
    assert patch.count("diff --git") == 1 and "+    return a + b;" in patch  # nothing of their setup
    wrong = tmp_path / "wrong.diff"
    wrong.write_text("")
    graded = run_lancer("grade", str(folder), str(wrong), "--sandbox", "docker")
    assert json.loads(graded.stdout)["grade"]["status"] == "failed", graded.stderr
    client = docker.from_env()
    assert client.api.containers(all=True, filters={"label": f"lancer.task={load_task(folder).id}"}) == []


def test_their_setup_failing_is_one_clear_line_and_leaves_nothing(fake_image: str, tmp_path: Path) -> None:
    task = load_task(task_folder(tmp_path, fake_image, FAIL_SETUP="1"))
    with pytest.raises(SandboxError, match=r"setup exited 1 before writing /setup_done\.txt") as info:
        create_sandbox("docker", task.sandbox_spec(for_agent=True))
    assert "their setup broke" in str(info.value) and "\n" not in str(info.value)
    client = docker.from_env()
    assert client.api.containers(all=True, filters={"label": f"lancer.task={task.id}"}) == []


def test_kill_9_of_lancer_mid_run_leaves_no_container_of_their_image(fake_image: str, tmp_path: Path) -> None:
    # Their image runs its own command, so no init loop of lancer's ends the container with
    # lancer: the watcher lancer starts for it (lancer.sandbox.docker.lifeline) removes it.
    folder = task_folder(tmp_path, fake_image)
    task = load_task(folder)
    turns = {"turns": [{"tool_calls": [{"name": "bash", "arguments": {"command": "touch /tmp/in-bash; sleep 300"}}]}]}
    (tmp_path / "turns.yaml").write_text(yaml.safe_dump(turns))
    argv = lancer_argv("run", str(folder), "--model", f"scripted:{tmp_path / 'turns.yaml'}", "--sandbox", "docker")
    proc = subprocess.Popen([*argv, "--out", str(tmp_path / "run")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    client = docker.from_env()
    where = {"label": f"lancer.task={task.id}"}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        running = client.api.containers(filters=where)
        in_bash = ["docker", "exec", running[0]["Id"], "test", "-e", "/tmp/in-bash"] if running else ["false"]
        if subprocess.run(in_bash).returncode == 0:
            break
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.5)
    else:
        proc.kill()
        raise AssertionError("the agent's command never started")
    proc.kill()  # SIGKILL: no close runs
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while (left := client.api.containers(all=True, filters=where)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == []
