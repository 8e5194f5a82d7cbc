"""One run as a page: the task, every step (text, calls, outputs, screenshots, tokens, cost,
time, retries), the final patch as a diff, and the grade. Steps are anchored ``#step-N``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lancer.core.dollars import earned_of
from lancer.core.errors import LancerError
from lancer.core.records import RunRecord, locate_run_file, run_file_tail, saved_pngs
from lancer.core.text import money, price_text
from lancer.study.tally import verdict
from lancer.study.view.html import esc, folded, image_data_uri, page, seconds


def render_run_page(
    run: RunRecord,
    back: tuple[str, str] | None = None,
    stamp: str | None = None,
    task_source: dict[str, Any] | None = None,
) -> str:
    """The page's HTML; ``back`` is (href, label) of the eval page it was opened from."""
    task = {**run.task, **_task_text(run, task_source)}
    result = run.result or {}
    crumbs = f'<div class="crumbs"><a href="{esc(back[0])}">← {esc(back[1])}</a></div>' if back else ""
    title = task.get("title") or task.get("id", run.dir.name)
    header = (
        f'<header class="top">{crumbs}<h1>{esc(title)}</h1>'
        f'<div class="muted">{esc(task.get("id", "?"))} · {esc(task.get("variant", "?"))} · '
        f"{price_text(task.get('price'), 0)} · {esc(run.header.get('model', '?'))} · "
        f"started {esc(run.header.get('started_at', '?'))}</div></header>"
    )
    nav = "".join(_nav_link(step) for step in run.steps)
    body = [
        header,
        '<div class="layout">',
        f'<nav class="steps" aria-label="steps"><a href="#task">task</a>{nav}'
        '<a href="#patch">patch</a><a href="#grade">grade</a></nav>',
        "<main>",
        _task_section(task, result),
        _outcome_section(run),
        '<section id="steps"><h2>Steps</h2>',
        *(_step(run.dir, step) for step in run.steps),
        "</section>",
        _patch_section(run.patch),
        _grade_section(result.get("grade")),
        "</main></div>",
    ]
    return page(f"{task.get('id', run.dir.name)} · lancer view", "\n".join(body), "run", stamp)


def _nav_link(step: dict[str, Any]) -> str:
    n = step.get("step")
    observations = step.get("observations", [])
    classes = " ".join(
        c
        for c, on in (
            ("err", any(o.get("is_error") for o in observations)),
            ("shot", any(o.get("images") or o.get("saved_images") for o in observations)),
        )
        if on
    )
    return f'<a href="#step-{n}" class="{classes}">step {n}</a>'


def _task_section(task: dict[str, Any], result: dict[str, Any]) -> str:
    parts = ['<section id="task"><h2>Task</h2>']
    if task.get("description"):
        parts.append(f'<div class="thought description">{esc(task["description"])}</div>')
    else:
        parts.append('<p class="muted">(the task text is not in this run, and its task folder was not found)</p>')
    chosen = (result.get("answer") or {}).get("proposal_id")
    for proposal in task.get("proposals") or []:
        is_chosen = proposal.get("id") == chosen
        mark = ' <span class="badge v-running">chosen</span>' if is_chosen else ""
        parts.append(
            f'<div class="proposal{" chosen" if is_chosen else ""}"><b>Proposal {esc(proposal.get("id"))}</b>{mark}'
            f'<div class="thought">{esc(proposal.get("content", ""))}</div></div>'
        )
    parts.append("</section>")
    return "\n".join(parts)


def _outcome_section(run: RunRecord) -> str:
    result = run.result
    if result is None and "atif" in run.header:
        return _atif_outcome(run)
    if result is None:
        state = "running (or ended without writing result.json)"
        badge = f'<span class="badge v-running">{esc(state)}</span>'
        return f'<section id="outcome"><h2>Outcome</h2><p>{badge}</p></section>'
    v = verdict(result)
    facts = [
        ("verdict", f'<span class="badge v-{v}">{esc(v)}</span>'),
        ("earned", earned_of(result.get("earned"), result.get("price"))),
        ("exit", esc(result.get("exit_status"))),
        ("why it ended", esc(result.get("detail", ""))),
        ("steps", esc(result.get("steps"))),
        ("cost", money(result.get("cost_usd"), 4)),
        ("tokens", f"{result.get('input_tokens', 0):,} in / {result.get('output_tokens', 0):,} out"),
        ("duration", seconds(result.get("duration_s"))),
        ("sandbox", esc(result.get("sandbox", "?"))),
    ]
    final_events = (run.final or {}).get("events") or []
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    return f'<section id="outcome"><h2>Outcome</h2><table>{rows}</table>{_events(final_events)}</section>'


def _atif_outcome(run: RunRecord) -> str:
    """Another agent's ATIF trajectory: who wrote it and its final metrics; no lancer verdict."""
    atif, final = run.header["atif"], run.final or {}
    facts = [
        ("trajectory", f"{esc(atif['schema_version'])} by {esc(atif['agent'])}"),
        ("session", esc(atif.get("session_id"))),
        ("verdict", '<span class="muted">not recorded (no lancer result)</span>')
        if atif.get("reward") is None
        else ("reward", esc(f"{atif['reward']:g} (the Harbor trial's verifier)")),
        ("steps", esc(final.get("steps"))),
        ("cost", money(final.get("cost_usd"), 4)),
        ("tokens", f"{final.get('input_tokens') or 0:,} in / {final.get('output_tokens') or 0:,} out"
         f" ({final.get('cache_read_tokens') or 0:,} cached)"),
    ]  # fmt: skip
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    return f'<section id="outcome"><h2>Outcome</h2><table>{rows}</table></section>'


def _step(run_dir: Path, step: dict[str, Any]) -> str:
    n = step.get("step")
    usage = step.get("usage") or {}
    cost = usage.get("cost_usd")
    facts = (
        f"{seconds(step.get('duration_s'))} (model {seconds(step.get('model_duration_s'))}) · "
        f"{usage.get('input_tokens', 0):,} in / {usage.get('output_tokens', 0):,} out"
        + (f" · {usage['cache_read_tokens']:,} cached" if usage.get("cache_read_tokens") else "")
        + f" · {money(cost, 4)}"
    )
    parts = [
        f'<article class="step" id="step-{n}"><h3><a href="#step-{n}">Step {n}</a>'
        f'<span class="facts">{facts}</span></h3>'
    ]
    parts.append(_events(step.get("events") or []))
    if step.get("content"):
        parts.append(f'<div class="thought">{esc(step["content"])}</div>')
    observations = step.get("observations") or []
    for i, call in enumerate(step.get("tool_calls") or []):
        seen = observations[i] if i < len(observations) else {}
        parts.append(_call(run_dir, call, seen))
    if not step.get("tool_calls"):
        parts.append('<p class="muted">(no tool call)</p>')
    parts.append("</article>")
    return "".join(parts)


def _call(run_dir: Path, call: dict[str, Any], seen: dict[str, Any]) -> str:
    arguments = call.get("arguments") or {}
    inline, blocks = [], []
    for key, value in arguments.items() if isinstance(arguments, dict) else [("arguments", arguments)]:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if "\n" in text or len(text) > 100:
            blocks.append(f'<div class="args">{esc(key)}:</div>{folded(text)}')
        else:
            inline.append(f"{esc(key)}={esc(text)}")
    error = " is-error" if seen.get("is_error") else ""
    output = seen.get("output", "")
    return (
        f'<div class="call{error}"><span class="name">{esc(call.get("name", "?"))}</span> '
        f'<span class="args">{" ".join(inline)}</span>{"".join(blocks)}'
        f"{folded(output) if output else ''}{_images(run_dir, seen)}</div>"
    )


def _images(run_dir: Path, seen: dict[str, Any]) -> str:
    shown, done = [], set()
    attached = [str(p) for p in seen.get("images") or []]
    # Named in the output, or (a trajectory read from ATIF) listed apart as not sent to the model.
    named = [p for p in [*saved_pngs(seen.get("output", "")), *seen.get("saved_images", [])] if p not in attached]
    for raw, note in [(p, "") for p in attached] + [
        (p, " (saved by the tool; not attached to the model)") for p in named
    ]:
        path = locate_run_file(run_dir, raw)
        if path is None:
            if not note:
                shown.append(f'<p class="muted">screenshot {esc(raw)} is missing</p>')
            continue
        tail = run_file_tail(str(path)) or path
        if tail in done:  # one file named twice (its old path in the output, its copy beside an export)
            continue
        done.add(tail)
        shown.append(
            f'<figure><img class="shot" loading="lazy" alt="screenshot {esc(path.name)}" '
            f'src="{image_data_uri(path)}"><figcaption class="muted">{esc(path.name)}{esc(note)}</figcaption></figure>'
        )
    return "".join(shown)


def _events(events: list[dict[str, Any]]) -> str:
    if not events:
        return ""
    items = []
    for event in events:
        kind = event.get("type", "event")
        if kind == "retry":
            items.append(
                f"retry {esc(event.get('attempt'))}: {esc(event.get('error'))} (waited {esc(event.get('wait_s'))} s)"
            )
        elif kind == "thinking":
            items.append(f"<details><summary>thinking</summary>{folded(str(event.get('text', '')))}</details>")
        else:
            rest = {k: v for k, v in event.items() if k != "type"}
            items.append(f"{esc(kind)}: {esc(rest.get('detail') or json.dumps(rest, ensure_ascii=False))}")
    return '<div class="events">' + "<br>".join(items) + "</div>"


def _patch_section(patch: str) -> str:
    if not patch.strip():
        return '<section id="patch"><h2>Patch</h2><p class="muted">(no change)</p></section>'
    lines = []
    for line in patch.splitlines():
        if line.startswith(("diff --git", "+++", "---", "index ")):
            css = "file"
        elif line.startswith("@@"):
            css = "hunk"
        elif line.startswith("+"):
            css = "add"
        elif line.startswith("-"):
            css = "del"
        else:
            css = ""
        lines.append(f'<span class="{css}">{esc(line) or " "}</span>')
    return f'<section id="patch"><h2>Patch</h2><pre class="diff">{"".join(lines)}</pre></section>'


def _grade_section(grade: dict[str, Any] | None) -> str:
    if not grade:
        return '<section id="grade"><h2>Grade</h2><p class="muted">(not graded)</p></section>'
    parts = [
        f'<section id="grade"><h2>Grade</h2><p><span class="outcome-{esc(grade.get("status"))}">'
        f"<b>{esc(grade.get('status'))}</b></span> · {esc(grade.get('detail', ''))} · "
        f"test runs: {esc(grade.get('attempts', 0))}</p>"
    ]
    tests = grade.get("tests") or []
    if tests:
        rows = "".join(
            f'<tr><td>{esc(t.get("name"))}</td><td class="outcome-{esc(outcome)}">{esc(outcome)}</td></tr>'
            for t in tests
            for outcome in [t.get("outcome")]
        )
        parts.append(f'<table class="tests"><tr><th>test</th><th>outcome</th></tr>{rows}</table>')
    if grade.get("output_tail"):
        parts.append(f'<div class="muted">the tests\' output (tail):</div>{folded(grade["output_tail"])}')
    parts.append("</section>")
    return "".join(parts)


def _task_text(run: RunRecord, source: dict[str, Any] | None) -> dict[str, Any]:
    """Description and proposals: from the trajectory if recorded, else from the task's folder."""
    if run.task.get("description"):
        return {}
    for where in (run.task.get("source"), run.header.get("task_source"), source):
        task = _load_task_from(where)
        if task is not None:
            return {
                "description": task.description,
                "proposals": [p.model_dump() for p in task.proposals] if task.proposals else [],
            }
    return {}


def _load_task_from(where: object) -> Any:
    """The task a run's header (or its eval.json entry) names, or None if it is not found."""
    from lancer.agent.provenance import load_recorded_task

    if not isinstance(where, dict):
        return None
    try:
        return load_recorded_task({"task_source": where}, Path("trajectory.jsonl"))
    except (LancerError, OSError, KeyError):
        return None
