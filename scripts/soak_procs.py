"""The soak's view of processes through /proc: its eval's tree, their memory, orphans to reap."""

from __future__ import annotations

import contextlib
import ctypes
import os
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
ENGINE_NAMES = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "docker-proxy")


@dataclass
class Proc:
    pid: int
    ppid: int
    name: str
    cmdline: str
    rss_kb: int


def processes() -> dict[int, Proc]:
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = Path(f"/proc/{entry.name}/status").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        found[int(entry.name)] = Proc(int(entry.name), int(fields[1]), name, cmdline.strip(), rss)
    return found


def reap_orphans(own: set[int]) -> None:
    """Reap the soak's adopted orphans that have exited (not the children it waits for itself)."""
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in own:
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if state == "Z" and int(ppid) == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry.name), os.WNOHANG)


def descendants(root: int, table: dict[int, Proc], skip_engines: bool = True) -> list[Proc]:
    """Processes under ``root``; a Docker engine's subtree (dockerd, containerd, shims) is not ours."""
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    found, stack = [], list(children.get(root, []))
    while stack:
        proc = table[stack.pop()]
        if skip_engines and proc.name.startswith(ENGINE_NAMES):
            continue
        found.append(proc)
        stack.extend(children.get(proc.pid, []))
    return found


def is_lancer(proc: Proc) -> bool:
    return "lancer.cli.main" in proc.cmdline or "lancer.eval.worker" in proc.cmdline


@dataclass
class Sampler:
    """Samples the memory of an eval's process tree, and remembers every pid of it."""

    peak_lancer_kb: int = 0
    peak_tree_kb: int = 0
    peak_process_kb: int = 0
    pids: set[int] = field(default_factory=set)

    def sample(self, root: int) -> None:
        table = processes()
        if root not in table:
            return
        tree = [table[root], *descendants(root, table)]
        self.pids.update(p.pid for p in tree)
        lancer = [p.rss_kb for p in tree if is_lancer(p)]
        self.peak_lancer_kb = max(self.peak_lancer_kb, sum(lancer))
        self.peak_process_kb = max(self.peak_process_kb, max(lancer, default=0))
        self.peak_tree_kb = max(self.peak_tree_kb, sum(p.rss_kb for p in tree))


def become_subreaper() -> None:
    """Orphans of anything the soak started (killed evals' children) become its children."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
