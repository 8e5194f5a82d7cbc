"""Prompt templates (Jinja, StrictUndefined: a missing variable is an error, not a blank)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import jinja2

_ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(lambda name: files(__name__).joinpath(name).read_text(encoding="utf-8")),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
    autoescape=False,  # prompts are plain text for a model, not HTML
)


def render(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(**context).strip()
