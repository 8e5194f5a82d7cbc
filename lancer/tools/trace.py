"""Reading a Playwright trace as a user's story, and keeping only that story.

A hidden test does two kinds of things: what a user does (open, click, type, press) and
what a tester checks (``expect``, ``is_visible``, ``evaluate``, ...). ``user_tool`` may
show the first kind and never the second: the checks carry the expected values and so the
verdict. ``user_actions`` reads the user's steps and the console errors from a trace zip;
``sanitize`` rewrites a trace zip without the checks, without the Python call stacks
(``trace.stacks`` names the test file, its lines and functions) and without error stacks,
so what is kept in the run directory is no more than what the model was told.

The trace format is Playwright's (one JSON object per line in ``trace.trace``: ``before``
/ ``after`` per call, ``console``, ``event`` for page errors, ``screencast-frame``...).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# (class, method) of the calls that are a user's doing; everything else is a check.
_FRAME_ACTIONS = "goto click dblclick tap fill type press check uncheck setChecked selectOption hover setInputFiles"
_PAGE_ACTIONS = (
    "reload goBack goForward keyboardType keyboardPress keyboardInsertText mouseClick mouseDblclick touchscreenTap"
)
_USER_CALLS = {("Frame", m) for m in (_FRAME_ACTIONS + " dragAndDrop focus").split()} | {
    ("Page", m) for m in _PAGE_ACTIONS.split()
}
_DROPPED_FILES = {"trace.stacks"}


@dataclass
class FlowTrace:
    steps: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


def user_actions(trace_zip: Path) -> FlowTrace:
    """The user's steps (with the reason a step could not be done) and console errors."""
    flow = FlowTrace()
    pending: dict[str, str] = {}
    for event in _events(trace_zip):
        kind = event.get("type")
        if kind == "before" and _is_user_call(event):
            pending[event["callId"]] = _describe(event["method"], event.get("params") or {})
        elif kind == "after" and event.get("callId") in pending:
            step = pending.pop(event["callId"])
            error = (event.get("error") or {}).get("message")
            flow.steps.append(f"{step} (could not be done: {_first_line(error)})" if error else step)
        elif kind == "console" and event.get("messageType") in ("error", "warning"):
            flow.console_errors.append(f"[{event['messageType']}] {event.get('text', '')}")
        elif kind == "event" and event.get("method") == "pageError":
            error = ((event.get("params") or {}).get("error") or {}).get("error") or {}
            flow.console_errors.append(f"[page error] {error.get('name', 'Error')}: {error.get('message', '')}")
    # A call still open when the trace stopped: the flow ended during it.
    flow.steps.extend(f"{step} (unfinished when the flow ended)" for step in pending.values())
    return flow


def sanitize(source: Path, dest: Path) -> None:
    """Copy a trace zip without tester calls, call stacks and error stacks."""
    dropped_calls = {e["callId"] for e in _events(source) if e.get("type") == "before" and not _is_user_call(e)}
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            if item.filename in _DROPPED_FILES:
                continue
            data = zin.read(item)
            if item.filename.endswith(".trace"):
                data = _filter_lines(data, dropped_calls)
            zout.writestr(item, data)


def _filter_lines(data: bytes, dropped_calls: set[str]) -> bytes:
    kept = []
    for line in data.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        call = event.get("callId") or (event.get("snapshot") or {}).get("callId")
        if call in dropped_calls:
            continue
        error = event.get("error")
        if isinstance(error, dict):
            error.pop("stack", None)
        kept.append(json.dumps(event).encode())
    return b"\n".join(kept) + b"\n"


def _events(trace_zip: Path) -> Iterator[dict[str, Any]]:
    with zipfile.ZipFile(trace_zip) as z:
        names = [n for n in z.namelist() if n.endswith(".trace")]
        for name in names:
            for line in z.read(name).splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    yield event


def _is_user_call(event: dict[str, Any]) -> bool:
    return (event.get("class"), event.get("method")) in _USER_CALLS


def _describe(method: str, params: dict[str, Any]) -> str:
    target = _selector(params.get("selector", ""))
    if method == "goto":
        return f"open {params.get('url', '')}"
    if method == "fill":
        value = params.get("value", "")
        return f"type {value!r} into {target}" if value else f"clear {target}"
    if method in ("press", "keyboardPress"):
        return f"press {params.get('key', '')}" + (f" in {target}" if target else "")
    if method in ("type", "keyboardType", "keyboardInsertText"):
        return f"type {params.get('text', '')!r}" + (f" into {target}" if target else "")
    if method == "selectOption":
        options = [o.get("valueOrLabel") or o.get("value") or o.get("label") for o in params.get("options") or []]
        return f"choose {', '.join(map(str, options))} in {target}"
    if method in ("mouseClick", "mouseDblclick"):
        return f"{'double-' if method == 'mouseDblclick' else ''}click at ({params.get('x')}, {params.get('y')})"
    if method in ("reload", "goBack", "goForward"):
        return {"reload": "reload the page", "goBack": "go back", "goForward": "go forward"}[method]
    if method == "dragAndDrop":
        return f"drag {_selector(params.get('source', ''))} to {_selector(params.get('target', ''))}"
    if method == "setInputFiles":
        return f"choose files for {target}"
    verb = {"dblclick": "double-click", "setChecked": "set", "hover": "hover over", "tap": "tap"}.get(method, method)
    return f"{verb} {target}".strip()


def _selector(selector: str) -> str:
    """Playwright's internal selector spelled as a person would write it."""
    selector = selector.replace("internal:", "")
    return re.sub(r'"(i|s)(?=\]|$|\s)', '"', selector)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "failed"
