"""Reading a recorded run directory (what show, compare and the study tools start from)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lancer.core.errors import LancerError
from lancer.core.trajectory import read_trajectory


def load_run(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """A run's trajectory records and its result (None if the run never finished)."""
    path = run_dir / "trajectory.jsonl" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise LancerError(f"{run_dir} holds no trajectory.jsonl (give a run directory written by lancer run)")
    result_path = path.parent / "result.json"
    result = json.loads(result_path.read_text()) if result_path.is_file() else None
    return read_trajectory(path), result
