"""The docker sandbox itself: the Sandbox protocol over a container that :class:`ContainerSetup` started."""

from __future__ import annotations

import contextlib
import shlex
import shutil
import signal
import tarfile
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import IO, Any

import docker.errors

from lancer.core.errors import SandboxError
from lancer.core.sandbox import ExecResult, SandboxSpec, owned_temp_dir, remove_owned_dir
from lancer.sandbox.docker.boot import ContainerSetup
from lancer.sandbox.docker.engine import api_reason, connect, ensure_image
from lancer.sandbox.docker.lifeline import release
from lancer.sandbox.docker.prune import remove_container
from lancer.sandbox.docker.streams import DockerShell, ExecStream, raw_socket
from lancer.sandbox.shell import KILL_SESSION_SCRIPT

# Prints the exec's pid (= its session id) on stderr, then becomes the command.
_EXEC_WRAPPER = 'printf "%s\\n" "$$" >&2; exec "$@"'
# read_file / write_file run as the sandbox user, so permissions are the same as for the
# agent's own commands (as on the local backend, where they run as the user).
_READ_SCRIPT = '[ -d "$1" ] && { echo "$1: Is a directory" >&2; exit 1; }; exec cat -- "$1"'
_WRITE_SCRIPT = 'd=${1%/*}; [ -z "$d" ] || mkdir -p -- "$d" || exit 1; exec cat > "$1"'

_GONE = "the sandbox container is gone (it died, or `lancer sandbox prune` ran)"
_GRACE_S = 5.0  # for a killed command's stream to end


class DockerSandbox(ContainerSetup):
    """A container holding the working tree at ``workdir`` (with a baseline commit).

    Nothing of the host is mounted, so ``spec.hidden_paths`` need no covering here: only
    the repo is copied in. Raises SandboxError (one line) when the engine, the image or the
    container fails; whatever was made by then is removed.
    """

    def __init__(self, spec: SandboxSpec) -> None:
        self.workdir = spec.workdir
        self._spec = spec
        self._client = connect()
        self._api = self._client.api
        self._id: str | None = None
        self._lifeline: Any = None  # the attach connection whose end ends the container
        self._watcher: IO[bytes] | None = None  # else the process that removes it (lancer.sandbox.docker.lifeline)
        self._shells: list[DockerShell] = []
        self._user = "0:0"
        self._env: dict[str, str] = {}
        self._booted: str | None = None  # the boot script's line, when it made the user
        self._from_env_image = False
        self._spare: Future[ExecStream] | None = None  # a shell opened while the repo was copied
        # The task's setup: "built KEY" or "reused KEY" (its image, lancer.sandbox.docker.envimage).
        self.environment: str | None = None
        # Removed at close, off the start's path; owned, so a resumed eval removes it if lancer
        # died before close (an eval worker killed while the engine restarted: found by the soak).
        self._tmp = owned_temp_dir("lancer-repo-")
        try:
            image = ensure_image(self._client, spec)
            # The host copies the repo and commits its baseline while the container starts.
            with ThreadPoolExecutor(2, thread_name_prefix="lancer-docker-start") as pool:
                tree = pool.submit(self._host_tree, spec.repo_dir) if spec.repo_dir is not None else None
                self._create(image)
                self._prepare(tree, pool)
        except BaseException:
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
        return self._run(argv, user=self._user, timeout=timeout, stdin=stdin, cwd=cwd, env=env)

    def open_shell(self) -> DockerShell:
        spare, self._spare = self._spare, None
        if spare is not None:
            stream = spare.result()
            stream.send(f"cd {shlex.quote(self.workdir)}\n".encode())  # it was opened before the tree was there
        else:
            stream = self._open_bash(self.workdir)
        shell = DockerShell(stream, self._kill_session)
        self._shells.append(shell)
        return shell

    def _open_bash(self, cwd: str) -> ExecStream:
        bash = ["bash", "--noprofile", "--norc"]
        return self._attach(bash, user=self._user, cwd=cwd, env=None, stdin=True, keep_output=False)

    def read_file(self, path: str) -> bytes:
        result = self._run(["sh", "-c", _READ_SCRIPT, "read", path], user=self._user, timeout=120)
        if result.exit_code != 0:
            raise _os_error(result, path)
        return result.stdout

    def write_file(self, path: str, data: bytes) -> None:
        result = self._run(["sh", "-c", _WRITE_SCRIPT, "write", path], user=self._user, timeout=120, stdin=data)
        if result.exit_code != 0:
            raise _os_error(result, path)

    def copy_in(self, host_path: Path, dest: str) -> None:
        target = PurePosixPath(dest)
        uid, gid = (int(x) for x in self._user.split(":"))
        self._root(["mkdir", "-p", "--", str(target.parent)], f"making {target.parent}")
        self._put_tree(Path(host_path), str(target.parent), target.name, uid, gid)

    def copy_out(self, src: str, host_path: Path) -> None:
        try:
            stream, _ = self._api.get_archive(self._cid, src)
        except docker.errors.NotFound:
            raise FileNotFoundError(f"{src} does not exist in the sandbox") from None
        except docker.errors.APIError as e:
            raise SandboxError(f"could not copy {src} out of the sandbox: {api_reason(e)}") from None
        with tempfile.TemporaryFile() as buffer:
            for chunk in stream:
                buffer.write(chunk)
            buffer.seek(0)
            with tarfile.open(fileobj=buffer) as tar:
                members = tar.getmembers()
                top = members[0].name.split("/")[0] if members else ""
                with tempfile.TemporaryDirectory(prefix="lancer-out-") as tmp:
                    tar.extractall(tmp, filter="tar")
                    _copy_host(Path(tmp) / top, Path(host_path))

    def commit(self, tag: str, labels: dict[str, str]) -> None:
        """Keep the container's files as image ``tag`` (a task's setup done, to start from)."""
        repository, _, version = tag.partition(":")
        try:
            self._api.commit(self._cid, repository=repository, tag=version, conf={"Labels": labels})
        except docker.errors.APIError as e:
            raise SandboxError(f"could not keep the sandbox as image {tag}: {api_reason(e)}") from None

    def close(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            with contextlib.suppress(Exception):
                spare.result().close()
        for shell in self._shells:
            shell.close(kill=False)  # removing the container ends every process at once
        self._shells.clear()
        remove_owned_dir(self._tmp)  # its owner file last: a kill meanwhile leaves it to prune (soak)
        if self._id is not None:
            remove_container(self._api, self._id)
            self._id = None
            if self._watcher is not None:
                release(self._watcher)
                self._watcher = None
        if self._lifeline is not None:
            with contextlib.suppress(OSError):
                raw_socket(self._lifeline).close()
            self._lifeline = None
        self._client.close()

    # -- execs ---------------------------------------------------------------------------

    def _attach(
        self,
        argv: Sequence[str],
        *,
        user: str,
        cwd: str | None,
        env: Mapping[str, str] | None,
        stdin: bool,
        keep_output: bool = True,
    ) -> ExecStream:
        if self._id is None:
            raise SandboxError("the sandbox is closed")
        environment = {**self._env, **(env or {})}
        try:
            created = self._api.exec_create(
                self._id,
                ["sh", "-c", _EXEC_WRAPPER, "lancer-exec", *argv],
                stdin=stdin,
                user=user,
                workdir=cwd or self.workdir,
                environment=environment,
            )
            exec_id = str(created["Id"])
            return ExecStream(exec_id, self._api.exec_start(exec_id, socket=True), keep_output)
        except docker.errors.NotFound:
            raise SandboxError(_GONE) from None
        except docker.errors.APIError as e:
            if e.status_code == 409:  # not running: with auto-removal, on its way out
                raise SandboxError(_GONE) from None
            raise SandboxError(f"could not run a command in the sandbox: {api_reason(e)}") from None

    def _run(
        self,
        argv: Sequence[str],
        *,
        user: str,
        timeout: float | None,
        stdin: bytes | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        contain: bool = True,
    ) -> ExecResult:
        """Run ``argv`` to completion; if it cannot even start because the container's
        process table is full, every process in the container is killed and it runs again
        (unless ``contain`` is off)."""
        for attempt in (1, 2):
            stream = self._attach(argv, user=user, cwd=cwd, env=env, stdin=stdin is not None)
            try:
                if stdin is not None:
                    threading.Thread(target=stream.feed, args=(stdin,), daemon=True).start()
                if not stream.wait(timeout):
                    self._kill_session(stream.pid_or_none())
                    stream.wait(_GRACE_S)
                    return ExecResult(-signal.SIGKILL, bytes(stream.stdout), bytes(stream.stderr), timed_out=True)
                code = self._exit_code(stream.exec_id)
                if code == 0 or stream.pid_or_none(0) is not None or not contain or attempt == 2:
                    return ExecResult(code, bytes(stream.stdout), bytes(stream.stderr))
            finally:
                stream.close()
            # Not even the wrapper started: the process table is full (a fork bomb). Empty it.
            self.kill_all_processes()
        raise AssertionError("unreachable")

    def _exit_code(self, exec_id: str) -> int:
        # The stream can end a moment before the engine records the exit code.
        for _ in range(200):
            info = self._api.exec_inspect(exec_id)
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            time.sleep(0.01)
        return -1

    def _kill_session(self, pid: int | None) -> None:
        """SIGKILL the exec's whole session inside the container, as root."""
        if pid is None or self._id is None:
            return
        try:
            argv = ["sh", "-c", KILL_SESSION_SCRIPT, "kill-session", str(pid), "include-leader"]
            stream = self._attach(argv, user="0:0", cwd="/", env=None, stdin=False)
        except SandboxError:
            stream = None
        finished = stream is not None and stream.wait(30) and stream.pid_or_none(0) is not None
        if stream is not None:
            stream.close()
        if not finished:
            # Nothing can start in the container (a fork bomb holds every pid): empty it.
            with contextlib.suppress(SandboxError):
                self.kill_all_processes()

    def kill_all_processes(self) -> None:
        """Kill every process in the container but its init; the files stay.

        Lancer's init does it on SIGUSR1 with ``kill -KILL -1``, which needs no new
        process; repeated while a dying fork bomb still forks. A container running its
        image's own init is restarted instead.
        """
        cid = self._cid
        try:
            if self._spec.image_command:
                self._api.restart(cid, timeout=0)
                return
            for _ in range(5):
                self._api.kill(cid, signal="SIGUSR1")
                probe = self._run(["true"], user="0:0", cwd="/", timeout=30, contain=False)
                if probe.exit_code == 0:
                    return
        except docker.errors.APIError as e:
            if e.status_code in (404, 409):  # gone, or not running: with auto-removal, on its way out
                raise SandboxError(_GONE) from None
            raise SandboxError(f"could not kill the processes in the sandbox: {api_reason(e)}") from None
        raise SandboxError("the sandbox's processes could not be killed: it still cannot start a process")


def _copy_host(src: Path, dest: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest, follow_symlinks=False)


def _os_error(result: ExecResult, path: str) -> OSError:
    message = result.stderr.decode(errors="replace").strip()
    for needle, error in (
        ("Is a directory", IsADirectoryError),
        ("Not a directory", NotADirectoryError),
        ("No such file", FileNotFoundError),
        ("Permission denied", PermissionError),
    ):
        if needle in message:
            return error(f"{path}: {needle}")
    return OSError(f"{path}: {message or f'exit code {result.exit_code}'}")
