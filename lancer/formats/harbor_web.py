"""A web task exported as a Harbor task: its browser and its app travel into the image.

lancer runs a web task's hidden browser tests on the host against the app it started in
the sandbox (lancer.browser.webtests). Harbor runs tests/test.sh inside the task's
container, so the export brings both in: the image installs Debian's Chromium and the
Playwright package (driving that Chromium, as lancer does: no browser download), tests/
gets a conftest.py with the ``app_url`` and ``page`` fixtures lancer's grader gives, and
test.sh starts the app as lancer does before it runs the tests. docs/harbor.md.
"""

from __future__ import annotations

import json
import shlex
from importlib.metadata import version

from lancer.core.chromium import CHROMIUM_ARGS, TEST_VIEWPORT
from lancer.core.errors import TaskError
from lancer.core.tasks import AppSpec, Task

CONFTEST = "conftest.py"
# Where Debian's chromium package puts the browser.
_CHROMIUM = "/usr/bin/chromium"
# pytest's exit code for a harness fault (lancer.browser.fixtures' too): test.sh then
# writes no reward, so the verdict is an error, not a failed fix.
_HARNESS_ERROR_EXIT = 3


def is_web_task(task: Task) -> bool:
    """Graded by browser tests against its app: the grader's own test (lancer.grader.grade)."""
    return task.app is not None and task.tests_dir is not None


def check_web_exportable(task: Task) -> None:
    """TaskError unless the export can start the app and give the tests their fixtures."""
    why = None
    if task.app is not None and "{port}" not in task.app.command and task.app.port is None:
        why = "its app command has no {port} and task.yaml app.port is not set: where would the app listen?"
    elif task.tests_dir is not None and (task.tests_dir / CONFTEST).exists():
        why = f"its tests/ has a {CONFTEST} of its own, where the export puts the browser fixtures"
    if why:
        raise TaskError(f"task {task.id} cannot be exported as a Harbor task: {why}")


def browser_layer() -> str:
    """The Dockerfile instruction installing Chromium (with the security archive's updates,
    as Debian ships Chromium's fixes there) and the Playwright lancer itself grades with
    (its driver, a node binary, needs libatomic).

    Placed right after ``FROM``, so every web task on one base image shares this layer in
    Docker's build cache: it is built once per machine."""
    security = "deb http://deb.debian.org/debian-security $(. /etc/os-release && echo $VERSION_CODENAME)-security main"
    return (
        "# The hidden browser tests run in here: Chromium, and Playwright driving it (no browser download).\n"
        f'RUN echo "{security}" > /etc/apt/sources.list.d/lancer-security.list \\\n'
        " && apt-get update -q \\\n"
        " && DEBIAN_FRONTEND=noninteractive \\\n"
        "    apt-get install -y -q --no-install-recommends chromium fonts-liberation libatomic1 \\\n"
        " && rm -rf /var/lib/apt/lists/* \\\n"
        f" && pip install --no-cache-dir -q playwright=={version('playwright')}"
    )


def conftest() -> str:
    """tests/conftest.py: lancer's browser fixtures (lancer.browser.fixtures), standalone."""
    width, height = TEST_VIEWPORT
    return f'''"""Written by lancer export: the fixtures lancer's grader gives the hidden browser tests
(app_url from APP_URL, which test.sh sets; page from Chromium launched as lancer launches it)."""

import os

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = {json.dumps(_CHROMIUM)}
CHROMIUM_ARGS = {json.dumps(CHROMIUM_ARGS)}
HARNESS_ERROR_EXIT = {_HARNESS_ERROR_EXIT}


@pytest.fixture(scope="session")
def app_url():
    url = os.environ.get("APP_URL", "")
    if not url:
        pytest.exit("APP_URL is not set: the app was not started", returncode=HARNESS_ERROR_EXIT)
    return url.rstrip("/")


@pytest.fixture(scope="session")
def playwright():
    try:
        driver = sync_playwright().start()
    except Exception as e:  # its driver cannot run here: the harness, not the fix
        pytest.exit(f"cannot start Playwright: {{e}}", returncode=HARNESS_ERROR_EXIT)
    yield driver
    driver.stop()


@pytest.fixture(scope="session")
def browser(playwright):
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception as e:  # Chromium missing or broken: the harness, not the fix
        pytest.exit(f"cannot start Chromium: {{e}}", returncode=HARNESS_ERROR_EXIT)
    yield chromium
    chromium.close()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={{"width": {width}, "height": {height}}})
    yield context
    context.close()


@pytest.fixture
def page(context):
    return context.new_page()
'''


# Waits until $1 answers (any HTTP response: the server is up, its bugs are the task)
# while process $3 lives, at most $2 seconds; else prints why with the app's log $4 and
# exits 1. As lancer.sandbox.app waits.
_WAIT_FOR_APP = r"""
import os, sys, time, urllib.error, urllib.request
url, timeout, pid, log = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def answers():
    try:
        opener.open(url, timeout=3).close()
    except urllib.error.HTTPError:
        return True
    except Exception:
        return False
    return True
def alive():
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
deadline = time.monotonic() + timeout
def fail(why):
    sys.exit(f"the app {why}; its output:\n" + open(log, errors="replace").read()[-2000:])
while not answers():
    if not alive():
        fail(f"exited before it answered at {url}")
    if time.monotonic() > deadline:
        fail(f"did not answer at {url} within {timeout:g} s")
    time.sleep(0.1)
"""


def web_test_body(app: AppSpec, test_command: str | None) -> str:
    """test.sh's body for a web task (run in the workdir): the app started as lancer starts
    it (``{port}`` a free port, ``PORT`` set, a session of its own, killed at the end); once
    it answers, the tests run from a scratch folder holding tests/, with ``APP_URL`` set.
    The app not starting exits 1, a failed fix, as lancer grades it."""
    free_port = "python3 -c 'import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'"
    port = f"$({free_port})" if "{port}" in app.command or app.port is None else str(app.port)
    probe = "$APP_URL/" + app.ready_path.lstrip("/")
    command = test_command or "python3 -m pytest -p no:cacheprovider -q tests"
    lines = [
        f"port={port}",
        "export PORT=$port APP_URL=http://127.0.0.1:$port",
        f"app_command={shlex.quote(app.command)}",
        "log=$(mktemp /tmp/lancer-app.XXXXXX)",
        'setsid sh -c "${app_command//"{port}"/$port}" > "$log" 2>&1 < /dev/null &',
        "app=$!",
        "trap 'kill -9 -- -$app 2>/dev/null' EXIT",
        f'python3 -c {shlex.quote(_WAIT_FOR_APP.strip())} "{probe}" {app.ready_timeout_s:g} "$app" "$log" || exit 1',
        'scratch=$(mktemp -d) && mkdir "$scratch/tests"',
        'cp -R "$here"/. "$scratch/tests/" && rm -f "$scratch/tests/test.sh"',
        f'cd "$scratch" && PYTHONDONTWRITEBYTECODE=1 bash -c {shlex.quote(command)}',
    ]
    return "\n".join(lines)
