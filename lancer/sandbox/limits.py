"""Resource limits for a local sandbox, like docker's: processes, memory, CPU.

Where the machine allows, a cgroup per sandbox holds everything the sandbox runs: cgroup
v1 controllers (pids, memory, cpu) or a cgroup v2 folder below lancer's own. Where no
cgroup is writable, ``prlimit`` caps each process's address space and the user's process
count (the kernel never applies that one to root). What was applied is said in
``describe()``, so a run can record it.

A command is put into the cgroups by a tiny ``sh`` prefix that moves itself there before
it ``exec``s the command, so nothing it starts is ever outside them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Moves the shell itself into each cgroup.procs file given before "--", then runs the rest.
_JOIN_SCRIPT = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
# auto: the best the machine allows; the others force a fallback (tests, comparisons).
Backend = Literal["auto", "prlimit", "none"]


@dataclass(frozen=True)
class LimitSpec:
    memory_bytes: int
    cpus: float
    pids: int


class AppliedLimits(Protocol):
    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run under the limits (the sandbox's first process; its children inherit them)."""

    def describe(self) -> str:
        """What was applied, for people: e.g. ``cgroup v1: processes 1024, memory 4 GiB, cpu 2``."""

    def pids_hits(self) -> int:
        """How often a fork failed for the process limit so far (0 where nobody counts)."""

    def oom_kills(self) -> int:
        """How many processes the memory limit killed so far (0 where nobody counts)."""

    def close(self) -> None:
        """Remove what was made for the limits; call after every process in them has ended."""


def apply(name: str, spec: LimitSpec, backend: Backend = "auto") -> AppliedLimits:
    """The best limits this machine allows for one sandbox named ``name``."""
    if backend == "auto":
        cgroups = _CgroupV1.make(name, spec) or _CgroupV2.make(name, spec)
        if cgroups is not None:
            return cgroups
    if backend != "none" and shutil.which("prlimit"):
        return _Prlimit(spec)
    return _NoLimits()


def _gib(n: int) -> str:
    return f"{n / 2**30:g} GiB" if n >= 2**30 else f"{n / 2**20:g} MiB"


def _own_cgroup(controller: str) -> str | None:
    """lancer's own cgroup path in the hierarchy of ``controller`` ("" for cgroup v2)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                return path
    return None


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def _counter(path: Path, key: str) -> int:
    """The number after ``key`` in a flat-keyed cgroup file such as ``pids.events``."""
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            words = line.split()
            if len(words) == 2 and words[0] == key:
                return int(words[1])
    return 0


def _remove(folders: list[Path]) -> None:
    # A cgroup can only go once its last process is reaped, which may take a moment.
    for folder in folders:
        for _ in range(400):
            try:
                folder.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.005)


@dataclass
class _Cgroups:
    version: int
    folders: list[Path]
    applied: list[str]
    pids_events: Path | None = None
    oom_file: Path | None = None
    oom_key: str = "oom_kill"

    def wrap(self, argv: list[str]) -> list[str]:
        procs = [str(folder / "cgroup.procs") for folder in self.folders]
        return ["sh", "-c", _JOIN_SCRIPT, "lancer-limits", *procs, "--", *argv]

    def describe(self) -> str:
        return f"cgroup v{self.version}: " + ", ".join(self.applied)

    def pids_hits(self) -> int:
        return _counter(self.pids_events, "max") if self.pids_events else 0

    def oom_kills(self) -> int:
        return _counter(self.oom_file, self.oom_key) if self.oom_file else 0

    def close(self) -> None:
        _remove(self.folders)


class _CgroupV1:
    @staticmethod
    def make(name: str, spec: LimitSpec) -> _Cgroups | None:
        made = _Cgroups(1, [], [])
        settings: dict[str, list[tuple[str, str]]] = {
            "pids": [("pids.max", str(spec.pids))],
            "memory": [("memory.limit_in_bytes", str(spec.memory_bytes))],
            "cpu": [("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", str(int(spec.cpus * 100000)))],
        }
        for controller, files in settings.items():
            own = _own_cgroup(controller)
            mount = CGROUP_ROOT / controller
            if own is None or not (mount / "cgroup.procs").is_file():
                continue
            folder = mount / own.lstrip("/") / name
            try:
                folder.mkdir()
            except OSError:
                continue
            if not all(_write(folder / f, v) for f, v in files):
                _remove([folder])
                continue
            made.folders.append(folder)
            if controller == "pids":
                made.applied.append(f"processes {spec.pids}")
                made.pids_events = folder / "pids.events"
            elif controller == "memory":
                # Without swap accounting a hog could page out instead: cap memory+swap too.
                _write(folder / "memory.memsw.limit_in_bytes", str(spec.memory_bytes))
                made.applied.append(f"memory {_gib(spec.memory_bytes)}")
                made.oom_file = folder / "memory.oom_control"
            else:
                made.applied.append(f"cpu {spec.cpus:g}")
        return made if made.folders else None


class _CgroupV2:
    @staticmethod
    def make(name: str, spec: LimitSpec) -> _Cgroups | None:
        own = _own_cgroup("")
        mount = CGROUP_ROOT if (CGROUP_ROOT / "cgroup.controllers").is_file() else CGROUP_ROOT / "unified"
        if own is None or not (mount / "cgroup.controllers").is_file():
            return None
        parent = mount / own.lstrip("/")
        available = set((parent / "cgroup.controllers").read_text().split()) if parent.is_dir() else set()
        wanted = [c for c in ("pids", "memory", "cpu") if c in available]
        # Children get a controller only if the parent hands it down (fails if lancer's own
        # cgroup holds processes and is not the root: cgroup v2's no-internal-process rule).
        enabled = [c for c in wanted if _write(parent / "cgroup.subtree_control", f"+{c}")]
        if not enabled:
            return None
        folder = parent / name
        try:
            folder.mkdir()
        except OSError:
            return None
        made = _Cgroups(2, [folder], [], oom_file=folder / "memory.events")
        if "pids" in enabled and _write(folder / "pids.max", str(spec.pids)):
            made.applied.append(f"processes {spec.pids}")
            made.pids_events = folder / "pids.events"
        if "memory" in enabled and _write(folder / "memory.max", str(spec.memory_bytes)):
            _write(folder / "memory.swap.max", "0")
            made.applied.append(f"memory {_gib(spec.memory_bytes)}")
        if "cpu" in enabled and _write(folder / "cpu.max", f"{int(spec.cpus * 100000)} 100000"):
            made.applied.append(f"cpu {spec.cpus:g}")
        if not made.applied:
            _remove([folder])
            return None
        return made


class _NoLimits:
    """Nothing applied, nothing counted, nothing to remove."""

    def wrap(self, argv: list[str]) -> list[str]:
        return argv

    def describe(self) -> str:
        return "none (no writable cgroup and no prlimit)"

    def pids_hits(self) -> int:
        return 0

    def oom_kills(self) -> int:
        return 0

    def close(self) -> None:
        pass


class _Prlimit(_NoLimits):
    def __init__(self, spec: LimitSpec) -> None:
        self._options = [f"--as={spec.memory_bytes}"]
        self.applied = [f"memory {_gib(spec.memory_bytes)} per process"]
        if os.geteuid() != 0:  # RLIMIT_NPROC counts all of the user's processes, and never root's
            self._options.append(f"--nproc={_user_process_count() + spec.pids}")
            self.applied.append(f"{spec.pids} more processes for this user")

    def wrap(self, argv: list[str]) -> list[str]:
        return ["prlimit", *self._options, "--", *argv]

    def describe(self) -> str:
        return "prlimit (no writable cgroup): " + ", ".join(self.applied) + "; cpu not limited"


def _user_process_count() -> int:
    uid = os.getuid()
    count = 0
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                count += 1
    return count


def prune(prefix: str) -> int:
    """Remove empty cgroups named ``prefix*`` left by a lancer that was killed (-9)."""
    parents = []
    for controller in ("pids", "memory", "cpu"):
        own = _own_cgroup(controller)
        if own is not None:
            parents.append(CGROUP_ROOT / controller / own.lstrip("/"))
    own = _own_cgroup("")
    if own is not None:
        parents += [CGROUP_ROOT / own.lstrip("/"), CGROUP_ROOT / "unified" / own.lstrip("/")]
    removed = 0
    for parent in parents:
        for folder in parent.glob(f"{prefix}*") if parent.is_dir() else []:
            with contextlib.suppress(OSError):
                folder.rmdir()
                removed += 1
    return removed
