"""Starting a sandbox container: its init, the sandbox user, the repo copied in with a baseline.

``ContainerSetup`` is the first half of :class:`DockerSandbox`: what runs once, at start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import IO, Any

import docker
import docker.errors

from lancer.core.errors import SandboxError
from lancer.core.sandbox import ExecResult, SandboxSpec
from lancer.sandbox.docker.engine import ENV_IMAGE_LABEL, MANAGED_LABEL, api_reason, slug
from lancer.sandbox.docker.lifeline import start as start_watcher
from lancer.sandbox.docker.streams import ExecStream, read_boot_line
from lancer.sandbox.git import EXCLUDED, make_baseline

SANDBOX_USER = "lancer"

# PID 1's child (under tini). EOF on stdin: lancer is gone, so the container should be too.
# SIGUSR1 interrupts ``read`` (status > 0 but no EOF), hence the flag.
_INIT_SCRIPT = "trap 'r=1; kill -KILL -1 2>/dev/null' USR1; while :; do r=; read -r _ || [ -n \"$r\" ] || exit 0; done"
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
# Prints "uid gid home" of the user named (or numbered) $1 in /etc/passwd.
_FIND_USER_SCRIPT = r"""
while IFS=: read -r n _ u g _ h _; do
  if [ "$n" = "$1" ] || [ "$u" = "$1" ]; then echo "$u $g $h"; exit 0; fi
done < /etc/passwd
exit 1
"""


class ContainerSetup:
    """Creating and preparing the container; the exec half is :class:`DockerSandbox`."""

    workdir: str
    _spec: SandboxSpec
    _client: docker.DockerClient
    _api: Any
    _id: str | None
    _lifeline: Any
    _watcher: IO[bytes] | None
    _user: str
    _env: dict[str, str]
    _booted: str | None
    _from_env_image: bool  # lancer's committed setup image: tree, owner and baseline are ready
    _spare: Future[ExecStream] | None
    _tmp: Path

    # The exec half, defined by DockerSandbox: a command run to completion, and a shell's stream.
    _run: Callable[..., ExecResult]
    _open_bash: Callable[[str], ExecStream]

    @property
    def _cid(self) -> str:
        if self._id is None:
            raise SandboxError("the sandbox is closed")
        return self._id

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
        image_user, image_labels = self._image_config(image)
        self._from_env_image = image_labels.get(MANAGED_LABEL) == ENV_IMAGE_LABEL
        boot = (
            own_init
            and spec.user == "auto"
            # else the image's tree needs a chown: _resolve_user does it
            and (spec.repo_dir is not None or self._from_env_image)
            and image_user in ("", "0", "root")
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
            if not own_init:  # no init loop to end it: a watcher removes it if lancer dies
                self._watcher = start_watcher("container", self._id)
            if own_init:
                params = {"stdin": 1, "stream": 1, **({"stdout": 1, "stderr": 1} if boot else {})}
                self._lifeline = self._api.attach_socket(self._id, params=params)
            self._api.start(self._id)
            if boot:
                self._booted = read_boot_line(self._lifeline)
        except docker.errors.APIError as e:
            raise SandboxError(f"the container for {image} failed to start: {api_reason(e)}") from None
        self._env = dict(base_env)

    def _image_config(self, image: str) -> tuple[str, dict[str, str]]:
        """The image's user and labels."""
        try:
            config = self._client.images.get(image).attrs["Config"]
        except docker.errors.APIError:
            return "", {}
        return str(config.get("User") or ""), dict(config.get("Labels") or {})

    def _prepare(self, tree: Future[Path] | None, pool: ThreadPoolExecutor) -> None:
        spec = self._spec
        if spec.ready_file:
            self._wait_ready(spec.ready_file, spec.ready_timeout_s)
        if spec.setup_network and not spec.network:
            self._cut_network()
        if spec.repo_dir is None and not self._from_env_image:
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
        # A committed setup image's baseline holds the setup already, and nothing of the history
        # can give a fix away; removed paths must be part of a baseline, never of the patch.
        if spec.repo_dir is None and not spec.keep_history and (not self._from_env_image or spec.remove_paths):
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
        user = f"{fields[0]}:{fields[1]}"
        if self._spec.repo_dir is None:  # the repo came with the image: hand it over
            self._root(["chown", "-R", user, "--", self.workdir], "chown of the working tree", timeout=1800)
        return user, fields[2]

    def hand_over_tree(self) -> None:
        """The working tree owned by the sandbox user again (after root's commands)."""
        if self._user != "0:0":
            self._root(["chown", "-R", self._user, "--", self.workdir], "chown of the working tree", timeout=1800)

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
            'mkdir -p .git/info && printf %s "$2" > .git/info/exclude && '
            'git add -A && git commit -q --allow-empty --no-verify -m "lancer baseline"'
        )
        argv = ["sh", "-c", script, "baseline", self.workdir, EXCLUDED]
        result = self._run(argv, user=self._user, timeout=1800)
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
                raise SandboxError(f"could not copy {source} into the sandbox: {api_reason(e)}") from None

    def _root(self, argv: Sequence[str], what: str, timeout: float = 300) -> None:
        result = self._run(argv, user="0:0", cwd="/", timeout=timeout)
        if result.exit_code != 0:
            why = "timed out" if result.timed_out else f"exited {result.exit_code}"
            raise SandboxError(f"{what} {why} in the container: {result.text.strip()[-300:]}")


def _container_name(label: str) -> str:
    return f"lancer-{slug(label or 'sandbox')[:40]}-{os.getpid()}-{os.urandom(3).hex()}"


def _warn_root(why: str) -> None:
    print(
        f"lancer: warning: could not make a non-root user in the image ({why}); commands run as root",
        file=sys.stderr,
    )
