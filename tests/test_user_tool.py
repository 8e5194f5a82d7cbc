"""``user_tool``: the model sees the user's flow (steps, console errors, last page, screenshot)
and never the verdict nor the test source; the hidden tests never enter the sandbox."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lancer.core.config import BrowserConfig
from lancer.core.tasks import Task, load_task
from lancer.core.tool import ToolResult
from lancer.sandbox import Sandbox, create_sandbox
from lancer.sandbox.app import App
from lancer.tools.user_tool import UserTool, UserToolArgs
from tests.conftest import EXAMPLES
from tests.web_helpers import nothing_left_behind

pytestmark = pytest.mark.browser  # needs Chromium: CI installs it, and these never skip

TODO = EXAMPLES / "web-todo-delete"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Words that would give the verdict away, in any case.
VERDICT_WORDS = re.compile(r"\b(pass|passed|passes|fail|failed|fails|failure|assert\w*|expect\w*|exit code)\b", re.I)


@pytest.fixture(autouse=True)
def _nothing_outlives_the_test() -> Iterator[None]:
    with nothing_left_behind():
        yield


@pytest.fixture
def task() -> Task:
    return load_task(TODO)


def hidden_source_lines(task: Task) -> list[str]:
    """Every distinctive line of the hidden tests: none may reach the model or the run dir."""
    assert task.tests_dir is not None
    lines = []
    for path in task.tests_dir.rglob("*.py"):
        lines += [line.strip() for line in path.read_text().splitlines() if len(line.strip()) > 15]
    return lines


def run_user_tool(task: Task, kind: str, out: Path, fixed: bool, supports_images: bool = True) -> ToolResult:
    assert task.app is not None and task.tests_dir is not None
    sandbox: Sandbox = create_sandbox(kind, task.sandbox_spec(for_agent=True))
    app = App(sandbox, task.app)
    tool = UserTool(app, task.tests_dir, out, supports_images, BrowserConfig(), 20_000)
    try:
        if fixed:
            script = f"{sandbox.workdir}/app.js"
            code = sandbox.read_file(script).replace(b"todos[index + 1]", b"todos[index]")
            sandbox.write_file(script, code)
        result = tool.run(UserToolArgs())
        # The hidden tests ran on the host: nothing of them reached the working tree.
        listing = sandbox.exec(["find", ".", "-name", "*.py", "-not", "-path", "./.git/*"]).stdout.decode()
        assert "test_" not in listing
        changed = sandbox.exec(["git", "status", "--porcelain"]).stdout.decode()
        assert changed.strip() == ("M app.js" if fixed else "")
        return result
    finally:
        tool.close()
        sandbox.close()


def assert_no_verdict(task: Task, result: ToolResult, out: Path) -> None:
    assert not VERDICT_WORDS.search(result.output), result.output
    for line in hidden_source_lines(task):
        assert line not in result.output
    # What is kept in the run directory tells no more than the model was told.
    for kept in (out / "user_tool").rglob("*"):
        if kept.suffix == ".zip":
            with zipfile.ZipFile(kept) as z:
                assert "trace.stacks" not in z.namelist()
                text = b"".join(z.read(n) for n in z.namelist() if n.endswith((".trace", ".network"))).decode()
        elif kept.suffix == ".txt":
            text = kept.read_text()
        else:
            continue
        assert '"method": "expect"' not in text and "to_have_text" not in text and "test_delete" not in text
        for line in hidden_source_lines(task):
            assert line not in text


def test_the_unfixed_flow_shows_the_bug_but_not_the_verdict(task: Task, tmp_path: Path) -> None:
    result = run_user_tool(task, "local", tmp_path, fixed=False)
    out = result.output
    assert "Flow 1:" in out and "Flow 2:" in out
    assert "type 'eggs' into #title" in out
    assert "click role=button[name='Delete eggs']" in out
    # Flow 1: the wrong todo went; flow 2: the last todo cannot be deleted.
    assert "[page error] TypeError: Cannot read properties of undefined (reading 'id')" in out
    assert len(result.images) == 2
    for image in result.images:
        assert Path(image).read_bytes().startswith(PNG_MAGIC)
        assert Path(image).parent == tmp_path / "user_tool" / "call-1"
    assert_no_verdict(task, result, tmp_path)


def test_the_fixed_flow_looks_the_same_way_and_tells_no_verdict_either(task: Task, tmp_path: Path) -> None:
    result = run_user_tool(task, "local", tmp_path, fixed=True, supports_images=False)
    out = result.output
    assert "no console errors" in out and "TypeError" not in out
    assert "0 items left" in out  # the last page of flow 2, as the user saw it
    assert result.images == []  # a text-only model: paths and page text instead
    assert str(tmp_path / "user_tool" / "call-1" / "flow-1.png") in out
    assert_no_verdict(task, result, tmp_path)


def test_user_tool_with_the_app_in_docker(task: Task, tmp_path: Path) -> None:
    result = run_user_tool(task, "docker", tmp_path, fixed=False)
    assert "[page error] TypeError" in result.output
    assert len(result.images) == 2
    assert_no_verdict(task, result, tmp_path)
