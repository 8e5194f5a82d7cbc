"""Per-test reports from every pytest run of a test command, with no help from the task.

lancer's pytest plugin (lancer/grader/pytest_plugin.py) is installed as a distribution
with a ``pytest11`` entry point where the test command's Python finds it (the grading
sandbox's site-packages, or a folder on ``PYTHONPATH`` for web tests run on the host), so
every pytest session, whatever its command line, writes its own JUnit XML report into
``$LANCER_PYTEST_REPORTS``. Where the plugin cannot be installed (no Python, a read-only
one) nothing breaks: the command simply leaves no report.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from lancer.sandbox import Sandbox

# The plugin reads this variable (its REPORTS_ENV): the folder its reports go to.
REPORTS_ENV = "LANCER_PYTEST_REPORTS"
PLUGIN_MODULE = "lancer_pytest_report"
_DIST_INFO = f"{PLUGIN_MODULE}-1.dist-info"

# Run by the sandbox's python3: writes the plugin into the first site-packages folder it
# may write to (a virtual environment's own, the system's as root, else the user's), which
# a new Python puts on sys.path since it exists; prints that folder. Python 3.6 and later.
# Not checked by importing it: a second interpreter start (and pytest's import) cost seconds
# on a loaded machine.
_INSTALLER = """\
import json, os, site, sys
files = json.load(sys.stdin)
folders = list(getattr(site, "getsitepackages", list)())
if sys.prefix == getattr(sys, "base_prefix", sys.prefix) and site.ENABLE_USER_SITE:
    folders.append(site.getusersitepackages())
for folder in folders:
    try:
        for name, text in files.items():
            path = os.path.join(folder, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
    except OSError:
        continue
    print(folder)
    sys.exit(0)
sys.exit(3)
"""


def plugin_files() -> dict[str, str]:
    """The plugin as an installed distribution: its module, and metadata naming the entry point."""
    source = (Path(__file__).with_name("pytest_plugin.py")).read_text(encoding="utf-8")
    return {
        f"{PLUGIN_MODULE}.py": source,
        f"{_DIST_INFO}/METADATA": f"Metadata-Version: 2.1\nName: {PLUGIN_MODULE}\nVersion: 1\n",
        f"{_DIST_INFO}/entry_points.txt": f"[pytest11]\n{PLUGIN_MODULE} = {PLUGIN_MODULE}\n",
    }


def install_in_sandbox(sandbox: Sandbox) -> bool:
    """Install the plugin for the sandbox's ``python3``; False where it cannot be (no python3)."""
    script = 'command -v python3 >/dev/null || exit 3; exec python3 -c "$1"'
    result = sandbox.exec(
        ["sh", "-c", script, "install-plugin", _INSTALLER],
        stdin=json.dumps(plugin_files()).encode(),
        timeout=120,
    )
    return result.exit_code == 0


def install_on_host(folder: Path) -> dict[str, str]:
    """Write the plugin into ``folder``; the environment that makes a host pytest load it."""
    for name, text in plugin_files().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return {"PYTHONPATH": str(folder)}


def read_from_sandbox(sandbox: Sandbox, folder: str) -> list[bytes]:
    """The reports in ``folder``, in the order their pytest sessions started; none if no
    session wrote one (then the folder does not exist and tar fails)."""
    result = sandbox.exec(["tar", "-c", "-C", folder, "."], timeout=120)
    if result.exit_code != 0:
        return []
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".xml")), key=_name)
        return [extracted.read() for m in members if (extracted := tar.extractfile(m)) is not None]


def read_from_host(folder: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(folder.glob("*.xml"))]


def _name(member: tarfile.TarInfo) -> str:
    return member.name
