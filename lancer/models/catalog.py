"""``lancer models``: every provider lancer can load, where it comes from, and whether it loads."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lancer.models import BUILTIN_PROVIDERS, ENTRY_POINT_GROUP


@dataclass
class ProviderInfo:
    name: str
    target: str  # module:factory
    origin: str  # "built-in", or the distribution that registers it
    status: str  # "ok", or why it cannot be used


def list_providers() -> list[ProviderInfo]:
    """Built-ins, then installed plugins (the ``lancer.models`` entry points); each is imported
    to tell whether it loads (a built-in whose SDK is missing says so)."""
    builtins = [EntryPoint(name, target, ENTRY_POINT_GROUP) for name, target in BUILTIN_PROVIDERS.items()]
    providers = [ProviderInfo(ep.name, ep.value, "built-in", _status(ep)) for ep in builtins]
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        status = "shadowed by the built-in of that name" if ep.name in BUILTIN_PROVIDERS else _status(ep)
        origin = f"plugin: {ep.dist.name} {ep.dist.version}" if ep.dist is not None else "plugin"
        providers.append(ProviderInfo(ep.name, ep.value, origin, status))
    return providers


def _status(ep: EntryPoint) -> str:
    try:
        ep.load()
    except Exception as e:  # a plugin's import may fail in any way; the listing goes on
        return f"cannot load: {type(e).__name__}: {e}"
    return "ok"


def print_providers() -> int:
    """The table ``lancer models`` prints."""
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("provider", "from", "factory", "status"):
        table.add_column(column)
    for p in list_providers():
        table.add_row(p.name, p.origin, p.target, Text(p.status, style="green" if p.status == "ok" else "red"))
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    console.print(table)
    console.print("use one as --model PROVIDER:MODEL; a factory not installed: --model package.module:Factory[:MODEL]")
    return 0
