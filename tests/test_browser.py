"""The app lifecycle, the port relay and the ``browser`` tool, against a real Chromium and
real sandboxes (local and docker). Every test also checks that no Chromium, Playwright
driver or app process outlives it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lancer.core.config import BrowserConfig
from lancer.core.tasks import AppSpec
from lancer.core.tool import ToolError
from lancer.sandbox import Sandbox, SandboxSpec, create_sandbox
from lancer.sandbox.app import App, AppError
from lancer.sandbox.relay import PortRelay
from lancer.sandbox.shell import KILL_SESSION_SCRIPT
from lancer.tools.browser import BrowserArgs, BrowserTool
from tests.conftest import ROOT
from tests.web_helpers import make_web_repo, nothing_left_behind

pytestmark = pytest.mark.browser  # needs Chromium: CI installs it, and these never skip

SERVE = "python3 -m http.server {port} --bind 127.0.0.1"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _nothing_outlives_the_test() -> Iterator[None]:
    with nothing_left_behind():
        yield


@pytest.fixture
def web_sandbox(sandbox_kind: str, tmp_path: Path) -> Iterator[Sandbox]:
    sb = create_sandbox(sandbox_kind, SandboxSpec(repo_dir=make_web_repo(tmp_path), label="pytest-web"))
    try:
        yield sb
    finally:
        sb.close()


@pytest.fixture
def local_web_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    sb = create_sandbox("local", SandboxSpec(repo_dir=make_web_repo(tmp_path), label="pytest-web"))
    try:
        yield sb
    finally:
        sb.close()


def fetch(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return str(response.read().decode())


def sandbox_ps(sb: Sandbox) -> str:
    return sb.exec(["ps", "-eo", "args"], timeout=30).stdout.decode()


def browser(
    sb: Sandbox, out: Path, supports_images: bool = True, command: str = SERVE, **config: float
) -> tuple[BrowserTool, App]:
    app = App(sb, AppSpec(command=command))
    settings = BrowserConfig(action_timeout_s=1, **config)  # type: ignore[arg-type]
    return BrowserTool(app, out, supports_images, settings, 10_000), app


def act(tool: BrowserTool, **args: str) -> str:
    return tool.run(BrowserArgs.model_validate(args)).output


# -- the app -------------------------------------------------------------------------------


def test_app_starts_restarts_and_stops_with_everything_it_started(web_sandbox: Sandbox) -> None:
    marker = f"lancer-child-{uuid.uuid4().hex[:8]}"
    # The app starts a child of its own: stopping the app must stop it too.
    command = f"python3 -c 'import time; time.sleep(300)' {marker} & exec {SERVE}"
    app = App(web_sandbox, AppSpec(command=command))
    try:
        url = app.start()
        assert url.startswith("http://127.0.0.1:")
        assert "Lancer test page" in fetch(url + "/")
        assert marker in sandbox_ps(web_sandbox)
        assert app.is_running()

        assert app.restart() == url  # same address: open pages keep working
        assert "Lancer test page" in fetch(url + "/index.html")
        ps = sandbox_ps(web_sandbox).splitlines()
        children = [line for line in ps if line.startswith("python3 -c import time") and marker in line]
        assert len(children) == 1  # the first app's child was stopped with it
    finally:
        app.stop()
    assert marker not in sandbox_ps(web_sandbox)
    assert not app.is_running()
    with pytest.raises(OSError):
        fetch(url + "/")


def test_the_app_cannot_see_the_hidden_tests(sandbox_kind: str, tmp_path: Path, hidden_file_name: str) -> None:
    """The app runs the agent's code: it gets the agent's view, without the task folder."""
    hidden = tmp_path / "task-tests"
    hidden.mkdir()
    (hidden / hidden_file_name).write_text("assert True\n")
    spec = SandboxSpec(repo_dir=make_web_repo(tmp_path), hidden_paths=[hidden], label="pytest-web")
    sb = create_sandbox(sandbox_kind, spec)
    app = App(sb, AppSpec(command=f"ls -a {hidden} > seen.txt 2>&1; cat {hidden}/* >> seen.txt 2>&1; exec {SERVE}"))
    try:
        seen = fetch(app.start() + "/seen.txt")
    finally:
        app.stop()
        sb.close()
    assert hidden_file_name not in seen and "assert True" not in seen


def test_an_app_that_exits_reports_its_output(web_sandbox: Sandbox) -> None:
    app = App(web_sandbox, AppSpec(command="echo 'cannot bind {port}: boom' >&2; exit 3"))
    with pytest.raises(AppError, match=r"exited before it answered(.|\n)*boom"):
        app.start()
    assert not app.started


def test_an_app_that_never_answers_is_stopped_at_its_timeout(web_sandbox: Sandbox) -> None:
    marker = f"lancer-silent-{uuid.uuid4().hex[:8]}"
    app = App(
        web_sandbox, AppSpec(command=f"python3 -c 'import time; time.sleep(300)' {marker} {{port}}", ready_timeout_s=1)
    )
    started = time.monotonic()
    with pytest.raises(AppError, match="did not answer"):
        app.start()
    assert time.monotonic() - started < 10
    assert marker not in sandbox_ps(web_sandbox)


def test_an_app_needs_a_port() -> None:
    with pytest.raises(AppError, match=r"\{port\}"):
        App(object(), AppSpec(command="python3 server.py"))  # type: ignore[arg-type]


def test_the_relay_carries_concurrent_connections_and_big_bodies(local_web_sandbox: Sandbox) -> None:
    """The docker path, exercised through the local sandbox: the relay only needs open_shell."""
    Path(local_web_sandbox.workdir, "big.bin").write_bytes(bytes(range(256)) * 8192)  # 2 MiB
    app = App(local_web_sandbox, AppSpec(command=SERVE))
    relay = None
    try:
        port = int(app.start().rsplit(":", 1)[1])
        relay = PortRelay(local_web_sandbox, port)
        base = f"http://127.0.0.1:{relay.port}"
        bodies: list[str] = []

        def get() -> None:
            bodies.append(fetch(base + "/two.html"))

        threads = [threading.Thread(target=get) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(bodies) == 16 and all("Second page" in b for b in bodies)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(base + "/big.bin", timeout=30) as response:
            assert response.read() == bytes(range(256)) * 8192
    finally:
        if relay is not None:
            relay.close()
        app.stop()


# -- the browser tool ----------------------------------------------------------------------


def test_browser_actions_against_a_real_chromium(web_sandbox: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "run"
    tool, _ = browser(web_sandbox, out)
    try:
        first = act(tool, action="goto", url="/")
        assert "the app is at http://127.0.0.1:" in first
        assert "'Lancer test page'" in first

        assert "filled #name with 'milk'" in act(tool, action="fill", selector="#name", text="milk")
        clicked = act(tool, action="click", selector="#add")
        assert "clicked #add" in clicked and "console errors" not in clicked
        assert "milk" in act(tool, action="text", selector="#list")
        assert "version 1" in act(tool, action="text")

        # Console errors and page errors arrive with the action that caused them.
        broke = act(tool, action="click", selector="#bad")
        assert "new console errors (2)" in broke
        assert "[error] about to break" in broke
        assert "[page error] TypeError" in broke and "null" in broke
        console = act(tool, action="console")
        assert "[log] added milk" in console and "about to break" in console
        assert "no console messages" in act(tool, action="console")

        result = tool.run(BrowserArgs(action="screenshot"))
        assert len(result.images) == 1
        shot = Path(result.images[0])
        assert shot.parent == out / "screenshots" and shot.read_bytes().startswith(PNG_MAGIC)
        assert "(attached)" in result.output

        assert "'Page two'" in act(tool, action="click", selector="text=to page two")
        assert "pressed Tab" in act(tool, action="press", key="Tab")

        # A selector that matches nothing fails fast, with a message the model can use.
        started = time.monotonic()
        with pytest.raises(ToolError, match=r"click failed: Timeout 1000ms exceeded(.|\n)*#nothing-here"):
            tool.run(BrowserArgs(action="click", selector="#nothing-here"))
        assert time.monotonic() - started < 5
        with pytest.raises(ToolError, match="fill needs text"):
            tool.run(BrowserArgs(action="fill", selector="#name"))
    finally:
        tool.close()


def test_a_text_only_model_gets_the_path_and_the_page_text(local_web_sandbox: Sandbox, tmp_path: Path) -> None:
    tool, _ = browser(local_web_sandbox, tmp_path / "run", supports_images=False)
    try:
        act(tool, action="goto", url="/")
        result = tool.run(BrowserArgs(action="screenshot"))
        assert result.images == []
        assert "does not take images" in result.output and "to page two" in result.output
        saved = tmp_path / "run" / "screenshots" / "shot-001.png"
        assert str(saved) in result.output and saved.read_bytes().startswith(PNG_MAGIC)
    finally:
        tool.close()


def test_the_browser_opens_only_the_app(local_web_sandbox: Sandbox, tmp_path: Path) -> None:
    tool, app = browser(local_web_sandbox, tmp_path / "run")
    try:
        act(tool, action="goto", url="/")
        for outside in ("file:///etc/passwd", "http://example.com/", "http://127.0.0.1:1/"):
            with pytest.raises(ToolError, match="opens only the app"):
                tool.run(BrowserArgs(action="goto", url=outside))
        assert "'Page two'" in act(tool, action="goto", url=app.url + "/two.html")
        assert "'Page two'" in act(tool, action="goto", url="two.html")
        assert "(HTTP 404)" in act(tool, action="goto", url="/missing")
    finally:
        tool.close()


def test_an_edited_script_is_never_served_stale(local_web_sandbox: Sandbox, tmp_path: Path) -> None:
    tool, _ = browser(local_web_sandbox, tmp_path / "run")
    try:
        assert "version 1" in act(tool, action="goto", url="/") + act(tool, action="text", selector="#version")
        script = Path(local_web_sandbox.workdir, "app.js")
        script.write_text(script.read_text().replace("version 1", "version 2"))
        act(tool, action="goto", url="/")
        assert "version 2" in act(tool, action="text", selector="#version")
    finally:
        tool.close()


def test_an_app_that_died_is_started_again_and_restart_app_works(local_web_sandbox: Sandbox, tmp_path: Path) -> None:
    tool, app = browser(local_web_sandbox, tmp_path / "run")
    try:
        act(tool, action="goto", url="/")
        # The app dies on its own (as if the agent's change crashed it).
        local_web_sandbox.exec(["sh", "-c", KILL_SESSION_SCRIPT, "kill", str(app._sid), "include-leader"])
        note = act(tool, action="goto", url="/two.html")
        assert "the app had exited and was started again" in note and "'Page two'" in note
        restarted = act(tool, action="restart_app")
        assert "restarted the app" in restarted and "reloaded the page" in restarted
        assert "'Page two'" in restarted
    finally:
        tool.close()


def test_closing_the_tool_ends_chromium_and_the_app(local_web_sandbox: Sandbox, tmp_path: Path) -> None:
    with nothing_left_behind():
        tool, app = browser(local_web_sandbox, tmp_path / "run")
        act(tool, action="goto", url="/")
        url = app.url
        tool.close()
        tool.close()  # idempotent
    with pytest.raises(OSError):
        fetch(url + "/")


def test_a_browser_that_died_is_started_again(local_web_sandbox: Sandbox, tmp_path: Path) -> None:
    tool, _ = browser(local_web_sandbox, tmp_path / "run")
    try:
        act(tool, action="goto", url="/")
        assert tool._browser is not None
        tool._browser.close()  # as if Chromium had crashed
        again = act(tool, action="goto", url="/two.html")
        assert "the browser had crashed and was started again" in again and "'Page two'" in again
    finally:
        tool.close()


KILLED_RUN = """
import sys, time
from pathlib import Path
from lancer.core.config import BrowserConfig
from lancer.core.tasks import AppSpec
from lancer.sandbox import SandboxSpec, create_sandbox
from lancer.sandbox.app import App
from lancer.tools.browser import BrowserArgs, BrowserTool
sandbox = create_sandbox("local", SandboxSpec(repo_dir=Path(sys.argv[1])))
tool = BrowserTool(App(sandbox, AppSpec(command=sys.argv[2])), Path(sys.argv[3]), True, BrowserConfig(), 1000)
print(tool.run(BrowserArgs(action="goto", url="/")).output, flush=True)
time.sleep(120)
"""


def test_lancer_killed_with_9_leaves_no_app_and_no_chromium(tmp_path: Path) -> None:
    """The local app's watchdog, and Playwright's driver, end them when lancer dies."""
    repo = make_web_repo(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(repo), SERVE, str(tmp_path / "run")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    first = child.stdout.readline()
    url = first.split("the app is at ", 1)[1].split(";")[0]
    assert "Lancer test page" in fetch(url + "/")
    child.kill()
    child.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            fetch(url + "/")
        except OSError:
            break
        time.sleep(0.2)
    with pytest.raises(OSError):
        fetch(url + "/")
    # and the autouse check finds no Chromium, driver or server left


HOLD_A_BROWSER = """
import time
from lancer.browser.chromium import Chromium
Chromium().browser.new_page().goto("about:blank")
print("up", flush=True)
time.sleep(120)
"""


def test_browser_temp_files_go_with_the_browser_even_after_kill_9() -> None:
    """Killed, Playwright's driver and Chromium leave their temp folders behind (found by
    the soak): they live in a lancer-owned folder that close removes and prune sweeps."""
    from lancer.browser.chromium import Chromium

    temp = Path(tempfile.mkdtemp(prefix="t-", dir="/tmp"))  # short: pytest's tmp_path is too long for Chromium
    # A browser closed normally takes its folder with it.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(temp))
        mp.setattr(tempfile, "tempdir", str(temp))  # Python reads TMPDIR once
        chromium = Chromium()
        chromium.browser.new_page().goto("about:blank")
        (folder,) = temp.iterdir()
        made = sorted(p.name for p in folder.iterdir())
        for prefix in (
            "lancer.pid",
            "org.chromium.Chromium.",
            "playwright-artifacts-",
            "playwright_chromiumdev_profile-",
        ):
            assert any(name.startswith(prefix) for name in made), made
        chromium.close()
    assert list(temp.iterdir()) == []

    # Its owner killed with SIGKILL, the folder stays until a prune (a resumed eval runs one).
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(temp), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD_A_BROWSER], cwd=ROOT, env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    proc.kill()
    proc.wait()
    time.sleep(1)  # the Playwright driver notices its parent gone and kills Chromium
    left = [p.name for p in temp.iterdir()]
    assert len(left) == 1 and left[0].startswith("lancer-cr-"), left
    result = subprocess.run(
        [sys.executable, "-m", "lancer.cli.main", "sandbox", "prune"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert list(temp.iterdir()) == []
    temp.rmdir()


def test_hidden_browser_tests_killed_at_their_timeout_leave_no_temp_folder() -> None:
    """The grader kills hidden tests that overrun: their Chromium's folder goes too (the soak
    found it left behind)."""
    from lancer.browser.webtests import run_browser_tests

    temp = Path(tempfile.mkdtemp(prefix="t-", dir="/tmp"))
    tests = temp.parent / f"{temp.name}-tests"
    (tests / "tests").mkdir(parents=True)
    (tests / "tests" / "test_slow.py").write_text(
        "import time\n\ndef test_slow(page):\n    page.goto('about:blank')\n    time.sleep(120)\n"
    )
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TMPDIR", str(temp))
            mp.setattr(tempfile, "tempdir", str(temp))
            result = run_browser_tests(tests / "tests", "http://127.0.0.1:9", timeout=15)
        assert result.timed_out, result
        assert list(temp.iterdir()) == []
    finally:
        shutil.rmtree(tests)
        shutil.rmtree(temp)
