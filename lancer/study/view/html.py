"""Small HTML helpers shared by the eval page and the run pages: escaping, the page shell, figures."""

from __future__ import annotations

import base64
from functools import cache
from html import escape
from importlib.resources import files
from pathlib import Path

# Long text is folded past this: the head stays visible, the rest opens on a click.
FOLD_LINES = 24
FOLD_CHARS = 3000
HEAD_LINES = 12


def esc(value: object) -> str:
    return escape(str(value), quote=True)


@cache
def _asset(name: str) -> str:
    return files("lancer.study.view").joinpath("static", name).read_text(encoding="utf-8")


def page(title: str, body: str, body_class: str, stamp: str | None = None) -> str:
    """A whole page with the stylesheet and script inline: it opens from disk, offline."""
    stamp_attr = f' data-stamp="{esc(stamp)}"' if stamp is not None else ""
    return (
        f'<!doctype html>\n<html lang="en"{stamp_attr}><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{esc(title)}</title>'
        f"<style>{_asset('view.css')}</style></head>\n"
        f'<body class="{body_class}">\n{body}\n'
        + ('<div class="live">live: refreshes as the eval goes on</div>' if stamp is not None else "")
        + f"<script>{_asset('view.js')}</script>\n</body></html>\n"
    )


def folded(text: str, css: str = "") -> str:
    """Text in a <pre>; past FOLD_LINES lines or FOLD_CHARS characters, the rest is folded."""
    lines = text.splitlines(keepends=True)
    cls = f' class="{css}"' if css else ""
    if len(lines) <= FOLD_LINES and len(text) <= FOLD_CHARS:
        return f"<pre{cls}>{esc(text)}</pre>"
    head = "".join(lines[:HEAD_LINES])[:FOLD_CHARS]
    rest = text[len(head) :]
    more = f"{len(rest.splitlines())} more lines, {len(rest):,} characters"
    return f"<pre{cls}>{esc(head)}</pre><details><summary>{more}</summary><pre{cls}>{esc(rest)}</pre></details>"


def image_data_uri(path: Path) -> str:
    kind = "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else path.suffix.lower().lstrip(".") or "png"
    return f"data:image/{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"
