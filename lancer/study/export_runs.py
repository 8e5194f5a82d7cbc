"""``lancer export RUN_DIR|EVAL_DIR --format atif|sft DEST``: recorded attempts for other tools.

``atif`` writes one ATIF trajectory per attempt (lancer/formats/atif_out.py): a run directory
to ``DEST/trajectory.json``, an eval's attempts to ``DEST/<task_id>/<attempt>/trajectory.json``,
each with its screenshots beside it. ``sft`` writes one chat fine-tuning example per attempt
to the ``DEST`` .jsonl file (lancer/formats/sft.py). ``resolved_only`` keeps the resolved
attempts. Every file written is validated (read back) before the command ends.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lancer.core.errors import ConfigError
from lancer.core.records import RunRecord, is_eval_dir, is_run_dir, read_eval, read_run, row_from_run
from lancer.formats.atif import read_trajectory_file
from lancer.formats.atif_out import run_to_atif
from lancer.formats.sft import run_to_chat
from lancer.study.tally import verdict
from lancer.tools import tool_schemas

_BASE_TOOLS = {"bash", "editor", "submit"}
_LISTED_TOOL = re.compile(r"^- (\w+):", re.MULTILINE)  # the system prompt lists the tools so


@dataclass
class Attempt:
    run: RunRecord
    verdict: str
    where: Path  # relative to DEST: "." for a lone run, <task_id>/<attempt> for an eval's
    session_id: str


def attempts_of(sources: list[Path], resolved_only: bool = False) -> list[Attempt]:
    """The finished attempts of run and eval directories (an eval's running ones are left out)."""
    found: list[Attempt] = []
    for source in sources:
        if is_eval_dir(source):
            ev = read_eval(source)
            for row in sorted(ev.rows, key=lambda r: (str(r["task_id"]), int(r["attempt"]))):
                run_dir = ev.run_dir(row)
                if is_run_dir(run_dir):
                    where = Path(str(row["task_id"])) / str(row["attempt"])
                    found.append(Attempt(read_run(run_dir), verdict(row), where, f"{ev.name}/{where.as_posix()}"))
        elif is_run_dir(source):
            run = read_run(source)
            found.append(Attempt(run, verdict(row_from_run(run)), Path("."), source.resolve().name))
        else:
            raise ConfigError(
                f"{source} is neither a run directory (trajectory.jsonl) nor an eval directory (eval.json): "
                "--format atif and sft export recorded runs"
            )
    if len(sources) > 1:  # several sources into one DEST: each under its own folder name
        for attempt in found:
            attempt.where = Path(attempt.session_id)
    return [a for a in found if a.verdict == "resolved"] if resolved_only else found


def run_tools(run: RunRecord) -> list[dict[str, Any]]:
    """The function schemas of the tools the run's model was shown."""
    system = " ".join(str(m.get("content", "")) for m in run.prompt if m.get("role") == "system")
    used = {str(c.get("name")) for s in run.steps for c in s.get("tool_calls") or []}
    names = _BASE_TOOLS | used | set(_LISTED_TOOL.findall(system))
    return tool_schemas(names, manager=run.task.get("variant") == "swe_manager")


def export_atif(sources: list[Path], dest: Path, resolved_only: bool = False) -> list[Path]:
    written = []
    for attempt in attempts_of(sources, resolved_only):
        folder = dest / attempt.where
        folder.mkdir(parents=True, exist_ok=True)
        trajectory = run_to_atif(attempt.run, folder, run_tools(attempt.run), attempt.verdict, attempt.session_id)
        path = folder / "trajectory.json"
        path.write_text(json.dumps(trajectory.model_dump(mode="json", exclude_none=True), indent=2) + "\n")
        read_trajectory_file(path)  # what was written validates, or the export fails naming it
        written.append(path)
    return written


def export_sft(sources: list[Path], dest: Path, resolved_only: bool = False) -> list[Path]:
    if dest.suffix != ".jsonl":
        raise ConfigError(f"--format sft {dest}: give a .jsonl file to write")
    chosen = attempts_of(sources, resolved_only)
    lines = [json.dumps(run_to_chat(a.run, run_tools(a.run)), ensure_ascii=False) for a in chosen]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return [dest]
