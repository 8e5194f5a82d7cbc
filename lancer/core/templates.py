"""Prompt templates (Jinja, StrictUndefined: a missing variable is an error, not a blank).

The bundled templates live beside this file; a run config's ``prompts:`` section may name
files to use instead. Either way a template is a :class:`Template`: where it came from,
its text and a hash of it (recorded in the trajectory header), and a ``render`` whose
errors are one line naming the file.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2

from lancer.core.errors import LancerError

# The bundled templates: package data of lancer.prompts, read by name so the ground imports nothing above it.
_BUNDLED = "lancer.prompts"


class PromptError(LancerError):
    """A prompt template that cannot be read, parsed or rendered."""


_ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(lambda name: files(_BUNDLED).joinpath(name).read_text(encoding="utf-8")),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
    autoescape=False,  # prompts are plain text for a model, not HTML
)


@dataclass(frozen=True)
class Template:
    # The file's path; bundled templates are named "lancer/prompts/NAME" so a record reads the
    # same on every machine.
    path: str
    text: str
    bundled: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def describe(self) -> dict[str, Any]:
        """What a trajectory header records about the template."""
        return {"path": self.path, "bundled": self.bundled, "sha256": self.sha256}

    def render(self, **context: Any) -> str:
        try:
            return _compile(self).render(**context).strip()
        except jinja2.TemplateError as e:
            raise PromptError(f"prompt template {self.path}: {_describe(e)}") from None


def bundled(name: str) -> Template:
    """One of the templates beside this file (system.j2, ic_swe.j2, swe_manager.j2)."""
    return Template(f"lancer/prompts/{name}", files(_BUNDLED).joinpath(name).read_text(encoding="utf-8"), bundled=True)


def from_file(path: Path) -> Template:
    """A user's template file, checked for syntax now so a mistake stops the run before it starts."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptError(f"prompt template {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PromptError(f"prompt template {path} cannot be read: {e}") from None
    template = Template(str(path), text, bundled=False)
    try:
        _compile(template)
    except jinja2.TemplateSyntaxError as e:
        raise PromptError(f"prompt template {path}: {_describe(e)}") from None
    return template


def render(name: str, **context: Any) -> str:
    """Render a bundled template by name."""
    return bundled(name).render(**context)


def _compile(template: Template) -> jinja2.Template:
    return _compile_text(template.text)


@functools.lru_cache(maxsize=64)
def _compile_text(text: str) -> jinja2.Template:
    """Compiled once per process: compiling is most of a render (about 10 ms a template)."""
    return _ENV.from_string(text)


def _describe(error: jinja2.TemplateError) -> str:
    where = f"line {error.lineno}: " if isinstance(error, jinja2.TemplateSyntaxError) and error.lineno else ""
    message = " ".join(str(error.message or type(error).__name__).split())
    return f"{where}{message}"
