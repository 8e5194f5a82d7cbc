"""The docker sandbox: the task's repo in a container of its own, through the docker SDK.

The container's PID 1 is Docker's tini with a tiny ``sh`` loop under it that reads the
container's stdin, which lancer holds open through an attach connection. When the lancer
process ends in any way (even SIGKILL) the connection closes, the loop reads end of file
and exits, and Docker removes the container (``auto_remove``): nothing is left behind.
The same loop turns SIGUSR1 into ``kill -KILL -1``, the reset used when a fork bomb has
used up the process limit so that nothing else can start in the container.

Every ``docker exec`` is started through a one-line ``sh`` wrapper that prints its pid
(which is also its session id: Docker makes every exec a session leader) before it
``exec``s the command, so a command past its timeout is killed with its whole session
inside the container, the way the local backend kills it on the host.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import signal
import socket
import struct
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import docker.errors
import requests

from agent.errors import SandboxError
from sandbox.base import ExecResult, OutputChunks, SandboxSpec, owned_temp_dir, pid_alive
from sandbox.git import make_baseline
from sandbox.shell import KILL_SESSION_SCRIPT

# Every container lancer makes carries this label (value "1"); images it builds carry it
# with the value "built" (and the base image from scripts/docker-up.sh "base").
MANAGED_LABEL = "lancer.managed"
DEFAULT_BASE_IMAGE = "lancer-base:bookworm"
SANDBOX_USER = "lancer"

# PID 1's child (under tini). EOF on stdin: lancer is gone, so the container should be too.
# SIGUSR1 interrupts ``read`` (status > 0 but no EOF), hence the flag.
_INIT_SCRIPT = "trap 'r=1; kill -KILL -1 2>/dev/null' USR1; while :; do r=; read -r _ || [ -n \"$r\" ] || exit 0; done"
# Prints the exec's pid (= its session id) on stderr, then becomes the command.
_EXEC_WRAPPER = 'printf "%s\\n" "$$" >&2; exec "$@"'
# Run once as root at start: find or make the sandbox user; prints "uid gid home".
_MAKE_USER_SCRIPT = r"""
set -e
name=$1
uid=; gid=; home=
while IFS=: read -r n _ u g _ h _; do
  [ "$n" = "$name" ] && uid=$u && gid=$g && home=$h
done < /etc/passwd
if [ -z "$uid" ]; then
  used=" "
  while IFS=: read -r _ _ u _; do used="$used$u "; done < /etc/passwd
  while IFS=: read -r _ _ g _; do used="$used$g "; done < /etc/group
  uid=1000
  while :; do case "$used" in *" $uid "*) uid=$((uid + 1)) ;; *) break ;; esac; done
  gid=$uid; home=/home/$name
  printf '%s:x:%s:%s:lancer sandbox:%s:/bin/sh\n' "$name" "$uid" "$gid" "$home" >> /etc/passwd
  printf '%s:x:%s:\n' "$name" "$gid" >> /etc/group
fi
mkdir -p "$home"
chown "$uid:$gid" "$home"
echo "$uid $gid $home"
"""
# PID 1's child for lancer's own images and the default user: makes the sandbox user ($1)
# and empties the working tree's place ($2, if given) before the idle loop, so a new
# container is ready without a single exec. Its one line of output says how it went.
_BOOT_SCRIPT = f"""
info=$( ( {_MAKE_USER_SCRIPT} ) 2>&1 ) || info="failed $info"
if [ -n "$2" ]; then rm -rf -- "$2" && mkdir -p -- "${{2%/*}}/" || info="failed to make room for $2"; fi
printf 'lancer-ready %s\\n' "$(echo $info)"
{_INIT_SCRIPT}
"""
_READY_PREFIX = b"lancer-ready "
# Prints "uid gid home" of the user named (or numbered) $1 in /etc/passwd.
_FIND_USER_SCRIPT = r"""
while IFS=: read -r n _ u g _ h _; do
  if [ "$n" = "$1" ] || [ "$u" = "$1" ]; then echo "$u $g $h"; exit 0; fi
done < /etc/passwd
exit 1
"""
# read_file / write_file run as the sandbox user, so permissions are the same as for the
# agent's own commands (as on the local backend, where they run as the user).
_READ_SCRIPT = '[ -d "$1" ] && { echo "$1: Is a directory" >&2; exit 1; }; exec cat -- "$1"'
_WRITE_SCRIPT = 'd=${1%/*}; [ -z "$d" ] || mkdir -p -- "$d" || exit 1; exec cat > "$1"'

_GONE = "the sandbox container is gone (it died, or `lancer sandbox prune` ran)"
_GRACE_S = 5.0  # for a killed command's stream to end
_API_TIMEOUT_S = 120  # one Docker API call (not a command: those stream without a timeout)


def connect() -> docker.DockerClient:
    """A client for the engine DOCKER_HOST (or the default socket) names; SandboxError if none answers."""
    where = os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"
    try:
        client = docker.from_env(timeout=_API_TIMEOUT_S)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        raise SandboxError(
            f"no Docker engine answers at {where} ({_first_line(e)}); start one with "
            "`bash scripts/docker-up.sh` (as root), or point DOCKER_HOST at a running engine"
        ) from None
    return client


class DockerSandbox:
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
        self._shells: list[DockerShell] = []
        self._user = "0:0"
        self._env: dict[str, str] = {}
        self._booted: str | None = None  # the boot script's line, when it made the user
        self._spare: Future[_ExecStream] | None = None  # a shell opened while the repo was copied
        # Removed at close, off the start's path; owned, so a resumed eval removes it if lancer
        # died before close (an eval worker killed while the engine restarted: found by the soak).
        self._tmp = owned_temp_dir("lancer-repo-")
        try:
            image = _ensure_image(self._client, spec)
            # The host copies the repo and commits its baseline while the container starts.
            with ThreadPoolExecutor(2, thread_name_prefix="lancer-docker-start") as pool:
                tree = pool.submit(self._host_tree, spec.repo_dir) if spec.repo_dir is not None else None
                self._create(image)
                self._prepare(tree, pool)
        except BaseException:
            self.close()
            raise

    @property
    def _cid(self) -> str:
        if self._id is None:
            raise SandboxError("the sandbox is closed")
        return self._id

    # -- setting up ----------------------------------------------------------------------

    def _create(self, image: str) -> None:
        spec = self._spec
        own_init = not spec.image_command
        network = spec.network or spec.setup_network
        host_config = self._api.create_host_config(
            init=own_init,
            auto_remove=own_init,  # an image's own command may fail: keep its logs to report
            network_mode=None if network else "none",
            mem_limit=spec.memory,
            memswap_limit=spec.memory,  # no swap: a memory hog is killed, not slowed to a crawl
            nano_cpus=int(spec.cpus * 1e9),
            pids_limit=spec.pids_limit,
            security_opt=["no-new-privileges"],  # no setuid way back to root for the user
        )
        labels = {
            MANAGED_LABEL: "1",
            "lancer.task": spec.label,
            "lancer.pid": str(os.getpid()),
            "lancer.host": socket.gethostname(),
        }
        base_env = {"TERM": "dumb", "PAGER": "cat", "GIT_PAGER": "cat", **spec.env}
        boot = (
            own_init
            and spec.user == "auto"
            and spec.repo_dir is not None  # else the image's tree needs a chown: _resolve_user does it
            and self._image_user(image) in ("", "0", "root")
        )
        entrypoint = ["/bin/sh", "-c", _BOOT_SCRIPT if boot else _INIT_SCRIPT] if own_init else None
        room = self.workdir if spec.repo_dir is not None else ""
        try:
            created = self._api.create_container(
                image,
                command=["lancer-init", SANDBOX_USER, room] if boot else ["lancer-init"] if own_init else None,
                entrypoint=entrypoint,
                stdin_open=own_init,  # with detach=False this also sets StdinOnce
                environment=base_env,
                labels=labels,
                host_config=host_config,
                name=_container_name(spec.label),
            )
            self._id = str(created["Id"])
            if own_init:
                params = {"stdin": 1, "stream": 1, **({"stdout": 1, "stderr": 1} if boot else {})}
                self._lifeline = self._api.attach_socket(self._id, params=params)
            self._api.start(self._id)
            if boot:
                self._booted = _read_boot_line(self._lifeline)
        except docker.errors.APIError as e:
            raise SandboxError(f"the container for {image} failed to start: {_api_reason(e)}") from None
        self._env = dict(base_env)

    def _image_user(self, image: str) -> str:
        try:
            return str(self._client.images.get(image).attrs["Config"].get("User") or "")
        except docker.errors.APIError:
            return ""

    def _prepare(self, tree: Future[Path] | None, pool: ThreadPoolExecutor) -> None:
        spec = self._spec
        if spec.ready_file:
            self._wait_ready(spec.ready_file, spec.ready_timeout_s)
        if spec.setup_network and not spec.network:
            self._cut_network()
        if spec.repo_dir is None:
            self._ensure_workdir()
        self._user, home = self._booted_user() if self._booted is not None else self._resolve_user(spec.user)
        self._env["HOME"] = home
        if not spec.prepare and not spec.remove_paths:  # the agent's shell starts while the repo goes in
            self._spare = pool.submit(self._open_bash, "/")
        if tree is not None:
            self._put_repo(tree.result(), clear=self._booted is None)
        for command in spec.prepare:
            self._root(["sh", "-c", command], f"prepare command {command!r}", timeout=1800)
        for path in spec.remove_paths:
            self._root(["rm", "-rf", "--", path], f"removing {path}")
        if spec.repo_dir is None:
            self._baseline_in_place()

    def _ensure_workdir(self) -> None:
        """Without a repo to copy in, the working tree is the image's own, or, in lancer's
        base image (a task with no code, such as a SWE-Lancer manager task), an empty one."""
        spec = self._spec
        if not (spec.image or spec.dockerfile):
            self._root(["mkdir", "-p", "--", self.workdir], "making the empty working tree")
        elif self._run(["test", "-d", self.workdir], user="0:0", cwd="/", timeout=30).exit_code != 0:
            raise SandboxError(
                f"the image has no {self.workdir}: a task without a repo/ folder needs an image that holds "
                "its code at container.workdir"
            )

    def _wait_ready(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(SandboxError):  # the container may stop under the probe
                if self._run(["test", "-e", path], user="0:0", cwd="/", timeout=30).exit_code == 0:
                    return
            state = self._api.inspect_container(self._cid)["State"]
            if not state.get("Running"):
                logs = self._api.logs(self._cid, tail=5).decode(errors="replace").strip()
                code = state.get("ExitCode")
                raise SandboxError(f"the container's own setup exited {code} before writing {path}: {logs[-300:]!r}")
            if time.monotonic() > deadline:
                raise SandboxError(f"the container's own setup did not write {path} within {timeout:g} s")
            time.sleep(1.0)

    def _cut_network(self) -> None:
        """Disconnect every network, leaving loopback only: the agent gets no internet."""
        networks = self._api.inspect_container(self._cid)["NetworkSettings"]["Networks"] or {}
        for name in networks:
            self._api.disconnect_container_from_network(self._cid, name, force=True)

    def _resolve_user(self, wanted: str) -> tuple[str, str]:
        """The exec user as ``uid:gid``, and its home."""
        if wanted == "root":
            return "0:0", "/root"
        if wanted != "auto":
            name, _, group = wanted.partition(":")
            result = self._run(["sh", "-c", _FIND_USER_SCRIPT, "find-user", name], user="0:0", cwd="/", timeout=60)
            fields = result.stdout.decode(errors="replace").split()
            if len(fields) == 3:
                return f"{fields[0]}:{group or fields[1]}", fields[2]
            if name.isdigit():  # a uid the image has no entry for: fine for Docker
                return f"{name}:{group or name}", "/tmp"
            raise SandboxError(f"the image has no user {wanted!r} (sandbox.user: auto, root or an image user)")
        image_user = str(self._api.inspect_container(self._cid)["Config"].get("User") or "")
        if image_user not in ("", "0", "root"):
            return self._resolve_user(image_user)
        result = self._run(["sh", "-c", _MAKE_USER_SCRIPT, "make-user", SANDBOX_USER], user="0:0", cwd="/", timeout=60)
        fields = result.stdout.decode(errors="replace").split()
        if result.exit_code != 0 or len(fields) != 3:
            _warn_root(result.text.strip()[-200:])
            return "0:0", "/root"
        if self._spec.repo_dir is None:  # the repo came with the image: hand it over
            owner = f"{fields[0]}:{fields[1]}"
            self._root(["chown", "-R", owner, "--", self.workdir], "chown of the working tree", timeout=1800)
        return f"{fields[0]}:{fields[1]}", fields[2]

    def _booted_user(self) -> tuple[str, str]:
        fields = (self._booted or "").split()
        if len(fields) != 3 or fields[0] == "failed" or not fields[0].isdigit():
            _warn_root((self._booted or "").removeprefix("failed").strip()[-200:])
            return "0:0", "/root"
        return f"{fields[0]}:{fields[1]}", fields[2]

    def _host_tree(self, repo_dir: Path) -> Path:
        """A copy of the repo with a fresh baseline commit, made on the host (as for the local backend)."""
        tree = self._tmp / "repo"
        shutil.copytree(repo_dir, tree, symlinks=True)
        make_baseline(tree)
        return tree

    def _put_repo(self, tree: Path, clear: bool) -> None:
        """The tree into the container as ``workdir``, in one tar stream."""
        uid, gid = (int(x) for x in self._user.split(":"))
        workdir = PurePosixPath(self.workdir)
        if clear:  # the boot script did it already otherwise
            script = 'rm -rf -- "$1" && mkdir -p -- "${1%/*}/"'
            self._root(["sh", "-c", script, "prep", str(workdir)], "making the working tree's parent")
        self._put_tree(tree, str(workdir.parent), workdir.name, uid, gid)

    def _baseline_in_place(self) -> None:
        """A fresh repository in the image's working tree, so the history cannot give the fix away."""
        script = (
            'cd "$1" && rm -rf .git && git init -q && git config user.name lancer && '
            "git config user.email lancer@localhost && git config core.fileMode false && "
            'git add -A && git commit -q --allow-empty --no-verify -m "lancer baseline"'
        )
        result = self._run(["sh", "-c", script, "baseline", self.workdir], user=self._user, timeout=1800)
        if result.exit_code != 0:
            raise SandboxError(f"could not make the git baseline in {self.workdir}: {result.text.strip()[-300:]}")

    def _put_tree(self, source: Path, parent: str, name: str, uid: int, gid: int) -> None:
        """Copy a host file or tree into the container as ``parent/name``, owned by uid:gid."""

        def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
            return info

        with tempfile.TemporaryFile() as buffer:
            with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.add(str(source), arcname=name, filter=owned)
            buffer.seek(0)
            try:
                self._api.put_archive(self._cid, parent, buffer)
            except docker.errors.APIError as e:
                raise SandboxError(f"could not copy {source} into the sandbox: {_api_reason(e)}") from None

    def _root(self, argv: Sequence[str], what: str, timeout: float = 300) -> None:
        result = self._run(argv, user="0:0", cwd="/", timeout=timeout)
        if result.exit_code != 0:
            why = "timed out" if result.timed_out else f"exited {result.exit_code}"
            raise SandboxError(f"{what} {why} in the container: {result.text.strip()[-300:]}")

    # -- the Sandbox protocol ------------------------------------------------------------

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

    def _open_bash(self, cwd: str) -> _ExecStream:
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
            raise SandboxError(f"could not copy {src} out of the sandbox: {_api_reason(e)}") from None
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

    def close(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            with contextlib.suppress(Exception):
                spare.result().close()
        for shell in self._shells:
            shell.close(kill=False)  # removing the container ends every process at once
        self._shells.clear()
        shutil.rmtree(self._tmp, ignore_errors=True)
        if self._id is not None:
            _remove_container(self._api, self._id)
            self._id = None
        if self._lifeline is not None:
            with contextlib.suppress(OSError):
                _raw_socket(self._lifeline).close()
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
    ) -> _ExecStream:
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
            return _ExecStream(exec_id, self._api.exec_start(exec_id, socket=True), keep_output)
        except docker.errors.NotFound:
            raise SandboxError(_GONE) from None
        except docker.errors.APIError as e:
            if e.status_code == 409:  # not running: with auto-removal, on its way out
                raise SandboxError(_GONE) from None
            raise SandboxError(f"could not run a command in the sandbox: {_api_reason(e)}") from None

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
            raise SandboxError(f"could not kill the processes in the sandbox: {_api_reason(e)}") from None
        raise SandboxError("the sandbox's processes could not be killed: it still cannot start a process")


class DockerShell:
    """A ``bash`` session leader in the container, on one exec stream (stdout and stderr merged)."""

    def __init__(self, stream: _ExecStream, kill_session: Callable[[int | None], None]) -> None:
        self._stream = stream
        self._kill_session = kill_session
        self._closed = False

    def send(self, data: bytes) -> None:
        self._stream.send(data)

    def recv(self, timeout: float) -> bytes | None:
        return self._stream.recv_merged(timeout)

    def close(self, kill: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        if kill:
            with contextlib.suppress(SandboxError):
                self._kill_session(self._stream.pid_or_none(wait=1.0))
        self._stream.close()


class _ExecStream:
    """One hijacked ``docker exec`` connection: stdin in, demultiplexed stdout/stderr out.

    A reader thread parses Docker's frames (8-byte header: stream id, size). The first
    stderr line is the wrapper's pid, kept apart from the command's output. Output is kept
    whole in ``stdout``/``stderr`` only with ``keep_output`` (commands lancer runs); a
    shell's output only passes through the bounded ``recv_merged`` queue.
    """

    def __init__(self, exec_id: str, sock: Any, keep_output: bool = True) -> None:
        self._keep = keep_output
        self.exec_id = exec_id
        self._sock = _raw_socket(sock)
        self._sock.settimeout(None)
        self._read = _buffered_reader(sock)
        self.stdout = bytearray()
        self.stderr = bytearray()
        self._pid: int | None = None
        self._pid_line = bytearray()
        self._pid_known = threading.Event()
        self._merged = OutputChunks()
        self._done = threading.Event()
        self._closed = False
        threading.Thread(target=self._pump, daemon=True, name=f"docker-exec-{exec_id[:8]}").start()

    def _pump(self) -> None:
        try:
            while (header := self._read_exact(8)) is not None:
                kind, size = struct.unpack(">BxxxL", header)
                data = self._read_exact(size) if size else b""
                if data is None:
                    break
                if kind == 2 and not self._pid_known.is_set():
                    data = self._take_pid(data)
                if not data:
                    continue
                if self._keep:
                    (self.stderr if kind == 2 else self.stdout).extend(data)
                else:
                    self._merged.put(data)
        except (OSError, ValueError):
            pass  # the connection was closed under us: same as the end of the stream
        finally:
            self._pid_known.set()
            self._done.set()
            self._merged.put(None)

    def _read_exact(self, size: int) -> bytes | None:
        return _read_exact(self._read, size)

    def _take_pid(self, data: bytes) -> bytes:
        self._pid_line.extend(data)
        if b"\n" not in self._pid_line:
            return b""
        line, rest = bytes(self._pid_line).split(b"\n", 1)
        with contextlib.suppress(ValueError):
            self._pid = int(line)
        self._pid_known.set()
        return rest

    def pid_or_none(self, wait: float = 5.0) -> int | None:
        self._pid_known.wait(wait)
        return self._pid

    def wait(self, timeout: float | None) -> bool:
        return self._done.wait(timeout)

    def feed(self, data: bytes) -> None:
        """Write all of ``data`` to the command's stdin, then close it."""
        with contextlib.suppress(OSError):
            self._sock.sendall(data)
            self._sock.shutdown(socket.SHUT_WR)

    def send(self, data: bytes) -> None:
        if self._closed or self._done.is_set():
            raise BrokenPipeError("the sandbox shell has exited")
        try:
            self._sock.sendall(data)
        except OSError as e:
            raise BrokenPipeError(str(e)) from None

    def recv_merged(self, timeout: float) -> bytes | None:
        return self._merged.get(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._merged.discard()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader thread
        with contextlib.suppress(OSError):
            self._sock.close()


# -- images ----------------------------------------------------------------------------


def base_image() -> str:
    return os.environ.get("LANCER_BASE_IMAGE") or DEFAULT_BASE_IMAGE


def _ensure_image(client: docker.DockerClient, spec: SandboxSpec) -> str:
    if spec.image:
        return _present_or_pulled(client, spec.image)
    if spec.dockerfile is not None:
        return build_image(client, spec.dockerfile, spec.label)
    image = base_image()
    if not _has_image(client, image):
        raise SandboxError(f"lancer's base image {image} is missing: build it with `bash scripts/docker-up.sh`")
    return image


def require_image(image: str, how_to_get: str | None = None) -> None:
    """Make sure ``image`` is here before a run starts, pulling it once if it can be; else
    SandboxError saying ``how_to_get`` it (default: build, pull or load it)."""
    client = connect()
    try:
        _present_or_pulled(client, image, how_to_get)
    finally:
        client.close()


def _present_or_pulled(client: docker.DockerClient, image: str, how_to_get: str | None = None) -> str:
    if _has_image(client, image):
        return image
    print(f"lancer: image {image} is not here; pulling it", file=sys.stderr)
    try:
        client.images.pull(image)
    except docker.errors.APIError as e:
        how_to_get = how_to_get or (
            f"build it (`docker build -t {image} DIR`), pull or load it (`docker pull {image}`, `docker load -i FILE`)"
        )
        raise SandboxError(
            f"image {image} is not on this machine and could not be pulled ({_api_reason(e)}); "
            f"{how_to_get}, or name another with --image"
        ) from None
    return image


def build_image(client: docker.DockerClient, dockerfile: Path, label: str) -> str:
    """Build (or reuse) the image of ``dockerfile``; its build context is the file's folder.

    The tag holds a hash of the context, so an unchanged task reuses its image and a
    changed one gets a new one. Images lancer builds are labelled for ``prune --images``.
    """
    dockerfile = Path(dockerfile)
    if not dockerfile.is_file():
        raise SandboxError(f"the task's dockerfile {dockerfile} does not exist")
    context = dockerfile.parent
    tag = f"lancer-task-{_slug(label or context.name)}:{_context_hash(context)}"
    if _has_image(client, tag):
        return tag
    print(f"lancer: building {tag} from {dockerfile}", file=sys.stderr)
    try:
        log = client.api.build(
            path=str(context),
            dockerfile=dockerfile.name,
            tag=tag,
            labels={MANAGED_LABEL: "built", "lancer.task": label},
            rm=True,
            forcerm=True,  # no intermediate container is left, even after a failed step
            decode=True,
        )
        last = ""
        for entry in log:
            if "error" in entry:
                raise SandboxError(f"building an image from {dockerfile} failed: {str(entry['error']).strip()}")
            if entry.get("stream", "").strip():
                last = str(entry["stream"]).strip()
    except docker.errors.APIError as e:
        raise SandboxError(f"building an image from {dockerfile} failed: {_api_reason(e)}") from None
    if not _has_image(client, tag):
        raise SandboxError(f"building an image from {dockerfile} produced no image: {last}")
    return tag


def _has_image(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def _context_hash(context: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(path.relative_to(context).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0" if not os.access(path, os.X_OK) else b"\1")
    return digest.hexdigest()[:12]


# -- prune -----------------------------------------------------------------------------


def prune(everything: bool = False, images: bool = False) -> int:
    """Remove lancer's containers whose lancer process has ended; returns how many went.

    ``everything``: also containers of processes still running (and of other machines
    sharing the engine). ``images``: also the images lancer built from task Dockerfiles.
    """
    client = connect()
    try:
        removed = 0
        here = socket.gethostname()
        for info in client.api.containers(all=True, filters={"label": MANAGED_LABEL}):
            labels = info.get("Labels") or {}
            if labels.get(MANAGED_LABEL) != "1":
                continue
            alive = labels.get("lancer.host") == here and pid_alive(labels.get("lancer.pid", ""))
            foreign = labels.get("lancer.host") != here
            if everything or not (alive or foreign):
                removed += _remove_container(client.api, str(info["Id"]))
        if images:
            for image in client.api.images(filters={"label": f"{MANAGED_LABEL}=built"}):
                with contextlib.suppress(docker.errors.NotFound):
                    client.api.remove_image(image["Id"], force=True)
                    removed += 1
        return removed
    except docker.errors.APIError as e:
        raise SandboxError(f"pruning failed: {_api_reason(e)}") from None
    finally:
        client.close()


# -- helpers ---------------------------------------------------------------------------


def _remove_container(api: Any, container_id: str) -> int:
    """Remove a container and wait until it is gone; 1 if it was there."""
    try:
        api.remove_container(container_id, force=True)
    except docker.errors.NotFound:
        return 0
    except docker.errors.APIError as e:
        if e.status_code != 409:  # 409: auto-removal already under way
            raise SandboxError(f"could not remove container {container_id[:12]}: {_api_reason(e)}") from None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            api.inspect_container(container_id)
        except docker.errors.NotFound:
            return 1
        time.sleep(0.05)
    raise SandboxError(f"container {container_id[:12]} was not removed within 30 s; run `lancer sandbox prune`")


def _copy_host(src: Path, dest: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest, follow_symlinks=False)


def _raw_socket(sock: Any) -> socket.socket:
    """The socket under the SDK's SocketIO wrapper (what sendall and shutdown need)."""
    return getattr(sock, "_sock", sock)  # type: ignore[no-any-return]


def _buffered_reader(sock: Any) -> Callable[[int], bytes]:
    """Read from the buffer the HTTP response was parsed through, not the bare socket.

    The engine may send the first output in the same packet as the upgrade response; that
    output then already sits in http.client's buffer, and reading the socket would lose it.
    """
    fp = getattr(getattr(getattr(getattr(sock, "_response", None), "raw", None), "_fp", None), "fp", None)
    if fp is not None and hasattr(fp, "read1"):
        return fp.read1  # type: ignore[no-any-return]
    raw = _raw_socket(sock)
    return raw.recv


def _read_exact(read: Callable[[int], bytes], size: int) -> bytes | None:
    """``size`` bytes from ``read``, or None if the stream ends first."""
    parts = bytearray()
    while len(parts) < size:
        chunk = read(size - len(parts))
        if not chunk:
            return None
        parts.extend(chunk)
    return bytes(parts)


def _read_boot_line(lifeline: Any) -> str:
    """The boot script's ``lancer-ready ...`` line, from the attach connection's stdout."""
    read = _buffered_reader(lifeline)
    sock = _raw_socket(lifeline)
    sock.settimeout(60)
    text = bytearray()
    try:
        while _READY_PREFIX not in text or not text.endswith(b"\n"):
            header = _read_exact(read, 8)
            frame = _read_exact(read, struct.unpack(">BxxxL", header)[1]) if header else None
            if frame is None:
                break
            text += frame
    except OSError as e:
        raise SandboxError(f"the container did not start its init: {e}") from None
    finally:
        sock.settimeout(None)
    line = bytes(text).partition(_READY_PREFIX)[2].decode(errors="replace").strip()
    if not line:
        raise SandboxError(f"the container's init did not start: {bytes(text).decode(errors='replace')[-300:]!r}")
    return line


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


def _container_name(label: str) -> str:
    return f"lancer-{_slug(label or 'sandbox')[:40]}-{os.getpid()}-{os.urandom(3).hex()}"


def _slug(text: str) -> str:
    slug = "".join(c if c.isalnum() or c in "_.-" else "-" for c in text.lower()).strip("-.")
    return slug or "task"


def _api_reason(error: docker.errors.APIError) -> str:
    return _first_line(error.explanation or error)


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@cache
def _warn_root(why: str) -> None:
    print(
        f"lancer: warning: could not make a non-root user in the image ({why}); commands run as root",
        file=sys.stderr,
    )
