"""The local sandbox, the embedded default: a temporary copy of the repo, isolated with bubblewrap.

Every command (the agent's, the task's setup, the app, the grader's tests) runs in one
bubblewrap container per sandbox (lancer.sandbox.bwrap): only the working tree, the task's
Python environment and an empty home are writable and visible from this machine, /tmp
is private, the network is the sandbox's own loopback (unless the task asks for the
network), and the processes live in a PID namespace of their own, under the sandbox's
resource limits (lancer.sandbox.limits). The agent's python3, pip and pytest are an
environment of the sandbox's own (lancer.sandbox.taskenv); for a task with ``setup``
commands, the working tree and environment are a copy of what the setup left, built once
(lancer.sandbox.envcache). Where bubblewrap is missing the sandbox
refuses to start, unless the config says ``sandbox.isolation: none``: then commands run
on the host as the current user (with the limits and the task environment still), and
every sandbox says so on stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from lancer.core.errors import SandboxError
from lancer.core.sandbox import (
    TEMP_PREFIX,
    ExecResult,
    SandboxSpec,
    owned_temp_dir,
    remove_abandoned,
    remove_owned_dir,
)
from lancer.core.tarballs import pack, unpack
from lancer.sandbox.bwrap import Binds, BwrapBox, bwrap_path
from lancer.sandbox.envcache import EnvEntry, cached_env, env_key, spec_key_parts
from lancer.sandbox.git import make_baseline
from lancer.sandbox.limits import AppliedLimits, Backend, LimitSpec
from lancer.sandbox.limits import apply as apply_limits
from lancer.sandbox.limits import prune as prune_limits
from lancer.sandbox.localproc import HostProcess, LocalShell, Process, close_fds, communicate
from lancer.sandbox.taskenv import BaseEnv, base_env, env_variables, find_interpreter, make_task_env

# Where the sandbox sees lancer's cached base environment (read-only).
BASE_ENV_INSIDE = Path("/opt/lancer-env")
# Only these host variables reach the sandbox: secrets such as API keys must not.
_PASSED_ENV = ("LANG", "LC_ALL", "TZ")
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# How often the sandbox's limits are checked for a fork bomb or a killed memory hog.
_WATCH_S = 0.2
# After a timeout's kill, how long output may still drain from the pipes.
_DRAIN_S = 2.0


class LocalSandbox:
    """A temp dir holding the working tree (with a baseline commit), the task's Python
    environment and a private HOME; with ``isolation="bwrap"`` all of it runs in bubblewrap."""

    def __init__(self, spec: SandboxSpec, limits_backend: Backend = "auto") -> None:
        self.isolation = spec.isolation
        if self.isolation == "bwrap":
            bwrap_path()  # refuse before any work, in one line saying how to install it
        # Apps in an unisolated sandbox listen on the host itself; otherwise a relay reaches them.
        self.on_host = self.isolation == "none"
        self._root = owned_temp_dir()
        self._shells: list[LocalShell] = []
        self._box: BwrapBox | None = None
        self._limits: AppliedLimits | None = None
        self._stop_watch = threading.Event()
        self._oom_lock, self._oom_reported = threading.Lock(), 0
        # What the task's setup cost this sandbox: "built KEY" (ran it) or "reused KEY" (copied).
        self.environment: str | None = None
        try:
            self.workdir = str(self._root / "repo")
            home, venv = self._root / "home", self._root / "venv"
            home.mkdir()
            base = base_env(find_interpreter(spec.python))
            base_seen_at = BASE_ENV_INSIDE if self.isolation == "bwrap" else base.root
            # The working tree is the task's own unless the cache holds the one the setup left.
            own_tree = not spec.setup or spec.env_venv_only
            if own_tree:
                if spec.repo_dir is not None:
                    shutil.copytree(spec.repo_dir, self.workdir, symlinks=True)
                else:  # a task with no code of its own (a manager task from the dataset)
                    os.mkdir(self.workdir)
            if spec.setup:  # the environment (and working tree) the setup leaves, from the cache
                entry = task_env(spec, base)
                entry.copy_to(self._root)
                self.environment = f"{'reused' if entry.reused else 'built'} {entry.key}"
            else:
                make_task_env(venv, base, base_seen_at)
            self._env = _environment(venv, home, base_seen_at, spec)
            self._limits = apply_limits(
                self._root.name, LimitSpec(_bytes(spec.memory), spec.cpus, spec.pids_limit), limits_backend
            )
            self.limits = self._limits.describe()
            # What result.json records: e.g. "bwrap; cgroup v1: processes 1024, memory 4 GiB, cpu 2".
            self.summary = f"{self.isolation}; {self.limits}"
            if not self.limits.startswith("cgroup"):
                _say_once(f"lancer: note: the local sandbox's limits here: {self.limits}")
            if self.isolation == "bwrap":
                self._box = _start_box(base, [Path(self.workdir), venv, home], spec.network, self._root, self._limits)
            if own_tree:  # a cached working tree has its baseline (and setup commit) already
                make_baseline(Path(self.workdir))  # while the box starts
            if self._box is not None:
                self._box.wait_ready()
                threading.Thread(target=self._watch, daemon=True, name="sandbox-limits").start()
            else:
                print(
                    "lancer: warning: sandbox.isolation is none: the agent's commands run on this machine "
                    "unisolated (they can read and change your files, and reach the network)",
                    file=sys.stderr,
                )
        except BaseException:  # also Ctrl-C or an eval worker's SIGTERM mid-copy: no temp tree left
            self._stop_processes()
            remove_owned_dir(self._root)  # now: the process may be ending; its owner file last
            raise

    # --- processes ----------------------------------------------------------------------
    def _spawn(self, argv: Sequence[str], cwd: str, env: Mapping[str, str], fds: Sequence[int]) -> Process:
        if self._box is not None:
            return self._box.spawn(argv, cwd, dict(env), fds)
        assert self._limits is not None
        popen = subprocess.Popen(
            self._limits.wrap(list(argv)),
            cwd=cwd,
            env=dict(env),
            stdin=fds[0],
            stdout=fds[1],
            stderr=fds[2],
            start_new_session=True,  # its own session, so a timeout can kill all it started
        )
        return HostProcess(popen)

    def exec(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        in_r, in_w = os.pipe() if stdin is not None else (os.open(os.devnull, os.O_RDONLY), -1)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            process = self._spawn(argv, cwd or self.workdir, {**self._env, **(env or {})}, [in_r, out_w, err_w])
        except BaseException:
            close_fds(in_w, out_r, err_r)
            raise
        finally:
            close_fds(in_r, out_w, err_w)
        try:
            if process.error:
                close_fds(in_w)
                return ExecResult(126, b"", process.error.encode())
            deadline = None if timeout is None else time.monotonic() + timeout
            out, err, drained = communicate(in_w, stdin or b"", out_r, err_r, deadline)
            code = process.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if drained and code is not None:
                return ExecResult(code, out, err)
            process.kill()
            more_out, more_err, _ = communicate(-1, b"", out_r, err_r, time.monotonic() + _DRAIN_S)
            process.wait(_DRAIN_S)
            return ExecResult(-signal.SIGKILL, out + more_out, err + more_err, timed_out=True)
        except BaseException:  # Ctrl-C, an eval worker's SIGTERM: the command must not run on without lancer
            process.kill()
            raise
        finally:
            process.close()
            close_fds(out_r, err_r)

    def open_shell(self) -> LocalShell:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            process = self._spawn(["bash", "--noprofile", "--norc"], self.workdir, self._env, [in_r, out_w, out_w])
        except BaseException:
            os.close(in_w)
            os.close(out_r)
            raise
        finally:
            os.close(in_r)
            os.close(out_w)
        shell = LocalShell(process, in_w, out_r)
        self._shells = [*(s for s in self._shells if not s.closed), shell]
        return shell

    def _watch(self) -> None:
        """Fork bombs and memory hogs hurt only their own shell, and the model hears of it."""
        # Held here: close() clears the attributes while this thread may be mid-loop.
        limits, box = self._limits, self._box
        assert limits is not None and box is not None
        pids_hits, oom_kills = limits.pids_hits(), limits.oom_kills()
        while not self._stop_watch.wait(_WATCH_S):
            hits, kills = limits.pids_hits(), limits.oom_kills()
            if hits > pids_hits:
                with contextlib.suppress(SandboxError, OSError):
                    biggest = box.biggest_session()
                    if biggest is not None:
                        # Told first: the shell's output ends with the kill.
                        self._tell(
                            biggest[0],
                            f"lancer: the sandbox reached its process limit ({self.limits}); "
                            f"the {biggest[1]} processes of this shell's session were killed",
                        )
                        box.kill_session(biggest[0])
                hits = limits.pids_hits()
            if kills > oom_kills and (note := self.memory_kill_note()):
                self._tell(None, note)
            pids_hits, oom_kills = hits, kills

    def kill_all_processes(self) -> None:
        """Kill every process in the sandbox (ProcessReset); the files stay. Unisolated, only
        the sessions of its shells (and what they started) can be told apart from the host's."""
        if self._box is not None:
            self._box.kill_all()
            return
        for shell in self._shells:
            shell.process.kill()

    def memory_kill_note(self) -> str | None:
        """Said once per kill, by the watcher or by the shell whose command just died of it."""
        with self._oom_lock:
            kills = self._limits.oom_kills() if self._limits is not None else 0
            if kills <= self._oom_reported:
                return None
            self._oom_reported = kills
        return f"lancer: a process reached the sandbox's memory limit ({self.limits}) and was killed"

    def _tell(self, sid: int | None, text: str) -> None:
        for shell in list(self._shells):
            if sid is None or getattr(shell.process, "pid", None) == sid:
                shell.note(text)

    # --- files ---------------------------------------------------------------------------
    def _open(self, path: str, write: bool) -> int:
        if self._box is not None:  # resolved inside: a symlink there cannot lead out
            return self._box.open(path, write)
        if write:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        if Path(path).is_dir():
            raise IsADirectoryError(21, "Is a directory", path)
        return os.open(path, os.O_RDONLY)

    def read_file(self, path: str) -> bytes:
        with open(self._open(path, write=False), "rb") as f:
            return f.read()

    def write_file(self, path: str, data: bytes) -> None:
        with open(self._open(path, write=True), "wb") as f:
            f.write(data)

    def copy_in(self, host_path: Path, dest: str) -> None:
        if not host_path.is_dir():
            self.write_file(dest, host_path.read_bytes())
            return
        # -m: the files get the time of the copy, not the packed tar's (none)
        script = 'mkdir -p "$1" && tar -x -m --no-same-owner -C "$1"'
        result = self.exec(["sh", "-c", script, "copy-in", dest], stdin=pack(host_path), timeout=600)
        if result.exit_code != 0:
            raise SandboxError(f"could not copy {host_path} into the sandbox: {result.text.strip()[-300:]}")

    def copy_out(self, src: str, host_path: Path) -> None:
        try:
            data = self.read_file(src)
        except IsADirectoryError:
            result = self.exec(["tar", "-c", "-C", src, "."], timeout=600)
            if result.exit_code != 0:
                raise SandboxError(f"could not copy {src} out of the sandbox: {result.text.strip()[-300:]}") from None
            unpack(result.stdout, host_path)
            return
        host_path.parent.mkdir(parents=True, exist_ok=True)
        host_path.write_bytes(data)

    def take_files(self, dest: Path, parts: tuple[str, ...] = ("repo", "venv")) -> str:
        """Stop every process and move ``parts`` (the working tree and environment) to ``dest``
        (a task environment being cached); the folder they were in, as the files name it."""
        self._stop_processes()
        for part in parts:
            shutil.move(self._root / part, dest / part)
        return str(self._root)

    def close(self) -> None:
        self._stop_processes()
        # Nothing runs in it any more, and no one waits on thousands of files going: a thread
        # removes them. Not a daemon, so the process waits for it before it exits; a folder a
        # killed process left, even half removed, is owned (its owner file goes last), and the
        # next run prunes it.
        threading.Thread(target=remove_owned_dir, args=(self._root,), name="sandbox-remove").start()

    def _stop_processes(self) -> None:
        self._stop_watch.set()
        for shell in self._shells:
            shell.close()
        self._shells.clear()
        if self._box is not None:
            self._box.close()
            self._box = None
        if self._limits is not None:
            self._limits.close()
            self._limits = None


def _environment(venv: Path, home: Path, base_seen_at: Path, spec: SandboxSpec) -> dict[str, str]:
    """Every command's environment: the task's Python first on PATH, no secrets of the host."""
    host_path = os.environ.get("PATH", _SYSTEM_PATH) if spec.isolation == "none" else _SYSTEM_PATH
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.update(
        PATH=f"{venv / 'bin'}:{host_path}",
        HOME=str(home),
        TERM="dumb",
        PAGER="cat",
        GIT_PAGER="cat",
        PYTHONDONTWRITEBYTECODE="1",
        **env_variables(venv, base_seen_at, spec.network),
    )
    return {**env, **spec.env}


def task_env(spec: SandboxSpec, base: BaseEnv | None = None) -> EnvEntry:
    """The cached working tree and environment ``spec.setup`` leaves, built now if not yet
    (an eval builds each task's before its attempts start). Raises SetupError if a setup
    command fails, SandboxError if the sandbox to run it in cannot start."""
    base = base or base_env(find_interpreter(spec.python))
    return cached_env(_env_key(spec, base), functools.partial(_build_env, spec))


def _env_key(spec: SandboxSpec, base: BaseEnv) -> str:
    """What a local task environment is made from (lancer.sandbox.envcache)."""
    return env_key([f"local {spec.isolation} {base.root.name} {base.interpreter.path}", *spec_key_parts(spec)])


def _build_env(spec: SandboxSpec, staging: Path) -> str:
    """Run the task's setup in a fresh sandbox and move what it left into ``staging``."""
    from lancer.sandbox import run_setup

    # With setup_network the setup alone has the network (pip reaching the index); the
    # sandboxes made from this environment have the spec's own.
    network = spec.network or spec.setup_network
    sandbox = LocalSandbox(dataclasses.replace(spec, setup=[], network=network, setup_network=False))
    try:
        run_setup(sandbox, spec.setup, spec.setup_timeout_s)
        return sandbox.take_files(staging, ("venv",) if spec.env_venv_only else ("repo", "venv"))
    finally:
        sandbox.close()


def _start_box(base: BaseEnv, writable: list[Path], network: bool, root: Path, limits: AppliedLimits) -> BwrapBox:
    readonly = {str(BASE_ENV_INSIDE): base.root}
    if not base.interpreter.prefix.is_relative_to("/usr"):  # e.g. a pyenv or uv-managed Python
        readonly[str(base.interpreter.prefix)] = base.interpreter.prefix
    binds = Binds(writable, readonly, workdir=str(writable[0]), network=network)
    return BwrapBox(binds, str(base.interpreter.path), root, limits.wrap([]))


@functools.cache
def _say_once(message: str) -> None:
    print(message, file=sys.stderr)


def _bytes(size: str) -> int:
    """Docker's notation (512m, 4g, 1.5G, 1024) in bytes."""
    units = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30}
    last = size[-1].lower()
    return int(float(size[:-1]) * units[last]) if last in units else int(float(size))


def prune(everything: bool = False) -> int:
    """Remove lancer's temp folders (local sandboxes, browser files) whose process has
    ended (or all, with ``everything``)."""
    removed = remove_abandoned(TEMP_PREFIX, everything)
    prune_limits(TEMP_PREFIX)
    return removed
