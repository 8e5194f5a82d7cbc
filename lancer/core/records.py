"""Reading what lancer wrote, for study: run directories and eval directories.

A run directory holds trajectory.jsonl, result.json and patch.diff (lancer/agent/runner.py); an
eval directory holds eval.json, results.jsonl, summary.json and runs/<task_id>/<attempt>/
(README: "Evaluations"). Everything here reads files only, so it works on an eval that is
still running: a torn last line is dropped and attempts without a result are "running".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lancer.core.errors import LancerError
from lancer.core.trajectory import read_trajectory

RESULTS_FILE = "results.jsonl"  # an eval's record of finished attempts (lancer.eval.store writes it)
# Screenshots a tool saved and named in its output (e.g. for a model that takes no images).
_PNG_PATH = re.compile(r"(/[^\s'\"]+\.png)\b")
# The folders of a run directory its tools write images into (lancer/tools/browser.py, user_tool.py).
IMAGE_FOLDERS = ("screenshots", "user_tool")


@dataclass
class RunRecord:
    """One run directory, as written by ``lancer run`` or by an eval's attempt."""

    dir: Path
    header: dict[str, Any]
    prompt: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    final: dict[str, Any] | None
    result: dict[str, Any] | None
    patch: str

    @property
    def task(self) -> dict[str, Any]:
        task: dict[str, Any] = self.header.get("task", {})
        return task


@dataclass
class EvalRecord:
    """One eval directory: its spec, the attempts finished so far, its summary if written."""

    dir: Path
    spec: dict[str, Any]
    rows: list[dict[str, Any]]
    summary: dict[str, Any] | None
    # Attempts whose run directory exists but whose result line does not (yet).
    running: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.dir.resolve().name

    @property
    def model(self) -> str:
        return str(self.spec.get("model", "?"))

    def attempt_numbers(self) -> list[int]:
        """The attempt columns: the spec's K attempts, numbered as the results number them."""
        seen = sorted({int(row["attempt"]) for row in self.rows + self.running})
        declared = self.spec.get("attempts")
        if not isinstance(declared, int):
            return seen or [0]
        first = 0 if seen and seen[0] == 0 else 1  # lancer eval counts from 1
        return sorted(set(range(first, first + declared)) | set(seen))

    def tasks(self) -> list[dict[str, Any]]:
        """The eval's tasks (id, price, variant, set, title when known; difficulty, category,
        tags when given), in the spec's order."""
        listed = [_task_entry(t) for t in self.spec.get("tasks", []) if isinstance(t, dict)]
        known = {t["id"] for t in listed}
        for row in self.rows + self.running:  # a spec without a task list still shows its attempts
            if row["task_id"] not in known:
                known.add(row["task_id"])
                listed.append(_task_entry(row))
        return listed

    def run_dir(self, row: dict[str, Any]) -> Path:
        """Where an attempt's run directory is: the row's run_dir, relative to the eval or absolute."""
        given = row.get("run_dir")
        if given:
            path = Path(given)
            if not path.is_absolute():
                path = self.dir / path
            if path.is_dir():
                return path
        return self.dir / "runs" / str(row["task_id"]) / str(row["attempt"])


def is_run_dir(path: Path) -> bool:
    return (path / "trajectory.jsonl").is_file()


def is_eval_dir(path: Path) -> bool:
    return (path / "eval.json").is_file()


def read_run(run_dir: Path) -> RunRecord:
    """A run directory (or its trajectory.jsonl); raises LancerError if it holds no run."""
    run_dir = run_dir.parent if run_dir.name == "trajectory.jsonl" else run_dir
    if not is_run_dir(run_dir):
        raise LancerError(f"{run_dir} holds no trajectory.jsonl (give a run directory written by lancer run)")
    records = read_trajectory(run_dir / "trajectory.jsonl")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_type.setdefault(str(record.get("type")), []).append(record)
    header = (by_type.get("header") or [{}])[0]
    prompt = (by_type.get("prompt") or [{}])[0].get("messages", [])
    finals = by_type.get("final")
    patch_path = run_dir / "patch.diff"
    return RunRecord(
        dir=run_dir,
        header=header,
        prompt=prompt,
        steps=by_type.get("step", []),
        final=finals[0] if finals else None,
        result=_read_json(run_dir / "result.json"),
        patch=patch_path.read_text(encoding="utf-8", errors="replace") if patch_path.is_file() else "",
    )


def read_header(run_dir: Path) -> dict[str, Any]:
    """A run's trajectory header alone (the first line), cheap for a big trajectory."""
    try:
        with (run_dir / "trajectory.jsonl").open(encoding="utf-8") as f:
            header = json.loads(f.readline() or "{}")
    except (OSError, json.JSONDecodeError):
        return {}
    return header if isinstance(header, dict) else {}


def read_eval(eval_dir: Path) -> EvalRecord:
    """An eval directory; raises LancerError if it holds no eval.json."""
    if not is_eval_dir(eval_dir):
        raise LancerError(f"{eval_dir} holds no eval.json (give an eval directory written by lancer eval)")
    spec = _read_json(eval_dir / "eval.json") or {}
    rows = [_normalize_row(row) for row in read_results(eval_dir / RESULTS_FILE)]
    record = EvalRecord(eval_dir, spec, rows, _read_json(eval_dir / "summary.json"))
    record.running = _running_attempts(record)
    return record


def row_from_run(run: RunRecord, attempt: int = 0) -> dict[str, Any]:
    """A results.jsonl-like row for a lone run directory (or one still running)."""
    result = run.result or {}
    task = run.task
    grade = result.get("grade") or {}
    return _normalize_row(
        {
            "task_id": result.get("task_id", task.get("id", run.dir.name)),
            "attempt": attempt,
            "variant": result.get("variant", task.get("variant")),
            "set": task.get("set"),
            "price": result.get("price", task.get("price", 0.0)),
            "resolved": result.get("resolved") if run.result else None,
            "earned": result.get("earned", 0.0),
            "exit_status": result.get("exit_status", "running"),
            "grade_status": grade.get("status"),
            "grade_basis": grade.get("basis"),
            "cost_usd": result.get("cost_usd"),
            "input_tokens": result.get("input_tokens", 0),
            "output_tokens": result.get("output_tokens", 0),
            "steps": result.get("steps", len(run.steps)),
            "duration_s": result.get("duration_s"),
            "run_dir": str(run.dir),
            "model": result.get("model", run.header.get("model")),
        }
    )


def saved_pngs(output: str) -> list[str]:
    """The PNG paths a tool named in its output."""
    return list(_PNG_PATH.findall(output))


def run_file_tail(raw: str) -> Path | None:
    """A run's image path from the run directory on (``screenshots/shot-001.png``), or None."""
    parts = Path(raw).parts
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] in IMAGE_FOLDERS:
            return Path(*parts[i:])
    return None


def locate_run_file(run_dir: Path, raw: str) -> Path | None:
    """A file the run wrote, where it is now: the run directory may have moved (an eval's
    attempt run on another node comes back to the driver's directory)."""
    path = Path(raw)
    if path.is_file():
        return path
    parts = path.parts
    for i in range(len(parts) - 1, 0, -1):  # the longest tail of the path found in run_dir
        candidate = run_dir.joinpath(*parts[i:])
        if candidate.is_file() and parts[i] in IMAGE_FOLDERS:
            return candidate
    return None


def _running_attempts(record: EvalRecord) -> list[dict[str, Any]]:
    done = {(str(r["task_id"]), str(r["attempt"])) for r in record.rows}
    running = []
    for trajectory in sorted((record.dir / "runs").glob("*/*/trajectory.jsonl")):
        run_dir = trajectory.parent
        key = (run_dir.parent.name, run_dir.name)
        if key in done or not run_dir.name.isdigit():
            continue
        run = read_run(run_dir)
        row = row_from_run(run, int(run_dir.name))
        row.update(task_id=key[0], exit_status="running", resolved=None, run_dir=str(run_dir))
        running.append(row)
    return running


def _normalize_row(row: dict[str, Any]) -> dict[str, Any]:
    row.setdefault("attempt", 0)
    row.setdefault("price", 0.0)
    row.setdefault("earned", 0.0)
    row.setdefault("variant", None)
    row.setdefault("set", None)
    row.setdefault("exit_status", "?")
    row.setdefault("grade_status", None)
    row.setdefault("grade_basis", None)
    row.setdefault("cost_usd", None)
    return row


def _task_entry(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(data.get("id", data.get("task_id"))),
        "price": float(data.get("price") or 0.0),
        "variant": data.get("variant"),
        "set": data.get("set"),
        "title": data.get("title"),
        # A Harbor task's metadata, for the summary's breakdowns.
        **{k: data[k] for k in ("difficulty", "category", "tags") if data.get(k) is not None},
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:  # being rewritten right now: as if not there yet
        return None
    return data if isinstance(data, dict) else None


def read_results(path: Path) -> list[dict[str, Any]]:
    """The rows of a results.jsonl, each attempt once (its first row); torn lines are skipped."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                rows.setdefault((str(row["task_id"]), int(row["attempt"])), row)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
    return list(rows.values())
