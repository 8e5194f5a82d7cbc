"""The task's own Python environment: the agent's python3, pip and pytest, fresh per sandbox.

A *base environment* per interpreter is built once (with uv, or ``python -m venv`` where
uv is missing) under lancer's cache dir: a current pytest and pip, plus a wheelhouse of
the common build backends so ``pip install -e .`` works without a network. Each sandbox
then gets a virtual environment of its own made by hand in about a millisecond: a
``pyvenv.cfg``, links to the interpreter, and a ``.pth`` file that puts the base's
site-packages (read-only) after its own. So what the task's setup or the agent installs
lands in the sandbox's environment only, shadows the base's copy when versions differ
(pip leaves a package "outside environment" alone), and is gone with the sandbox;
lancer's own virtualenv is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lancer.core.cachedir import cache_dir as cache_dir  # re-exported: the sandbox code and scripts name it here
from lancer.core.errors import SandboxError

# What every base environment holds, and the build backends kept as wheels for offline installs.
BASE_PACKAGES = ("pip", "pytest")
WHEELHOUSE_PACKAGES = ("setuptools", "wheel", "hatchling", "flit-core", "poetry-core", "setuptools-scm")
# Bumped when the layout of a base environment changes, so old ones are rebuilt.
_LAYOUT = "1"


@dataclass(frozen=True)
class Interpreter:
    path: Path  # resolved: a real file, not a link
    version: str  # "3.11"

    @property
    def prefix(self) -> Path:
        """The installation the interpreter belongs to (what a sandbox must be able to read)."""
        return self.path.parent.parent


@dataclass(frozen=True)
class BaseEnv:
    root: Path
    interpreter: Interpreter

    @property
    def site_packages(self) -> Path:
        return self.root / "lib" / f"python{self.interpreter.version}" / "site-packages"

    @property
    def wheelhouse(self) -> Path:
        return self.root / "wheels"


@functools.cache  # asked at every sandbox start; asking uv alone takes ~13 ms (errors are not cached)
def find_interpreter(version: str | None) -> Interpreter:
    """The Python a task's environment is made from: ``version`` (e.g. "3.11") if given,
    else the system's python3 (always visible in a sandbox), else lancer's own.
    Found in system directories first, then by uv, then on PATH.
    Raises SandboxError saying how to get a missing version."""
    candidates: list[str] = []
    if version is None:
        candidates = ["/usr/bin/python3", "/usr/local/bin/python3", sys.executable]
    else:
        # System ones first: they are visible in the sandbox without binding anything more.
        candidates = [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
        candidates += [p for p in (_uv_find(version), shutil.which(f"python{version}"), sys.executable) if p]
    for candidate in candidates:
        found = _probe(candidate)
        if found is not None and (version is None or found.version == version):
            return found
    raise SandboxError(
        f"the task needs Python {version}, which is not installed here: install it "
        f"(e.g. `uv python install {version}` or your system's python{version} package)"
    )


@functools.cache
def _probe(path: str) -> Interpreter | None:
    if not os.access(path, os.X_OK):
        return None
    real = Path(os.path.realpath(path))
    try:
        out = subprocess.run(
            [str(real), "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.base_prefix)"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    if len(out) != 2 or tuple(int(n) for n in out[0].split(".")) < (3, 8):
        return None
    return Interpreter(real, out[0])


def _uv() -> str | None:
    with contextlib.suppress(ImportError, FileNotFoundError):
        from uv import find_uv_bin

        return str(find_uv_bin())
    return shutil.which("uv")


def _uv_find(version: str) -> str | None:
    uv = _uv()
    if uv is None:
        return None
    try:
        found = subprocess.run(
            [uv, "python", "find", "--no-python-downloads", version], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found.stdout.strip() or None if found.returncode == 0 else None


def base_env(interpreter: Interpreter) -> BaseEnv:
    """The cached base environment for ``interpreter``, built on first use (needs the package
    index once). Raises SandboxError if it cannot be built."""
    key = hashlib.sha256(f"{_LAYOUT} {interpreter.path} {BASE_PACKAGES}".encode()).hexdigest()[:12]
    envs = cache_dir() / "envs"
    env = BaseEnv(envs / f"py{interpreter.version}-{key}", interpreter)
    if (env.root / ".complete").exists():
        return env
    envs.mkdir(parents=True, exist_ok=True)
    with open(envs / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two lancers starting at once build it once
        if not (env.root / ".complete").exists():
            _build(env)
    return env


def _build(env: BaseEnv) -> None:
    staging = env.root.with_name(env.root.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    python, env_python = str(env.interpreter.path), str(staging / "bin" / "python")
    uv = _uv()
    if uv is not None:
        steps = [
            [uv, "venv", "-q", "--python", python, str(staging)],
            [uv, "pip", "install", "-q", "--python", env_python, *BASE_PACKAGES],
        ]
    else:
        steps = [[python, "-m", "venv", str(staging)], [env_python, "-m", "pip", "install", "-q", "-U", *BASE_PACKAGES]]
    pip_download = [env_python, "-m", "pip", "download", "-q", "--disable-pip-version-check"]
    steps.append([*pip_download, "-d", str(staging / "wheels"), *WHEELHOUSE_PACKAGES])
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            why = (result.stderr or result.stdout).strip().splitlines()
            raise SandboxError(
                f"could not build the task Python environment in {env.root} "
                f"({' '.join(step[:3])}...: {why[-1] if why else 'failed'}); it needs the package index once"
            )
    shutil.rmtree(env.root, ignore_errors=True)
    staging.rename(env.root)
    (env.root / ".complete").touch()


def make_task_env(dest: Path, base: BaseEnv, base_seen_at: Path) -> None:
    """A fresh virtual environment at ``dest`` on top of ``base`` (which the sandbox sees at
    ``base_seen_at``); its ``bin`` goes first on the sandbox's PATH."""
    version = base.interpreter.version
    site = dest / "lib" / f"python{version}" / "site-packages"
    site.mkdir(parents=True)
    (dest / "lib64").symlink_to("lib")
    (dest / "pyvenv.cfg").write_text(
        f"home = {base.interpreter.path.parent}\ninclude-system-site-packages = false\nversion = {version}\n"
    )
    seen_site = base_seen_at / base.site_packages.relative_to(base.root)
    (site / "_lancer_base.pth").write_text(f"{seen_site}\n")
    bin_dir = dest / "bin"
    bin_dir.mkdir()
    for name in ("python", "python3", f"python{version}"):
        (bin_dir / name).symlink_to(base.interpreter.path)
    # Scripts relative to their own folder, so the environment works wherever it is seen.
    for name, module in (("pytest", "pytest"), ("py.test", "pytest"), ("pip", "pip"), ("pip3", "pip")):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec "$(dirname -- "$0")/python" -m {module} "$@"\n')
        script.chmod(0o755)


def env_variables(venv: Path, base_seen_at: Path, network: bool) -> dict[str, str]:
    """What a sandbox's commands need to use the task environment."""
    variables = {
        "VIRTUAL_ENV": str(venv),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_FIND_LINKS": str(base_seen_at / "wheels"),
    }
    if not network:  # no index to ask: without this pip retries the network for seconds
        variables["PIP_NO_INDEX"] = "1"
    return variables
