"""``lancer view``: a run or an eval as HTML that opens offline in any browser.

A run directory becomes one page (``RUN/view.html`` by default). An eval directory becomes
its page (``EVAL/view.html``) plus one page per attempt beside it, in ``view_runs/``;
styles, scripts, screenshots and plots are inline, so the files can be copied anywhere.
The builder remembers what each page was built from, so ``--serve`` rebuilds only what
changed while an eval runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lancer.core.errors import LancerError
from lancer.core.records import EvalRecord, is_eval_dir, is_run_dir, read_eval, read_header, read_run
from lancer.study.runs import atif_file, open_run
from lancer.study.view.eval_page import render_eval_page
from lancer.study.view.run_page import render_run_page

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_output(path: Path) -> Path:
    return path.with_suffix(".html") if path.is_file() else path / "view.html"


@dataclass
class ViewBuilder:
    """Builds the pages of ``source`` into ``out``; ``live`` pages poll for changes when served."""

    source: Path
    out: Path
    live: bool = False
    notes: list[str] = field(default_factory=list)
    # Page path (relative to out's folder) -> the build number it was last written at.
    stamps: dict[str, str] = field(default_factory=dict)
    _inputs: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    _builds: int = 0
    # The plots and what they were drawn from: they show finished attempts only, so a served
    # page redrawn for a running attempt's step (every second) does not redraw them.
    _plots_drawn: tuple[tuple[Any, ...], list[tuple[str, str]]] | None = None

    def __post_init__(self) -> None:
        if self.source.is_file() and atif_file(self.source) is None:
            raise LancerError(f"{self.source} is no ATIF trajectory (give a run directory or an eval directory)")
        if not self.source.exists():
            raise LancerError(f"{self.source} is not a directory (give a run directory or an eval directory)")
        if not (is_eval_dir(self.source) or is_run_dir(self.source) or atif_file(self.source) is not None):
            raise LancerError(
                f"{self.source} is neither a run directory (trajectory.jsonl) nor an eval directory (eval.json)"
                " nor an ATIF trajectory (trajectory.json)"
            )
        if self.out.is_dir():
            raise LancerError(f"-o {self.out} is a directory: give the HTML file to write, e.g. {self.out}/view.html")

    @property
    def is_eval(self) -> bool:
        return is_eval_dir(self.source)

    def build(self) -> Path:
        """Writes every page whose inputs changed since the last build; returns the main page."""
        self._builds += 1
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.is_eval:
            self._build_eval()
        else:
            found = None if is_run_dir(self.source) else atif_file(self.source)
            inputs = _signature(self.source) if found is None else _signature(found.parent, (found.name,))
            self._write_if_changed(self.out, inputs, lambda stamp: render_run_page(open_run(self.source), stamp=stamp))
        return self.out

    def _build_eval(self) -> None:
        ev = read_eval(self.source)
        runs_dir = self.out.parent / f"{self.out.stem}_runs"
        hrefs: dict[tuple[str, int], str] = {}
        titles: dict[str, str] = {}
        spec_tasks = {str(t.get("id")): t for t in ev.spec.get("tasks", []) if isinstance(t, dict)}
        for row in ev.rows + ev.running:
            run_dir = ev.run_dir(row)
            if not is_run_dir(run_dir):
                continue
            if str(row["task_id"]) not in titles:
                titles[str(row["task_id"])] = str(read_header(run_dir).get("task", {}).get("title") or "")
            page_path = runs_dir / _UNSAFE.sub("_", str(row["task_id"])) / f"{int(row['attempt'])}.html"
            hrefs[(str(row["task_id"]), int(row["attempt"]))] = page_path.relative_to(self.out.parent).as_posix()
            back = (os.path.relpath(self.out, page_path.parent) + f"#task-{row['task_id']}", f"eval {ev.name}")
            source = spec_tasks.get(str(row["task_id"]))
            self._write_if_changed(
                page_path,
                _signature(run_dir),
                lambda stamp, d=run_dir, b=back, s=source: render_run_page(
                    read_run(d), back=b, stamp=stamp, task_source=s
                ),
            )
        # A running attempt's cell shows its steps so far: its trajectory is an input too.
        running = tuple(_signature(ev.run_dir(row), ("trajectory.jsonl",)) for row in ev.running)
        eval_inputs = _signature(self.source, ("eval.json", "results.jsonl", "summary.json")) + tuple(sorted(hrefs))
        eval_inputs += running
        self._write_if_changed(
            self.out,
            eval_inputs,
            lambda stamp: render_eval_page(
                ev,
                lambda row: hrefs.get((str(row["task_id"]), int(row["attempt"])), "#"),
                self._plots(ev),
                stamp,
                titles,
            ),
        )

    def _plots(self, ev: EvalRecord) -> list[tuple[str, str]]:
        from lancer.study.plots import PlotsUnavailable, eval_plots_data_uris

        inputs = _signature(self.source, ("results.jsonl", "summary.json"))
        if self._plots_drawn is not None and self._plots_drawn[0] == inputs:
            return self._plots_drawn[1]
        try:
            plots = eval_plots_data_uris([ev])
        except PlotsUnavailable as e:
            if str(e) not in self.notes:
                self.notes.append(str(e))
            plots = []
        self._plots_drawn = (inputs, plots)
        return plots

    def _write_if_changed(self, path: Path, inputs: tuple[Any, ...], render: Any) -> None:
        key = path.relative_to(self.out.parent).as_posix()
        if self._inputs.get(key) == inputs and path.is_file():
            return
        stamp = str(self._builds)
        html = render(stamp if self.live else None)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(path)  # a browser reloading mid-write never sees half a page
        self._inputs[key], self.stamps[key] = inputs, stamp


def _signature(
    folder: Path, names: tuple[str, ...] = ("trajectory.jsonl", "result.json", "patch.diff")
) -> tuple[Any, ...]:
    """What a page depends on, cheaply: the size and modification time of its input files."""
    out: list[Any] = []
    for name in names:
        try:
            stat = (folder / name).stat()
            out.append((name, stat.st_mtime_ns, stat.st_size))
        except OSError:
            out.append((name, None))
    return tuple(out)


def build_view(source: Path, out: Path | None = None) -> tuple[Path, list[str]]:
    """Writes the pages; returns the main page's path and notes for the user (e.g. no plots)."""
    builder = ViewBuilder(source, out or default_output(source))
    return builder.build(), builder.notes
