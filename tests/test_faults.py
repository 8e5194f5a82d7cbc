"""Faults inside the sandbox are contained and the run goes on: a fork bomb, a flood of output."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from lancer.sandbox import Sandbox
from lancer.tools.bash import BashArgs, BashTool
from tests.conftest import ROOT, make_repo

# Prints the process limit of the shell's pids cgroup (v1, or v2 at either usual mount), if any.
_PIDS_LIMIT = r"""
for path in "pids$(sed -n 's/^[0-9]*:pids://p' /proc/self/cgroup)" pids \
    "$(sed -n 's/^0:://p' /proc/self/cgroup)" "unified$(sed -n 's/^0:://p' /proc/self/cgroup)"; do
  cat "/sys/fs/cgroup/$path/pids.max" 2>/dev/null
done
"""


def test_a_backgrounded_fork_bomb_is_contained_and_the_next_command_works(sandbox: Sandbox) -> None:
    tool = BashTool(sandbox, default_timeout=60, max_timeout=60, max_output_chars=2000)
    try:
        # Without a process limit the bomb would fill the whole machine: never set it off then.
        # The local sandbox says what it applied (its cgroups are not visible inside bubblewrap);
        # a container shows its own pids cgroup.
        described = getattr(sandbox, "limits", None)
        shown = described.replace(",", " ") if described else tool.run(BashArgs(command=_PIDS_LIMIT)).output
        limits = shown.split()
        assert any(limit.isdigit() for limit in limits), f"the sandbox has no process limit: {limits}"
        assert described is None or "processes" in described, described
        # The bomb's processes carry a tag in their environment, so they can be counted.
        tag = f"LANCER_BOMB={uuid.uuid4().hex}"
        tool.run(BashArgs(command=f"{tag} bash -c 'bomb() {{ bomb | bomb & }}; bomb'"))
        time.sleep(2)  # the model thinks; the bomb fills the process table
        outputs = [tool.run(BashArgs(command="ls; echo listed")).output for _ in range(2)]
        # The first call may be the one that finds the table full: the model is told why.
        assert outputs[-1].split() == ["hello.txt", "src", "listed"], outputs
        if "listed" not in outputs[0]:
            assert "could start no more processes" in outputs[0] and "new shell was started" in outputs[0]
        left = tool.run(BashArgs(command=f"grep -ls {tag} /proc/[0-9]*/environ | wc -l")).output.strip()
        assert left == "0", left  # the bomb is gone, not merely stopped
    finally:
        tool.close()


def test_a_fork_bomb_in_the_shell_itself_is_contained_again_and_again(sandbox: Sandbox) -> None:
    """The bomb as a model types it: the shell's own functions fork, so the shell itself
    can die with them, and starting the next one races the dying bomb (the soak lost 2 of
    20 such runs to "the sandbox shell did not start" before every process was killed at once)."""
    tool = BashTool(sandbox, default_timeout=60, max_timeout=60, max_output_chars=2000)
    try:
        for _ in range(5):
            tool.run(BashArgs(command="bomb() { bomb | bomb & }; bomb"))
            time.sleep(1)
            outputs = [tool.run(BashArgs(command="ls; echo listed")).output for _ in range(2)]
            assert outputs[-1].split() == ["hello.txt", "src", "listed"], outputs
    finally:
        tool.close()


# Runs in a child process, so its peak memory is the sandbox and tool's alone: VmHWM, the peak
# of this process's own memory (ru_maxrss would carry over the forking pytest's peak across exec).
_FLOOD = """
import json, re, sys
from pathlib import Path
from lancer.sandbox import SandboxSpec, create_sandbox
from lancer.tools.bash import BashArgs, BashTool

sandbox = create_sandbox(sys.argv[1], SandboxSpec(repo_dir=Path(sys.argv[2]), label="pytest-flood"))
tool = BashTool(sandbox, default_timeout=300, max_timeout=300, max_output_chars=10_000)
try:
    command = "head -c 1000000000 /dev/zero | tr '\\\\0' a; echo; echo the-end"
    output = tool.run(BashArgs(command=command)).output
    after = tool.run(BashArgs(command="echo still-here")).output
finally:
    tool.close()
    sandbox.close()
peak_mb = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024
print(json.dumps({"peak_mb": peak_mb, "output": output, "after": after}))
"""


def test_a_gigabyte_of_output_keeps_lancers_memory_bounded(sandbox_kind: str, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    child = subprocess.run(
        [sys.executable, "-c", _FLOOD, sandbox_kind, str(repo)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    report = json.loads(child.stdout.splitlines()[-1])
    assert report["peak_mb"] < 200, report["peak_mb"]
    assert report["output"].startswith("aaaa") and "the-end" in report["output"]
    assert "bytes of output were dropped from the middle" in report["output"]
    assert len(report["output"]) < 12_000
    assert report["after"].strip() == "still-here"
