"""An eval as a page: its summary, its plots, and a tasks x attempts table that sorts and
filters (variant, verdict, error), each cell linking to its attempt's run page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lancer.core.dollars import dollars_text
from lancer.core.records import EvalRecord
from lancer.core.text import money, pass_at, percent, price_text
from lancer.eval.attempt import ERROR_EXIT_STATUSES
from lancer.eval.metrics import BREAKDOWNS
from lancer.study import tally
from lancer.study.view.html import esc, page, seconds


def render_eval_page(
    ev: EvalRecord,
    run_href: Callable[[dict[str, Any]], str],
    plots: list[tuple[str, str]],
    stamp: str | None = None,
    titles: dict[str, str] | None = None,
) -> str:
    """``run_href`` gives a row's run page link; ``plots`` are (title, image src) pairs;
    ``titles`` the task titles the eval's spec lacks, from its runs."""
    summary = tally.eval_summary(ev)
    rows = ev.rows + ev.running
    spec = ev.spec
    head = (
        f'<header class="top"><h1>Eval {esc(ev.name)}</h1><div class="muted">{esc(ev.model)} · '
        f"{len(ev.tasks())} tasks &times; {len(ev.attempt_numbers())} attempts · "
        f"{len(ev.rows)} finished, {len(ev.running)} running · eval {esc(summary.get('status', 'starting'))} · "
        f"lancer {esc(spec.get('lancer_version', '?'))}"
        f"</div>{_command(spec)}</header>"
    )
    body = [
        head,
        "<main>",
        _cards(summary["overall"], ev),
        _attempts_table(ev, rows, run_href, titles or {}),
        _variants(summary),
        _errors(summary["overall"]),
    ]
    if plots:
        images = "".join(
            f'<figure><img alt="{esc(t)}" src="{src}"><figcaption>{esc(t)}</figcaption></figure>' for t, src in plots
        )
        body.append(f'<h2>Plots</h2><div class="plots">{images}</div>')
    body.append("</main>")
    return page(f"eval {ev.name} · lancer view", "\n".join(body), "eval", stamp)


def _command(spec: dict[str, Any]) -> str:
    command = spec.get("command")
    if not command:
        return ""
    text = " ".join(command) if isinstance(command, list) else str(command)
    return f'<div class="muted"><code>{esc(text)}</code></div>'


def _cards(summary: dict[str, Any], ev: EvalRecord) -> str:
    cards: list[tuple[str, str]] = []
    short = summary.get("pass_at_short") or {}
    for k, value in (summary.get("pass_at") or {}).items():
        cards.append((f"pass@{k}", esc(pass_at(value, short.get(k, 0)))))
    real = tally.dollars(ev.rows)
    cards += [
        ("earned (expected, 1 attempt)", price_text(summary.get("earned"))),
        ("possible", dollars_text(summary.get("possible"), summary.get("unpriced_tasks", 0))),
        ("earn rate", percent(summary.get("earn_rate"))),
        ("cost", money(summary.get("cost_usd"), 4)),
        ("cost per resolved", money(summary.get("cost_per_resolved"), 4)),
        ("ROI", "-" if summary.get("roi") is None else f"{summary['roi']:,.1f}&times;"),
        ("earned, all attempts", dollars_text(real["earned"], real["unpriced_tasks"])),
        ("errors", str(summary.get("errors", 0))),
        ("not run", str(summary.get("not_run", 0))),
        ("graded attempts", str(summary.get("graded", "-"))),
        ("interrupted", str(summary.get("interrupted", 0))),
    ]
    html = "".join(f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{v}</div></div>' for k, v in cards)
    return f'<h2>Summary</h2><div class="cards" id="summary">{html}</div>'


def _variants(summary: dict[str, Any]) -> str:
    groups = {f"{label} {k}": v for key, _, label in BREAKDOWNS for k, v in (summary.get(key) or {}).items()}
    if not groups:
        return ""
    head = (
        "<tr><th>group</th><th>tasks</th><th>attempts</th><th>pass@1</th><th>earned</th><th>possible</th>"
        "<th>earn rate</th><th>cost</th><th>ROI</th><th>errors</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td class=num>{esc(g.get('tasks', '-'))}</td>"
        f"<td class=num>{esc(g.get('attempts', '-'))}</td>"
        f"<td class=num>{percent((g.get('pass_at') or {}).get('1'))}</td>"
        f"<td class=num>{price_text(g.get('earned'))}</td>"
        f"<td class=num>{dollars_text(g.get('possible'), g.get('unpriced_tasks', 0))}</td>"
        f"<td class=num>{percent(g.get('earn_rate'))}</td><td class=num>{money(g.get('cost_usd'), 4)}</td>"
        f"<td class=num>{'-' if g.get('roi') is None else format(g['roi'], ',.1f') + '&times;'}</td>"
        f"<td class=num>{esc(g.get('errors', 0))}</td></tr>"
        for name, g in groups.items()
    )
    return f'<h2>By variant and set</h2><table id="groups">{head}{rows}</table>'


def _errors(summary: dict[str, Any]) -> str:
    details = summary.get("error_details") or []
    if not details:
        return ""
    items = "".join(
        f"<li>{esc(d.get('task_id'))} attempt {esc(d.get('attempt'))}: {esc(d.get('exit_status', ''))} "
        f"{esc(d.get('reason', ''))}</li>"
        for d in details
    )
    return f"<h2>Errors (not counted as failures)</h2><ul>{items}</ul>"


def _attempts_table(
    ev: EvalRecord, rows: list[dict[str, Any]], run_href: Callable[[dict[str, Any]], str], titles: dict[str, str]
) -> str:
    numbers = ev.attempt_numbers()
    by_cell = {(str(r["task_id"]), int(r["attempt"])): r for r in rows}
    variants = sorted({str(t.get("variant")) for t in ev.tasks() if t.get("variant")})
    errors = sorted({_error_kind(r) for r in rows if tally.verdict(r) == "error"})
    body = []
    for task in ev.tasks():
        cells = [by_cell.get((task["id"], n)) for n in numbers]
        present = [c for c in cells if c is not None]
        verdicts = {tally.verdict(c) for c in present}
        resolved = sum(1 for c in present if tally.verdict(c) == "resolved")
        graded = sum(1 for c in present if tally.is_graded(c))
        cost = sum(c.get("cost_usd") or 0.0 for c in present)
        earned = tally.dollars(present)["earned"] if task.get("price") is not None else None
        title = task.get("title") or titles.get(task["id"], "")
        body.append(
            f'<tr id="task-{esc(task["id"])}" data-variant="{esc(task.get("variant") or "")}" '
            f'data-verdicts="{esc(" ".join(sorted(verdicts)))}" '
            f'data-errors="{esc("|".join(sorted({_error_kind(c) for c in present if tally.verdict(c) == "error"})))}" '
            f'data-text="{esc((task["id"] + " " + title).lower())}">'
            f'<td><b>{esc(task["id"])}</b><div class="muted">{esc(title)}</div></td>'
            f"<td>{esc(task.get('variant') or '-')}</td>"
            f'<td class="num" data-sort="{task["price"] or -1}">{price_text(task["price"], 0)}</td>'
            f'<td class="num" data-sort="{resolved / graded if graded else -1}">{resolved}/{graded}</td>'
            f'<td class="num" data-sort="{-1 if earned is None else earned}">{price_text(earned, 0)}</td>'
            f'<td class="num" data-sort="{cost}">{money(cost, 4)}</td>'
            + "".join(_cell(c, run_href) for c in cells)
            + "</tr>"
        )
    attempt_heads = "".join(f'<th class="sortable" data-numeric="1">attempt {n}</th>' for n in numbers)
    head = (
        '<tr><th class="sortable">task</th><th class="sortable">variant</th><th class="sortable num">price</th>'
        '<th class="sortable num">resolved</th><th class="sortable num">earned</th><th class="sortable num">cost</th>'
        f"{attempt_heads}</tr>"
    )
    filters = (
        '<div class="filters">'
        + _select("variant", variants)
        + _select("verdict", list(tally.VERDICTS))
        + _select("error", errors)
        + '<label>search <input data-filter="text" placeholder="task id or title"></label>'
        + '<span id="shown" class="muted"></span></div>'
    )
    return (
        f'<h2>Tasks &times; attempts</h2>{filters}<table id="attempts"><thead>{head}</thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _select(name: str, options: list[str]) -> str:
    choices = "".join(f'<option value="{esc(o.lower())}">{esc(o)}</option>' for o in options)
    return f'<label>{name} <select data-filter="{name}"><option value="">all</option>{choices}</select></label>'


def _error_kind(row: dict[str, Any]) -> str:
    if row.get("exit_status") in ERROR_EXIT_STATUSES:
        return str(row["exit_status"])
    return "grade error"


def _cell(row: dict[str, Any] | None, run_href: Callable[[dict[str, Any]], str]) -> str:
    if row is None:
        return '<td class="cell empty" data-sort="-1">not run</td>'
    v = tally.verdict(row)
    rank = {"resolved": 4, "failed": 3, "running": 2, "interrupted": 1, "error": 0}[v]
    cost = row.get("cost_usd")
    facts = (
        f"{price_text(row.get('earned') if v == 'resolved' or row.get('price') is None else 0.0, 0)} · "
        f"{money(cost, 4)} · "
        f"{esc(row.get('steps', '-'))} steps · {seconds(row.get('duration_s'))}"
    )
    detail = str(row.get("detail") or "")
    why = "" if v in ("resolved", "running") or not detail or detail == row.get("exit_status") else detail
    short = f" · {esc(why[:80])}{'…' if len(why) > 80 else ''}" if why else ""
    return (
        f'<td class="cell v-{v}" data-sort="{rank}"><a href="{esc(run_href(row))}" '
        f'title="open attempt {esc(row["attempt"])} of {esc(row["task_id"])}{": " + esc(why) if why else ""}">'
        f'<span class="badge">{v}</span><div class="facts">{facts}</div>'
        f'<div class="facts">exit: {esc(row.get("exit_status"))}{short}</div></a></td>'
    )
