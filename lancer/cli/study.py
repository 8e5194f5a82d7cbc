"""The ``lancer view`` and ``lancer report`` subcommands (lancer/cli/main.py registers them here)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(commands: Any) -> None:
    """Adds the study subcommands to the CLI's subparsers."""
    view = commands.add_parser("view", help="a run or an eval as an HTML page (screenshots, steps, table)")
    view.add_argument("path", type=Path, help="a run directory, an eval directory, or an ATIF trajectory.json")
    view.add_argument(
        "-o", "--out", type=Path, help="the HTML file to write (default: PATH/view.html; for a .json file, beside it)"
    )
    view.add_argument("--serve", action="store_true", help="serve it on 127.0.0.1 and refresh while the eval runs")
    view.add_argument("--port", type=int, default=0, help="--serve: the port (default: any free one)")
    view.set_defaults(handler=_view)

    report = commands.add_parser("report", help="evals side by side: table, report.md, summary.csv, plots")
    report.add_argument("evals", type=Path, nargs="+", help="eval directories (the outputs of lancer eval)")
    report.add_argument("-o", "--out", type=Path, default=Path("report"), help="output directory (default: report)")
    report.set_defaults(handler=_report)


def _view(args: argparse.Namespace) -> int:
    from lancer.study.view import ViewBuilder, default_output

    builder = ViewBuilder(args.path, args.out or default_output(args.path), live=args.serve)
    page = builder.build()
    for note in builder.notes:
        print(f"note: {note}", file=sys.stderr)
    print(page)
    if args.serve:
        from lancer.study.view.serve import serve

        serve(builder, args.port)
    return 0


def _report(args: argparse.Namespace) -> int:
    from lancer.study.report import write_report

    write_report(args.evals, args.out)
    return 0
