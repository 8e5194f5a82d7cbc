"""The local sandbox, the embedded default: a temporary copy of the repo on this machine.

Commands run as the current user with a scrubbed environment (no API keys). The agent's
shell runs in a private mount namespace where the task folder (hidden tests, answers) is
covered by an empty mount, so not even ``find /`` reaches it. Where namespaces are not
allowed, lancer says so once and runs without that cover: use ``--sandbox docker`` there.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

from sandbox.base import ExecResult, OutputChunks, SandboxSpec, pid_alive
from sandbox.git import make_baseline
from sandbox.shell import KILL_SESSION_SCRIPT

_PREFIX = "lancer-"
OWNER_FILE = "lancer.pid"
# Only these host variables reach the sandbox: secrets such as API keys must not.
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


class LocalShell:
    """A bash process fed through a pipe; a reader thread queues its output."""

    def __init__(self, argv: list[str], cwd: str, env: dict[str, str]) -> None:
        self._proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session, so a timeout can kill all it started
        )
        self._chunks = OutputChunks()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        stdout = self._proc.stdout
        assert isinstance(stdout, io.BufferedReader)
        # read1 returns what is there now instead of waiting for a full buffer.
        while chunk := stdout.read1(65536):
            self._chunks.put(chunk)
        self._chunks.put(None)

    def send(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(data)
        self._proc.stdin.flush()

    def recv(self, timeout: float) -> bytes | None:
        return self._chunks.get(timeout)

    def close(self) -> None:
        self._chunks.discard()
        if self._proc.poll() is None:
            _kill_session(self._proc.pid)
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()
        self._proc.wait()


class LocalSandbox:
    """A temp dir holding the working tree (with a baseline commit) and a private HOME."""

    def __init__(self, spec: SandboxSpec) -> None:
        self._hidden = [p.resolve() for p in spec.hidden_paths]
        self._shells: list[LocalShell] = []
        self._root = Path(tempfile.mkdtemp(prefix=_PREFIX))
        try:
            self.workdir = str(self._root / "repo")
            if spec.repo_dir is not None:
                shutil.copytree(spec.repo_dir, self.workdir, symlinks=True)
            else:  # a task with no code of its own (a manager task from the dataset)
                os.mkdir(self.workdir)
            (self._root / "home").mkdir()
            # Lets `lancer sandbox prune` tell a sandbox whose lancer died (kill -9) from a live one.
            (self._root / OWNER_FILE).write_text(str(os.getpid()))
            self._env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
            # The Python lancer runs with comes first, so `python3 -m pytest` finds pytest.
            self._env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), self._env.get("PATH", os.defpath)])
            self._env.update(
                HOME=str(self._root / "home"), TERM="dumb", PAGER="cat", GIT_PAGER="cat", PYTHONDONTWRITEBYTECODE="1"
            )
            self._env.update(spec.env)
            make_baseline(Path(self.workdir))
        except BaseException:  # also Ctrl-C or an eval worker's SIGTERM mid-copy: no temp tree left
            self.close()
            raise

    def exec(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd or self.workdir,
            env={**self._env, **(env or {})},
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_session(proc.pid)
            out, err = proc.communicate()
            return ExecResult(-signal.SIGKILL, out, err, timed_out=True)
        except BaseException:  # Ctrl-C, an eval worker's SIGTERM: the command must not run on without lancer
            _kill_session(proc.pid)
            proc.wait()
            raise
        return ExecResult(proc.returncode, out, err)

    def open_shell(self) -> LocalShell:
        bash = "exec bash --noprofile --norc"
        argv = ["bash", "-c", bash]
        if self._hidden:
            if _namespaces_work():
                covers = " && ".join(_cover_command(p) for p in self._hidden)
                argv = [*_unshare_argv(), "sh", "-c", f"{covers} && cd {shlex.quote(self.workdir)} && {bash}"]
            else:
                _warn_once()
        shell = LocalShell(argv, self.workdir, self._env)
        self._shells.append(shell)
        return shell

    def read_file(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def write_file(self, path: str, data: bytes) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)

    def copy_in(self, host_path: Path, dest: str) -> None:
        _copy(host_path, Path(dest))

    def copy_out(self, src: str, host_path: Path) -> None:
        _copy(Path(src), host_path)

    def close(self) -> None:
        for shell in self._shells:
            shell.close()
        self._shells.clear()
        shutil.rmtree(self._root, ignore_errors=True)


def prune(everything: bool = False) -> int:
    """Remove local sandboxes whose lancer process has ended (or all, with ``everything``)."""
    removed = 0
    for root in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        owner = root / OWNER_FILE
        if owner.is_file() and (everything or not pid_alive(owner.read_text().strip())):
            shutil.rmtree(root, ignore_errors=True)
            removed += 1
    return removed


def _copy(src: Path, dest: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)


def _kill_session(sid: int) -> None:
    """SIGKILL a process and every process in its session (what it started, however deep)."""
    subprocess.run(["sh", "-c", KILL_SESSION_SCRIPT, "kill-session", str(sid), "include-leader"], check=False)


def _unshare_argv() -> list[str]:
    as_root = os.geteuid() == 0
    return ["unshare", "--mount", "--propagation", "private", *([] if as_root else ["--map-root-user"]), "--"]


def _cover_command(path: Path) -> str:
    quoted = shlex.quote(str(path))
    if path.is_dir():
        return f"mount -t tmpfs -o ro,size=4k lancer-hidden {quoted}"
    return f"mount --bind /dev/null {quoted}"


@cache
def _namespaces_work() -> bool:
    try:
        probe = subprocess.run([*_unshare_argv(), "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@cache
def _warn_once() -> None:
    print(
        "lancer: warning: this machine does not allow mount namespaces, so the local sandbox "
        "cannot hide the task's hidden tests from the agent; use --sandbox docker",
        file=sys.stderr,
    )
