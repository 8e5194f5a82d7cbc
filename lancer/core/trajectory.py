"""trajectory.jsonl: a header line, a prompt line, one line per finished step, a final line.

Each line is written whole and flushed as soon as its step finishes, so a run killed
with ``kill -9`` leaves every finished step readable. Secrets are redacted from every line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from lancer.core.secrets import redact

FORMAT_VERSION = 1


class TrajectoryWriter:
    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self._file: TextIO | None = path.open("w", encoding="utf-8")
        self._write({"type": "header", "format_version": FORMAT_VERSION, **header})

    def prompt(self, messages: list[dict[str, Any]], **fields: Any) -> None:
        """What the model is first shown (system prompt, task, tool schemas), and where (the workdir)."""
        self._write({"type": "prompt", "messages": messages, **fields})

    def step(self, record: dict[str, Any]) -> None:
        self._write({"type": "step", **record})

    def final(self, record: dict[str, Any]) -> None:
        self._write({"type": "final", **record})

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(redact(json.dumps(record, ensure_ascii=False, default=str)) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_trajectory(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a trajectory; a torn last line (the run was killed mid-write) is dropped."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records
