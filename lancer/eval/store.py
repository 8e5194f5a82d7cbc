"""An eval's directory: eval.json, results.jsonl, summary.json, runs/<task_id>/<attempt>/.

Only the driver writes here (executors write run directories only). results.jsonl is the
record of what finished: one line appended, flushed and synced per finished attempt, so
after ``kill -9`` or a power loss every counted attempt is there exactly once, and an
attempt without a line was in flight and runs again. A lock file keeps two evals from
writing the same directory at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, TextIO

from lancer.core.errors import LancerError
from lancer.core.records import RESULTS_FILE, read_results
from lancer.core.secrets import redact
from lancer.eval.attempt import ROW_FIELDS, usage_so_far

EVAL_FILE = "eval.json"
# Attempts that were interrupted or killed and then cleared to run again: what they cost
# still counts against the budget.
DISCARDED_FILE = "discarded.jsonl"
SUMMARY_FILE = "summary.json"
LOCK_FILE = ".lock"
WORKER_PID_FILE = "worker.pid"  # written by an attempt's process in its run directory
# What must match for a directory to be continued (the same question asked again), and
# how an error names it.
IDENTITY = {"model": "model", "attempts": "number of attempts", "tasks": "task set", "config": "config"}


class EvalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock: TextIO | None = None
        self._results: TextIO | None = None

    # --- opening --------------------------------------------------------------------------

    def open(self, plan: dict[str, Any]) -> bool:
        """Start a new eval from ``plan`` (eval.json's content) or continue the one here.

        Returns True when continuing. Raises LancerError if the directory holds something
        else, a different eval, or an eval that another lancer is running.
        """
        existing = self.root / EVAL_FILE
        if not existing.is_file() and self.root.is_dir() and any(self.root.iterdir()):
            raise LancerError(f"{self.root} is not empty and holds no {EVAL_FILE}: give --out a new or empty folder")
        self.root.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        resuming = existing.is_file()
        if resuming:
            try:
                self._check_same(json.loads(existing.read_text()), plan)
            except LancerError:
                self.close()
                raise
        else:
            _write_atomically(existing, redact(json.dumps(plan, indent=2)) + "\n")
        self._results = (self.root / RESULTS_FILE).open("a", encoding="utf-8")
        if self._results.tell() and not _ends_with_newline(self.root / RESULTS_FILE):
            self._results.write("\n")  # a line torn by a crash: the next row starts a line of its own
        return resuming

    def _take_lock(self) -> None:
        lock = (self.root / LOCK_FILE).open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            busy = f"another lancer eval is writing to {self.root}: wait for it, or give another --out"
            raise LancerError(busy) from None
        self._lock = lock

    def _check_same(self, before: dict[str, Any], now: dict[str, Any]) -> None:
        for key, name in IDENTITY.items():
            if _identity(key, before.get(key)) != _identity(key, now.get(key)):
                was, asked = _describe(key, before.get(key), now.get(key))
                raise LancerError(
                    f"{self.root} holds an eval with another {name} ({was}; this command: {asked}): "
                    "run the same command to continue it, or give another --out"
                )

    # --- results --------------------------------------------------------------------------

    def finished_rows(self) -> list[dict[str, Any]]:
        """The rows in results.jsonl, each attempt once (a torn line is dropped)."""
        return read_results(self.root / RESULTS_FILE)

    def append(self, row: dict[str, Any]) -> None:
        assert self._results is not None, "open() first"
        line = json.dumps({k: row.get(k) for k in ROW_FIELDS}, ensure_ascii=False)
        self._results.write(redact(line) + "\n")
        self._results.flush()
        os.fsync(self._results.fileno())

    def write_summary(self, summary: dict[str, Any]) -> None:
        _write_atomically(self.root / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")

    # --- run directories ------------------------------------------------------------------

    def run_dir(self, task_id: str, attempt: int) -> Path:
        return self.root / "runs" / task_id / str(attempt)

    def clear_unfinished(self, finished: set[tuple[str, int]]) -> int:
        """Remove run directories of attempts that never got a results line; how many.

        Their processes (if a killed eval left any) are stopped first, so nothing still
        writes there when the attempt runs again; what they cost goes to discarded.jsonl.
        """
        runs = self.root / "runs"
        cleared = 0
        for run_dir in sorted(runs.glob("*/*")) if runs.is_dir() else []:
            task_id, attempt = run_dir.parent.name, _int(run_dir.name)
            if (task_id, attempt) in finished:
                continue
            _stop_worker(run_dir / WORKER_PID_FILE)
            self.discard({"task_id": task_id, "attempt": attempt, **usage_so_far(run_dir / "trajectory.jsonl")})
            shutil.rmtree(run_dir, ignore_errors=True)
            cleared += 1
        return cleared

    def discard(self, run: dict[str, Any]) -> None:
        """Record a run of an attempt that will run again (its ``task_id``, ``attempt``, ``cost_usd``)."""
        line = {"task_id": run["task_id"], "attempt": run["attempt"], "cost_usd": run["cost_usd"]}
        with (self.root / DISCARDED_FILE).open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def discarded_cost(self) -> float:
        """What attempts cleared to run again had cost (unknown costs count as 0)."""
        path = self.root / DISCARDED_FILE
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        return sum(json.loads(line).get("cost_usd") or 0.0 for line in lines if line.strip())

    def close(self) -> None:
        for handle in (self._results, self._lock):
            if handle is not None:
                handle.close()
        self._results = self._lock = None


# How fast the model is asked, not what: a continued eval may change them.
_PACING = ("max_connections", "requests_per_minute", "tokens_per_minute")


def _identity(key: str, value: Any) -> Any:
    if key == "tasks":  # where a task was read from may change; what it is may not
        return [(t["id"], t["variant"], t["price"]) for t in value or []]
    if key == "config" and isinstance(value, dict):
        model = {k: v for k, v in (value.get("model") or {}).items() if k not in _PACING}
        return {**value, "model": model}
    return value


def _describe(key: str, before: Any, now: Any) -> tuple[str, str]:
    """What the eval here had and what this command asks for, told apart in a few words."""
    if key == "tasks":
        was, asked = _identity(key, before), _identity(key, now)
        if {t[0] for t in was} == {t[0] for t in asked}:
            changed = sorted({t[0] for t in set(was) ^ set(asked)})
            return "the same ids", f"another price or variant for {', '.join(changed[:3])}"
        return _task_ids(was, asked), _task_ids(asked, was)
    if key == "config":
        diff = sorted(_flat(before).items() ^ _flat(now).items())
        name = diff[0][0] if diff else "?"
        return f"{name}={_flat(before).get(name)}", f"{name}={_flat(now).get(name)}"
    return str(before), str(now)


def _task_ids(these: list[tuple[str, str, float]], others: list[tuple[str, str, float]]) -> str:
    only = sorted({t[0] for t in these} - {t[0] for t in others})
    return f"{len(these)} task(s)" + (f", with {', '.join(only[:3])}" if only else "")


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: json.dumps(value)}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(_flat(item, f"{prefix}.{key}" if prefix else key))
    return flat


def _stop_worker(pid_file: Path, grace_s: float = 30) -> None:
    """Stop an attempt process a killed eval left running (it removes its own sandbox)."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"lancer.eval.worker" not in cmdline:  # the pid was reused by something else
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _int(text: str) -> int:
    return int(text) if text.isdigit() else -1


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
