"""The local sandbox's isolation: one bubblewrap container per sandbox, and a small init in it.

``bwrap`` makes new namespaces (user, mount, PID, network, IPC, UTS), drops every
capability, and shows a filesystem of its own: system directories read-only, an empty
/tmp, and bound read-write only the working tree, the task's environment and an empty
home. Nothing of the host's home, lancer's install, the run directory or any task folder
is there. Its network is its own loopback unless the task asks for the network.

Starting a bwrap per command would cost tens of milliseconds and could not share one
network namespace (an app and the browser's relay must meet on the same loopback). So
one bwrap runs per sandbox, with a Python init (``_INIT``) as its command; lancer talks to
it over a Unix socket that is not visible inside. A request starts a process there with
the three file descriptors lancer passes along (SCM_RIGHTS), so its output flows straight
to lancer with no copying; others kill a session, or open a file as the sandbox sees it
(so a symlink the agent made cannot point lancer's own file access outside). The init
never forks for those, so they work even when a fork bomb has used up the process limit.
Killing the bwrap (``close``, or lancer dying: ``--die-with-parent``) ends every process
in the sandbox: they all live in its PID namespace.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lancer.core.errors import SandboxError

INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap), "
    "or set sandbox.isolation: none in the config to run without isolation"
)
# System directories shown read-only; on merged-/usr systems /bin, /lib... are symlinks.
_SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Readable by root, and the sandbox's user may be root: covered with an empty file/dir.
_SECRET_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers")
_SECRET_DIRS = ("/etc/ssh", "/etc/sudoers.d", "/etc/ssl/private")

# The sandbox's init: serves lancer's requests on the socket passed as argv[1] (SOCK_SEQPACKET,
# so a request is one message). A request is NUL-separated words: "spawn", cwd, argv count,
# argv..., env as k=v... with stdin, stdout, stderr attached; "kill", session id, 1 if the
# leader too; "killall"; "open", path, 1 to write; "biggest". Replies are lines. Only C-level modules
# are imported: the init starts in a few milliseconds.
_INIT = r"""
import os, select, sys, time, _signal, _socket
listener = _socket.socket(fileno=int(sys.argv[1]))
os.set_inheritable(listener.fileno(), False)
wake_r, wake_w = os.pipe()
os.set_blocking(wake_w, False)
_signal.signal(_signal.SIGCHLD, lambda *a: None)
_signal.set_wakeup_fd(wake_w)
FDS = _socket.CMSG_SPACE(3 * 4)
waiting = {}
me = os.getpid()

def procs(zombies=True):
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in (1, me):
            try:
                with open("/proc/%s/stat" % name, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            fields = data[data.rfind(b")") + 2:].split()
            if zombies or fields[0] != b"Z":
                yield int(name), int(fields[3])

def kill_session(sid, leader):
    killed = 0
    for _ in range(100):
        found = [p for p, s in procs() if s == sid and (leader or p != sid)]
        if not found:
            break
        for p in found:
            try:
                os.kill(p, 9); killed += 1
            except OSError:
                pass
    return "killed %d" % killed

def kill_all():
    # kill(-1) reaches every process in the namespace but bwrap's pid 1 and this one, in one
    # pass the kernel holds against fork: a fork bomb cannot outrun it. Repeated while killed
    # processes are still exiting (thousands take a moment) or a dying one's child slipped out.
    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(-1, 9)
        except OSError:
            pass
        reap()
        left = sum(1 for _ in procs(zombies=False))
        if not left:
            return "killed"
        if time.monotonic() > deadline:
            return "left %d" % left
        time.sleep(0.02)

def spawn(conn, words, fds):
    cwd, count = words[1], int(words[2])
    argv, env = words[3:3 + count], dict(w.split("=", 1) for w in words[3 + count:])
    # posix_spawn (vfork underneath): far cheaper than forking this Python process.
    actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in fds if fd > 2]
    try:
        os.chdir(cwd)
    except OSError as e:
        os.write(fds[2], ("cannot run in %s: %s\n" % (cwd, e.strerror)).encode())
        return "status %d" % (126 << 8)
    try:
        pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=True,
                              setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGCHLD), setsigmask=())
    except OSError as e:
        if e.errno in (11, 12):  # EAGAIN, ENOMEM
            return "error cannot start a process: %s (the sandbox's process or memory limit)" % e.strerror
        os.write(fds[2], ("%s: %s\n" % (argv[0], e.strerror)).encode())
        return "status %d" % ((127 if e.errno == 2 else 126) << 8)
    finally:
        os.chdir("/")
    waiting[pid] = conn
    return "pid %d" % pid

def open_file(conn, path, write):
    # Non-blocking: this loop serves every request, and opening a FIFO would wait for its
    # other end forever. Only regular files are handed out (a directory: EISDIR, else EINVAL).
    try:
        if write:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, 0o644)
        else:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        kind = os.fstat(fd).st_mode & 0o170000
        if kind != 0o100000:
            os.close(fd)
            return "errno %d" % (21 if kind == 0o040000 else 22)
        if write:
            os.ftruncate(fd, 0)
    except OSError as e:
        return "errno %d" % e.errno
    conn.sendmsg([b"ok\n"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))])
    os.close(fd)

def biggest():
    sizes = {}
    for p, s in procs():
        sizes[s] = sizes.get(s, 0) + 1
    if not sizes:
        return "none"
    sid = max(sizes, key=sizes.get)
    return "session %d %d" % (sid, sizes[sid])

def reap():
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        c = waiting.pop(pid, None)
        if c is not None:
            try:
                c.send(b"exit %d\n" % status)
            except OSError:
                pass
            c.close()

def serve(conn):
    msg, ancillary, _, _ = conn.recvmsg(1 << 20, FDS)
    fds = [int.from_bytes(data[i:i + 4], sys.byteorder)
           for level, kind, data in ancillary if kind == _socket.SCM_RIGHTS for i in range(0, len(data) - 3, 4)]
    words = msg.decode().split("\0")
    reply = None
    if words[0] == "spawn" and len(fds) == 3:
        reply = spawn(conn, words, fds)
    elif words[0] == "kill":
        reply = kill_session(int(words[1]), words[2] == "1")
    elif words[0] == "open":
        reply = open_file(conn, words[1], words[2] == "1")
    elif words[0] == "biggest":
        reply = biggest()
    elif words[0] == "killall":
        reply = kill_all()
    for fd in fds:
        os.close(fd)
    if reply is not None:
        try:
            conn.send(reply.encode() + b"\n")
        except OSError:
            pass
    if reply is None or not reply.startswith("pid"):
        conn.close()

sys.stdout.write("ready\n"); sys.stdout.flush()
while True:
    ready, _, _ = select.select([listener, wake_r], [], [])
    if wake_r in ready:
        os.read(wake_r, 4096)
        reap()
    if listener in ready:
        fd, _ = listener._accept()
        serve(_socket.socket(fileno=fd))
"""


@dataclass(frozen=True)
class Binds:
    """What the sandbox shows besides the system directories."""

    writable: list[Path]  # bound read-write at the same path (working tree, task env, home)
    readonly: dict[str, Path]  # inside path -> host path (the interpreter, lancer's base env)
    workdir: str
    network: bool


def bwrap_path() -> str:
    """The bwrap executable; raises SandboxError (one line, how to install) if there is none."""
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxError(f"the local sandbox needs bubblewrap (bwrap), which is not on PATH: {INSTALL_HINT}")
    return found


def bwrap_argv(bwrap: str, binds: Binds) -> list[str]:
    argv = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    argv += ["--die-with-parent", "--new-session", "--hostname", "lancer"]
    if binds.network:
        argv.append("--share-net")
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    argv += [arg for f in _SECRET_FILES if os.path.isfile(f) for arg in ("--ro-bind", "/dev/null", f)]
    argv += [arg for d in _SECRET_DIRS if os.path.isdir(d) for arg in ("--tmpfs", d)]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run", "--dir", "/var/tmp"]
    for inside, host in binds.readonly.items():
        argv += ["--ro-bind", str(host), inside]
    for writable in binds.writable:
        argv += ["--bind", str(writable), str(writable)]
    return [*argv, "--chdir", binds.workdir, "--clearenv", "--setenv", "PATH", "/usr/bin:/bin"]


class BwrapBox:
    """One running bwrap and its init: started here, usable once ``wait_ready`` returns
    (lancer does other work meanwhile)."""

    def __init__(self, binds: Binds, python: str, control_dir: Path, wrap: list[str] | None = None) -> None:
        self._socket_path = str(control_dir / "init.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            listener.bind(self._socket_path)
        except OSError as e:  # a socket path has at most 107 bytes
            listener.close()
            raise SandboxError(
                f"cannot make the sandbox's control socket {self._socket_path} ({e}): set TMPDIR to a shorter path"
            ) from None
        listener.listen(64)
        argv = [*bwrap_argv(bwrap_path(), binds), python, "-I", "-S", "-c", _INIT, str(listener.fileno())]
        self._proc = subprocess.Popen(
            (wrap or []) + argv,
            pass_fds=[listener.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        listener.close()  # the init holds its own copy

    def wait_ready(self, timeout: float = 30) -> None:
        """Raises SandboxError (one line: bwrap's reason, how to install) if it did not start."""
        assert self._proc.stdout is not None and self._proc.stderr is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline() if ready else b""
        if line.strip() == b"ready":
            self._proc.stdout.close()
            return
        self.close()
        error = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
        why = error[-1] if error else "it did not start in time"
        raise SandboxError(f"bubblewrap cannot run here ({why}): {INSTALL_HINT}")

    def _request(self, words: Sequence[object], fds: Sequence[int] = ()) -> socket.socket:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            conn.connect(self._socket_path)
            socket.send_fds(conn, ["\0".join(str(w) for w in words).encode()], list(fds))
        except OSError as e:
            conn.close()
            raise SandboxError(f"the local sandbox has stopped ({e.strerror})") from None
        return conn

    def spawn(self, argv: Sequence[str], cwd: str, env: dict[str, str], fds: Sequence[int]) -> BoxProcess:
        """Start ``argv`` in a session of its own with stdin, stdout, stderr = ``fds``."""
        variables = [f"{k}={v}" for k, v in env.items()]
        conn = self._request(["spawn", cwd, len(argv), *argv, *variables], fds)
        buffer = b""
        while b"\n" not in buffer and (chunk := conn.recv(256)):
            buffer += chunk
        line, _, rest = buffer.partition(b"\n")  # the exit line may have come along already
        reply = line.decode().strip().split(" ", 1)
        if reply[0] == "pid":
            process = BoxProcess(int(reply[1]), conn, "", self)
            process._buffer = rest
            return process
        conn.close()
        if reply[0] == "status":  # it could not be run (not found ...): stderr says why
            return BoxProcess(None, None, "", self, int(reply[1]))
        return BoxProcess(None, None, reply[-1] or "the local sandbox has stopped", self)

    def kill_session(self, sid: int, leader: bool = True) -> None:
        with contextlib.suppress(SandboxError), self._request(["kill", sid, int(leader)]) as conn:
            conn.recv(64)

    def kill_all(self) -> None:
        """Kill every process in the sandbox but its init; SandboxError if some are left."""
        with self._request(["killall"]) as conn:
            reply = conn.recv(64).decode().strip()
        if reply != "killed":
            raise SandboxError(f"the sandbox's processes could not all be killed ({reply or 'no answer'})")

    def biggest_session(self) -> tuple[int, int] | None:
        """The session with the most processes (a fork bomb's, when the process limit is hit)
        as (session id, process count)."""
        with self._request(["biggest"]) as conn:
            words = conn.recv(64).split()
        return (int(words[1]), int(words[2])) if len(words) == 3 and words[0] == b"session" else None

    def open(self, path: str, write: bool) -> int:
        """A file descriptor for ``path`` as the sandbox sees it; raises OSError as open() does."""
        with self._request(["open", path, int(write)]) as conn:
            message, fds, _, _ = socket.recv_fds(conn, 64, 1)
        if fds:
            return fds[0]
        words = message.split()
        if len(words) == 2 and words[0] == b"errno":
            code = int(words[1])
            raise OSError(code, os.strerror(code), path)
        raise SandboxError("the local sandbox has stopped")

    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        """Kill the bwrap: its PID namespace, and so every process in the sandbox, goes with it."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(self._socket_path)


class BoxProcess:
    """A process the init started; ``pid`` as seen inside the sandbox (None: it did not start)."""

    def __init__(
        self, pid: int | None, conn: socket.socket | None, error: str, box: BwrapBox, status: int = 126 << 8
    ) -> None:
        self.pid = pid
        self.error = error
        self._conn = conn
        self._box = box
        self._status: int | None = None if conn is not None else status
        self._buffer = b""

    def wait(self, timeout: float | None) -> int | None:
        """The exit code (negative: killed by that signal), or None if still running at ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._status is None and self._conn is not None:
            if b"\n" in self._buffer:
                words = self._buffer.split()
                # No "exit" line: the sandbox itself ended, and the process with it.
                self._status = int(words[1]) if len(words) == 2 and words[0] == b"exit" else 9
                self._conn.close()
                break
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._conn], [], [], remaining)
            if not ready:
                return None
            chunk = self._conn.recv(256)
            self._buffer += chunk if chunk else b"\n"
        assert self._status is not None
        return os.waitstatus_to_exitcode(self._status)

    def kill(self) -> None:
        """SIGKILL the process and everything in its session."""
        if self.pid is not None and self._status is None:
            self._box.kill_session(self.pid)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
