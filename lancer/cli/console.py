"""The one console lancer's commands print their messages to (stderr)."""

from rich.console import Console

console = Console(stderr=True, highlight=False, soft_wrap=True)
