"""Output folders that never collide, and never overwrite another run by accident."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path

from lancer.core.errors import LancerError

RUN_FILES = ("trajectory.jsonl", "result.json")


def fresh_dir(parent: Path, stem: str) -> Path:
    """Make and return ``parent/stem-<time>-<random>``: created here, so never one that existed."""
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = parent / f"{stem}-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        try:
            path.mkdir()
        except FileExistsError:  # the same second and the same random suffix: draw again
            continue
        return path


def check_run_dir(path: Path, force: bool) -> None:
    """Refuse ``--out`` into a folder that holds another run, unless ``--force``."""
    if not force and any((path / name).exists() for name in RUN_FILES):
        raise LancerError(f"{path} already holds a run: give another --out, or add --force to replace it")
