"""Shared by the browser tests: a small web app, and the check that nothing outlives a test."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# What a browser test may start: Chromium, Playwright's driver, the test apps' servers.
_WATCHED = re.compile(rb"chrom|playwright|http\.server|server\.py")

INDEX_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Lancer test page</title><link rel="icon" href="data:,"></head>
<body>
  <input id="name" placeholder="name">
  <button id="add" onclick="add()">Add</button>
  <button id="bad" onclick="boom()">Break</button>
  <ul id="list"></ul>
  <p id="version"></p>
  <a href="/two.html">to page two</a>
  <script src="app.js"></script>
  <script>
    function add() {
      const li = document.createElement("li");
      li.textContent = document.getElementById("name").value;
      document.getElementById("list").appendChild(li);
      console.log("added " + li.textContent);
    }
    function boom() { console.error("about to break"); null.property; }
  </script>
</body></html>
"""


def make_web_repo(root: Path) -> Path:
    """A static site: index.html (form, list, a button that throws), app.js, two.html."""
    repo = root / "webrepo"
    repo.mkdir(parents=True)
    (repo / "index.html").write_text(INDEX_HTML)
    (repo / "app.js").write_text('document.getElementById("version").textContent = "version 1";\n')
    (repo / "two.html").write_text("<!doctype html><title>Page two</title><h1>Second page</h1>")
    return repo


def live_processes() -> dict[int, str]:
    """Watched processes alive now (zombies are dead already: only their exit status is left)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state = stat.rsplit(")", 1)[1].split()[0]
        if state != "Z" and _WATCHED.search(cmdline):
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")[:200]
    return found


@contextmanager
def nothing_left_behind(grace_s: float = 5.0) -> Iterator[None]:
    """Fails if a Chromium, Playwright driver or app process started inside outlives it."""
    before = set(live_processes())
    yield
    deadline = time.monotonic() + grace_s
    while True:
        new = {pid: cmd for pid, cmd in live_processes().items() if pid not in before}
        if not new:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"processes outlived the test: {new}")
        time.sleep(0.1)
