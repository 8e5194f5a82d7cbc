"""Folders as tar bytes, and back: how a folder crosses a process, a sandbox or a machine.

One uncompressed format for every such crossing (a task folder to a Ray node, a run
directory back, a tree into or out of the local sandbox), so the same files always make
the same bytes and the same ``digest``, whichever machine packed them.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path


def pack(folder: Path) -> bytes:
    """``folder`` as an uncompressed tar: the same bytes for the same files, on any machine.

    Entries are sorted, with no owner and no time, so the bytes depend on names, modes and
    contents only; symlinks are stored as links, never followed.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in [folder, *_walk(folder)]:
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if info.isfile():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def unpack(data: bytes, dest: Path) -> None:
    """Extract tar ``data`` into ``dest`` (made if missing); nothing may land outside it."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(dest, filter="data")  # no absolute paths, no escapes through ..


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _walk(folder: Path) -> list[Path]:
    """Every file and folder under ``folder``, sorted; symlinks are entries, never followed."""
    found = []
    for parent, dirs, files in os.walk(folder):
        found += [Path(parent) / name for name in (*dirs, *files)]
    return sorted(found)
