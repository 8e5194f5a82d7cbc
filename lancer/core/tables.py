"""Tables of figures that never cut a figure, whatever the terminal's width.

rich fits a table that is too wide by shrinking its columns, which cuts cells to ``$1,8…``:
the figure is lost. Here a table that fits is printed as is; on a terminal too narrow for it
each record becomes a block of ``field  value`` lines instead; off a terminal (piped to a
file or a program) the table is printed at its full width, however wide. A table with a column per record is
first cut into narrower tables of a few columns each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

# Wider than any table: the width a table is measured at to find its natural width.
_UNBOUNDED = 100_000


@dataclass
class Figures:
    """Records of figures, every cell already formatted.

    ``names`` leading fields name a record (left-justified; a block's heading when stacked).
    ``across``: the table has one column per record and one row per figure (a summary of a
    few groups) rather than one row per record.
    """

    title: str
    fields: Sequence[str]
    records: list[Sequence[str]] = field(default_factory=list)
    names: int = 1
    across: bool = False

    def name_of(self, record: Sequence[str], width: int = _UNBOUNDED) -> str:
        """The record's names on one line, or one per line when they do not fit ``width``
        (a name broken across lines would read as two)."""
        names = [cell for cell in record[: self.names] if cell]
        line = "  ".join(names)
        return line if len(line) <= width else "\n".join(names)


def print_figures(console: Console, figures: Figures) -> None:
    """Print ``figures`` whole: as a table if it fits (or off a terminal), else as blocks."""
    table = as_table(figures)
    width = _width(console, table)
    if width <= console.width:
        console.print(table)
    elif not console.is_terminal:  # a file or a pipe has no width to fit: print it whole
        Console(file=console.file, width=width, highlight=False, color_system=None).print(table)
    elif figures.across and (parts := _side_by_side(console, figures)):
        for part in parts:
            console.print(part)
    else:
        console.print(as_blocks(figures, console.width))


def _width(console: Console, table: Table) -> int:
    return console.measure(table, options=console.options.update_width(_UNBOUNDED)).maximum


def _side_by_side(console: Console, figures: Figures) -> list[Table]:
    """A table of a record per column, cut into tables of as many columns as fit; [] if
    even one column does not."""
    parts: list[list[Sequence[str]]] = []
    for record in figures.records:
        if parts and _width(console, as_table(replace(figures, records=[*parts[-1], record]))) <= console.width:
            parts[-1].append(record)
        elif _width(console, as_table(replace(figures, records=[record]))) <= console.width:
            parts.append([record])
        else:
            return []
    return [as_table(replace(figures, records=records)) for records in parts]


def as_table(figures: Figures) -> Table:
    table = Table(title=figures.title, title_justify="left", box=box.SIMPLE_HEAD)
    if figures.across:
        table.add_column("", no_wrap=True)
        for record in figures.records:
            table.add_column(Text(figures.name_of(record)), justify="right", no_wrap=True)
        for i, name in enumerate(figures.fields[figures.names :], start=figures.names):
            table.add_row(Text(name), *(Text(record[i]) for record in figures.records))
        return table
    for i, name in enumerate(figures.fields):
        table.add_column(Text(name), justify="left" if i < figures.names else "right", no_wrap=True)
    for record in figures.records:
        table.add_row(*(Text(cell) for cell in record))
    return table


def as_blocks(figures: Figures, width: int = _UNBOUNDED) -> Group:
    """One block per record, its figures one per line: as narrow as the longest line."""
    parts: list[RenderableType] = [Text(figures.title, style="italic")]
    for record in figures.records:
        lines = Table.grid(padding=(0, 2))
        lines.add_column(style="dim", no_wrap=True)
        lines.add_column(overflow="fold")  # a value longer than the terminal breaks, never cut
        for name, cell in zip(figures.fields[figures.names :], record[figures.names :], strict=True):
            lines.add_row(Text(f"  {name}"), Text(cell))
        parts += [Text(""), Text(figures.name_of(record, width), style="bold"), lines]
    return Group(*parts)
