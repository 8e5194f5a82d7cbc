"""Opening one run for show and view: a lancer run directory, or an ATIF trajectory file
(another agent's, or lancer's own export), read into the same RunRecord."""

from __future__ import annotations

from pathlib import Path

from lancer.core.errors import LancerError
from lancer.core.records import RunRecord, is_run_dir, read_run
from lancer.formats.atif_in import is_atif_file, read_atif_run

ATIF_FILE = "trajectory.json"


def atif_file(path: Path) -> Path | None:
    """The ATIF file ``path`` is or holds (``DIR/trajectory.json``; a Harbor trial's
    ``DIR/agent/trajectory.json``), or None."""
    for candidate in (path, path / ATIF_FILE, path / "agent" / ATIF_FILE):
        if is_atif_file(candidate):
            return candidate
    return None


def is_run(path: Path) -> bool:
    return is_run_dir(path) or path.name == "trajectory.jsonl" or atif_file(path) is not None


def open_run(path: Path) -> RunRecord:
    """The run at ``path``: a run directory (or its trajectory.jsonl), or an ATIF file or its folder."""
    if is_run_dir(path) or path.name == "trajectory.jsonl":
        return read_run(path)
    found = atif_file(path)
    if found is None:
        raise LancerError(
            f"{path} holds no run: give a run directory written by lancer run, or an ATIF trajectory.json"
        )
    return read_atif_run(found)
