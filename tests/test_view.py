"""`lancer view`: the pages a user opens, driven in real Chromium through Playwright.

The eval is three bundled tasks x 2 attempts run for real (tests/study_helpers.py): the web
task's first attempt through the Anthropic protocol, so its screenshots are in the trajectory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page

from lancer.browser.chromium import Chromium
from lancer.core.records import read_run
from lancer.study.view.run_page import render_run_page
from tests.conftest import lancer_argv, run_lancer
from tests.study_helpers import build_bundled_eval

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def bundled_eval(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundled_eval(tmp_path_factory.mktemp("study") / "eval")


def descendants() -> set[int]:
    """This test process's live descendants (others' processes on a shared machine are no concern)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.fixture
def page() -> Iterator[tuple[Page, list[str]]]:
    """A Chromium page and the problems it reports: console errors, page errors, and any
    request that leaves the files (the pages must work offline)."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    before = descendants()  # an earlier test's leftovers are that test's concern
    chromium = Chromium()
    try:
        browser = chromium.browser
        tab = browser.new_page(viewport={"width": 1280, "height": 800})
        tab.on("console", on_console)
        tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        tab.on(
            "request",
            lambda r: (
                None
                if r.url.startswith(("file:", "data:", "http://127.0.0.1"))
                else problems.append(f"request: {r.url}")
            ),
        )
        yield tab, problems
    finally:
        chromium.close()
    deadline = time.monotonic() + 5
    while descendants() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not descendants() - before, "Chromium, Playwright's driver or the server outlived the test"


def test_eval_page_opens_a_run_that_shows_its_screenshots_and_steps(
    bundled_eval: Path, tmp_path: Path, page: tuple[Page, list[str]]
) -> None:
    out = tmp_path / "site" / "eval.html"
    proc = run_lancer("view", str(bundled_eval), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    tab, problems = page
    tab.goto(out.as_uri())
    assert tab.title() == "eval eval · lancer view"
    assert tab.locator("#attempts tbody tr").count() == 3
    assert tab.locator("#summary").inner_text().count("pass@") == 2
    assert tab.locator(".plots img").count() == 4

    # Filters: the only task with an error is the web task (its second attempt's model error).
    tab.select_option("select[data-filter=verdict]", "error")
    assert tab.locator("#attempts tbody tr:visible").all_inner_texts()[0].startswith("web-todo-delete")
    assert tab.locator("#attempts tbody tr:visible").count() == 1
    tab.select_option("select[data-filter=verdict]", "")
    tab.select_option("select[data-filter=variant]", "swe_manager")
    assert tab.locator("#attempts tbody tr:visible").count() == 1
    tab.select_option("select[data-filter=variant]", "")
    # Sorting by price, highest first on the second click.
    tab.click("#attempts th:has-text('price')")
    tab.click("#attempts th:has-text('price')")
    assert tab.locator("#attempts tbody tr").first.get_attribute("id") == "task-manager-date-format"

    tab.click("#task-web-todo-delete td.cell.v-resolved a")
    tab.wait_for_load_state()
    assert tab.url.endswith("/web-todo-delete/1.html")
    assert "Deleting a todo removes the wrong one" in tab.locator("h1").inner_text()
    assert "Steps to reproduce" in tab.locator("#task").inner_text()  # the task text, from its folder
    assert "retry 1: 429" in tab.locator("#step-1").inner_text()  # the rate limit the run went through

    # A step link jumps to its step, and that step's screenshot is displayed.
    tab.click("nav.steps a[href='#step-3']")
    assert tab.url.endswith("#step-3")
    top = tab.evaluate("document.getElementById('step-3').getBoundingClientRect().top")
    assert 0 <= top < 50
    shot = tab.locator("#step-3 img.shot").first
    shot.scroll_into_view_if_needed()
    assert shot.is_visible()
    assert tab.evaluate("(img) => img.complete && img.naturalWidth", shot.element_handle()) == 1280
    assert "removeTodo(todos[index].id);" in tab.locator("#patch .add").all_inner_texts()[-1]
    assert "passed" in tab.locator("#grade").inner_text()

    tab.click("header .crumbs a")  # back to the eval, at the task's row
    tab.wait_for_load_state()
    assert tab.url.endswith("eval.html#task-web-todo-delete")
    assert problems == []


def test_a_manager_run_page_shows_the_proposals_and_the_choice(bundled_eval: Path) -> None:
    html = render_run_page(
        read_run(bundled_eval / "runs" / "manager-date-format" / "2"),
        task_source={"folder": str(Path("examples/tasks/manager-date-format").resolve())},
    )
    proposals = re.findall(r'<div class="proposal( chosen)?"><b>Proposal (\d)</b>', html)
    assert proposals == [("", "1"), ("", "2"), (" chosen", "3")]
    assert "chose proposal 3" in html


def test_run_page_lists_each_test_outcome_and_folds_long_outputs(bundled_eval: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(bundled_eval / "runs" / "invoice-discount" / "1", run_dir)
    result = json.loads((run_dir / "result.json").read_text())
    result["grade"]["tests"] = [
        {"name": "test_discount_before_tax", "outcome": "passed"},
        {"name": "test_never_negative", "outcome": "failed"},
    ]
    (run_dir / "result.json").write_text(json.dumps(result))
    with (run_dir / "trajectory.jsonl").open("a") as f:  # a step with a 200-line output
        step = {
            "type": "step",
            "step": 6,
            "content": "",
            "usage": {},
            "events": [],
            "tool_calls": [{"id": "c", "name": "bash", "arguments": {"command": "seq 200"}}],
            "observations": [
                {"name": "bash", "output": "".join(f"{i}\n" for i in range(1, 201)), "images": [], "is_error": False}
            ],
        }
        f.write(json.dumps(step) + "\n")
    html = render_run_page(read_run(run_dir))
    assert '<td>test_never_negative</td><td class="outcome-failed">failed</td>' in html
    assert '<td>test_discount_before_tax</td><td class="outcome-passed">passed</td>' in html
    step6 = html[html.index('id="step-6"') :]
    assert "<pre>1\n2\n" in step6 and "<summary>188 more lines" in step6


def test_a_lone_web_run_shows_the_screenshots_its_tools_saved(tmp_path: Path) -> None:
    task = Path("examples/tasks/web-todo-delete").resolve()
    run = tmp_path / "run"
    proc = run_lancer("run", str(task), "--model", f"scripted:{task / 'solution.yaml'}", "--out", str(run))
    assert proc.returncode == 0, proc.stderr
    proc = run_lancer("view", str(run))
    assert proc.returncode == 0, proc.stderr
    html = (run / "view.html").read_text()
    # A text-only model is sent no image; the page still shows what the browser and the user saw.
    assert html.count("(saved by the tool; not attached to the model)") == 3  # shot-001, flow-1, flow-2
    assert html.count('src="data:image/png;base64,') == 3
    assert not re.search(r'(src|href)="https?://', html)


def test_serve_reloads_the_page_when_the_eval_writes_a_result(
    bundled_eval: Path, tmp_path: Path, page: tuple[Page, list[str]]
) -> None:
    live = tmp_path / "eval"
    shutil.copytree(bundled_eval, live)
    results = live / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:-1]))  # the web task's second attempt is still running
    server = subprocess.Popen(lancer_argv("view", str(live), "--serve"), stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == str(live / "view.html")
        url = re.search(r"http://127\.0\.0\.1:\d+/\S+", server.stdout.readline())
        assert url is not None
        tab, problems = page
        tab.goto(url.group(0))
        cell = tab.locator("#task-web-todo-delete td.cell").nth(1)
        assert cell.locator(".badge").inner_text() == "running"
        with results.open("a") as f:
            f.write(lines[-1])
        tab.wait_for_function(
            "document.querySelectorAll('#task-web-todo-delete td.cell')[1].innerText.startsWith('error')",
            timeout=15_000,
        )
        with urllib.request.urlopen(url.group(0).rsplit("/", 1)[0] + "/__stamp?view.html", timeout=5) as response:
            assert response.read().decode().isdigit()
        assert problems == []
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0


def test_view_of_a_folder_that_holds_no_run_is_one_clear_line(tmp_path: Path) -> None:
    proc = run_lancer("view", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"lancer: error: {tmp_path} is neither a run directory (trajectory.jsonl) nor an eval directory (eval.json)"
        " nor an ATIF trajectory (trajectory.json)"
    )


def test_the_benchmarks_thousand_step_run_has_every_step_and_screenshot(tmp_path: Path) -> None:
    from scripts.bench_view import make_long_run  # its speed: python scripts/bench_view.py

    run_dir = make_long_run(tmp_path / "long", steps=1000)
    proc = run_lancer("view", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    html = (run_dir / "view.html").read_text()
    assert html.count('<article class="step" id="step-') == 1000
    assert html.count('<img class="shot"') == 40
