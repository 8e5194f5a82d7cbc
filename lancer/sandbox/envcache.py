"""Task environments built once and reused: the working tree and Python environment a
task's ``setup`` commands leave, cached by what defines them.

``pip install -e .`` writes into the environment (the package, its dependencies, a ``.pth``
naming the working tree) and into the working tree (egg-info, build artefacts, a
version file from hatch-vcs), so an entry holds both: ``repo/`` (the working tree with
its baseline and setup commits) and ``venv/`` (the task's environment on top of the base
environment, lancer.sandbox.taskenv). Every sandbox starts from a copy of them (reflinks
where the filesystem has them, else a plain copy: a sandbox can never change the entry
for the next one), with the absolute paths the setup wrote (editable installs, script
shebangs) moved from the build's folder to the sandbox's. Those files are found once,
when the entry is built, and listed in its manifest.

An entry's key (``env_key``) hashes what the environment is made from: the working
tree's content, the setup commands, the task's environment variables and network, the
interpreter and base environment, and the isolation (where the sandbox sees the base).
A caller whose working tree is defined by something else (a commit) gives that instead
of the content (``SandboxSpec.env_key_parts``). With ``SandboxSpec.env_venv_only`` an
entry holds ``venv/`` alone, built on the first sandbox's working tree: tasks of
different trees share it (SWE-bench instances of one repository and environment), each
sandbox keeping its own tree; the venv's paths into the build's tree then name the
sandbox's own. Entries live in
``<lancer cache>/taskenvs/<key>/``; builds take a lock per key and build into a staging
folder renamed into place, so concurrent attempts build an entry once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lancer.core.errors import SandboxError
from lancer.core.sandbox import SandboxSpec
from lancer.sandbox.taskenv import cache_dir

# Bumped when an entry's layout changes, so old entries are not reused.
_LAYOUT = "1"
MANIFEST = "manifest.json"
_STAGING = ".building-"
# Files bigger than this are not scanned for the build folder's path (wheels, data).
_SCAN_MAX_BYTES = 4 << 20


def envs_dir() -> Path:
    return cache_dir() / "taskenvs"


def env_key(parts: Iterable[str]) -> str:
    """The key of an environment made from ``parts`` (each a defining input: a content hash,
    a command, an interpreter path ...); the same parts in the same order give the same key."""
    digest = hashlib.sha256(_LAYOUT.encode())
    for part in parts:
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:16]


def spec_key_parts(spec: SandboxSpec) -> list[str]:
    """What every backend's key holds of a sandbox spec: the setup, the task's variables and
    network, and the working tree (its content, or what the caller says defines it)."""
    tree = spec.env_key_parts or [tree_hash(spec.repo_dir) if spec.repo_dir is not None else "no repo"]
    held = (["venv only"] if spec.env_venv_only else []) + (["setup network"] if spec.setup_network else [])
    return [json.dumps(spec.setup), json.dumps(sorted(spec.env.items())), f"network {spec.network}", *tree, *held]


def tree_hash(folder: Path) -> str:
    """The content of ``folder`` (paths, executable bits, file bytes, symlink targets), its
    ``.git`` left out: the sandbox replaces it with a fresh baseline."""
    digest = hashlib.sha256()
    for path in sorted(_walk(folder)):
        relative = path.relative_to(folder).as_posix()
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            digest.update(f"L {relative} {os.readlink(path)}\n".encode())
        elif stat.S_ISREG(info.st_mode):
            executable = "x" if info.st_mode & 0o111 else "-"
            digest.update(f"F {relative} {executable} {_file_hash(path)}\n".encode())
    return digest.hexdigest()


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in [*files, *(d for d in dirs if os.path.islink(os.path.join(root, d)))]:
            yield Path(root) / name


def _file_hash(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass(frozen=True)
class EnvEntry:
    """A built environment: ``root/repo`` (unless venv-only) and ``root/venv``, made in ``built_in``."""

    key: str
    root: Path
    built_in: str  # the build sandbox's folder, as the paths the setup wrote name it
    relocate: list[str]  # entry-relative files holding ``built_in``
    reused: bool  # False: built just now, for this sandbox
    parts: tuple[str, ...] = ("repo", "venv")  # what it holds: ("venv",) for a venv-only entry

    def copy_to(self, dest: Path) -> None:
        """``dest/repo`` and ``dest/venv`` (those the entry holds): a copy of the entry this
        sandbox may change, with the build folder's paths pointing at ``dest``."""
        for part in self.parts:
            # --reflink=auto: copy-on-write where the filesystem can (btrfs, xfs), else bytes.
            copied = subprocess.run(
                ["cp", "-a", "--reflink=auto", str(self.root / part), str(dest / part)],
                capture_output=True,
                text=True,
            )
            if copied.returncode != 0:
                raise SandboxError(f"could not copy the task environment {self.root}: {copied.stderr.strip()}")
        old, new = f"{self.built_in}/".encode(), f"{dest}/".encode()
        for relative in self.relocate:
            path = dest / relative
            if path.is_symlink():
                target = os.readlink(path).encode().replace(old, new)
                path.unlink()
                path.symlink_to(target.decode())
            else:
                path.write_bytes(path.read_bytes().replace(old, new))


def cached_env(key: str, build: Callable[[Path], str]) -> EnvEntry:
    """The entry ``key``, built first if it is not there: ``build(staging)`` fills ``staging``
    with ``repo/`` (unless venv-only) and ``venv/`` and returns the folder they were built in. Raises what
    ``build`` raises (nothing is cached then)."""
    root = envs_dir() / key
    entry = _read(root, reused=True)
    if entry is not None:
        return entry
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another attempt building it: wait, then reuse its entry
        entry = _read(root, reused=True)
        if entry is not None:
            return entry
        for stale in root.parent.glob(f"{key}{_STAGING}*"):  # a build killed mid-way; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        staging = root.parent / f"{key}{_STAGING}{os.getpid()}"
        staging.mkdir()
        try:
            started = time.monotonic()
            built_in = build(staging)
            manifest = {
                "key": key,
                "built_in": built_in,
                "relocate": _holding(staging, built_in),
                "parts": [part for part in ("repo", "venv") if (staging / part).exists()],
                "build_s": round(time.monotonic() - started, 2),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            staging.rename(root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    entry = _read(root, reused=False)
    assert entry is not None
    return entry


def _read(root: Path, reused: bool) -> EnvEntry | None:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    parts = tuple(manifest.get("parts", ("repo", "venv")))
    return EnvEntry(root.name, root, manifest["built_in"], manifest["relocate"], reused, parts)


def _holding(staging: Path, built_in: str) -> list[str]:
    """Text files and symlinks under ``staging`` (not in .git) that name the build folder."""
    needle = f"{built_in}/".encode()
    found = []
    for path in _walk(staging):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            hit = needle in os.readlink(path).encode()
        elif stat.S_ISREG(info.st_mode) and info.st_size <= _SCAN_MAX_BYTES:
            # Text only: a binary's paths cannot change length. Compiled bytecode names its
            # source, but the import system corrects that name when it loads it.
            data = path.read_bytes()
            hit = needle in data and b"\0" not in data
        else:
            hit = False
        if hit:
            found.append(path.relative_to(staging).as_posix())
    return sorted(found)


def prune_envs() -> int:
    """Remove every cached task environment (and builds a killed lancer left); how many.
    Entries being built right now are left alone. The lock files stay: one removed while
    another lancer opens it would let two builds of an entry run at once."""
    folder = envs_dir()
    removed = 0
    for lock_path in sorted(folder.glob("*.lock")) if folder.is_dir() else []:
        key = lock_path.stem
        with open(lock_path, "w") as lock, contextlib.suppress(BlockingIOError):
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            for path in [folder / key, *folder.glob(f"{key}{_STAGING}*")]:
                if path.exists():
                    shutil.rmtree(path, ignore_errors=True)
                    removed += path.name == key
    return removed
