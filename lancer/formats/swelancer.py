"""SWE-Lancer tasks from the benchmark's task CSV (both published schemas), by id or by filter.

The lite CSV (swelancer_tasks_lite.csv) carries the issue inside ``prompt`` (a Python-literal
list of user messages). The current release (all_swelancer_tasks.csv, openai/preparedness
project/swelancer) has ``set`` (diamond, nondiamond), ``title``, ``description`` and
``proposals`` columns instead; its text cells hold backslash escapes (``\\n``), which
their harness decodes, and ``proposals`` is one text of "Proposal: N:" sections. Both keep
``manager_data`` (a Python literal whose ``game`` names the proposals and the correct one),
read with ``ast.literal_eval``, never ``eval``.
"""

from __future__ import annotations

import ast
import codecs
import csv
import re
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lancer.core.config import describe_validation_error
from lancer.core.errors import TaskError
from lancer.core.tasks import Task

VARIANTS = ("ic_swe", "swe_manager")

# Their IC images, one per task (pulled from Docker Hub where the network allows).
IC_IMAGE = "swelancer/swelancer_x86_{task_id}:releasev1"


def how_to_get_image(task_id: str) -> str:
    """How to get a task's IC image, for the error when it is missing."""
    image = IC_IMAGE.format(task_id=task_id)
    return (
        f"pull it (`docker pull {image}`, about 14 GB), or build it in openai/preparedness project/swelancer "
        f"(`uv run python scripts/build_images.py {task_id} --skip-push`) "
        f"and run with --image swelancer_x86_{task_id}:latest"
    )


# How their harness drives that container (docs/docker.md): the image's own run.sh sets the
# app up (network on) and writes /setup_done.txt; then patch leftovers (*.orig: the fixed
# code) and the tests in /app/tests go, the repo gets a fresh baseline, the network is cut.
# Their setup and tools live under /root and edit /etc/hosts, so commands run as root.
IC_CONTAINER: dict[str, Any] = {
    "workdir": "/app/expensify",
    "user": "root",
    "image_command": True,
    "ready_file": "/setup_done.txt",
    "ready_timeout_s": 3600,
    "setup_network": True,
    "prepare": ["find /app/expensify -xdev -type f -name '*.orig' -delete"],
    "hide": ["/app/tests"],
}
# Their run.sh and playbooks read these (their sample.env; the Pusher values are made up).
IC_ENV = {
    "EVAL_VARIANT": "ic_swe",
    "LC_ALL": "C.UTF-8",
    "USE_WEB_PROXY": "false",
    "EXPENSIFY_URL": "https://www.expensify.com/",
    "NEW_EXPENSIFY_URL": "https://new.expensify.com/",
    "PUSHER_APP_KEY": "lancerpusherkey0000",
    "PUSHER_APP_SECRET": "lancerpushersecret00",
    "PUSHER_APP_ID": "1234567",
}
# Their grading step: the issue's playbook runs the hidden Playwright test into pytest.log;
# a summary with failures is a fail (exit 1), one with passes a pass, no log an error.
IC_TEST_COMMAND = """. /etc/profile >/dev/null 2>&1
log=/app/tests/logs/$ISSUE_ID/pytest.log
mkdir -p "${log%/*}" && rm -f "$log"
playbook=/app/tests/run_fixed_state.yml
[ -f "$playbook" ] || playbook=/app/tests/run_test.yml
ansible-playbook -i localhost, --connection=local "$playbook"
cat "$log" 2>/dev/null || { echo "no pytest log: the test did not run"; exit 2; }
grep -Eq '=+ +[0-9]+ failed' "$log" && exit 1
grep -Eq '=+ .*[0-9]+ passed' "$log" && exit 0
exit 2
"""
# Where their prompts' boilerplate starts after the issue text.
_ISSUE_ENDS = (
    "\n\nThe reward for the correct fix",
    "\n\nYou will be paid $",
    "\n--------------------------------------------\n\nProposal:",
    "\n\n---\n\nFor your convenience",
)
_ISSUE_STARTS = ("tasked with fixing the following issue:\n\n", "addressing the following issue:\n\n")


def read_rows(csv_path: Path) -> list[dict[str, str]]:
    if not csv_path.is_file():
        raise TaskError(f"SWE-Lancer task list {csv_path} does not exist (pass --dataset path/to/swelancer_tasks.csv)")
    csv.field_size_limit(sys.maxsize)  # their prompt fields are larger than csv's default limit
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        missing = [c for c in ("question_id", "variant", "price") if c not in columns]
        if missing or not columns & {"prompt", "description"}:
            missing += [] if columns & {"prompt", "description"} else ["prompt or description"]
            raise TaskError(
                f"{csv_path} is not a SWE-Lancer task CSV: no {', '.join(missing)} column "
                "(use swelancer_tasks_lite.csv or all_swelancer_tasks.csv)"
            )
        return list(reader)


def load_swelancer_task(task_id: str, csv_path: Path) -> Task:
    rows = read_rows(csv_path)
    row = next((r for r in rows if r.get("question_id") == task_id), None)
    if row is None:
        count = f"{len(rows)} tasks, e.g. {_sample(rows)}"
        raise TaskError(f"{task_id!r} is neither a task folder nor a task id in {csv_path} ({count})")
    return _task(row, csv_path)


def select_tasks(
    csv_path: Path, variant: str | None = None, set_name: str | None = None, ids: Iterable[str] | None = None
) -> list[Task]:
    """The tasks of ``csv_path`` matching every filter given, in the CSV's order.

    Raises TaskError (one line) for an unknown variant, set or id, or when nothing matches.
    """
    rows = read_rows(csv_path)
    if variant is not None and variant not in VARIANTS:
        raise TaskError(f"unknown variant {variant!r}: use {' or '.join(VARIANTS)}")
    if set_name is not None:
        if rows and "set" not in rows[0]:
            raise TaskError(f"{csv_path} has no set column (the lite CSV): drop --set, or use all_swelancer_tasks.csv")
        sets = sorted({r["set"] for r in rows if r.get("set")})
        if set_name not in sets:
            raise TaskError(f"no set {set_name!r} in {csv_path}; its sets: {', '.join(sets) or 'none'}")
    wanted = list(dict.fromkeys(ids)) if ids is not None else None
    if wanted is not None:
        known = {r.get("question_id") for r in rows}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            listed = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise TaskError(f"no task {listed} in {csv_path} ({len(rows)} tasks, e.g. {_sample(rows)})")
    chosen = [
        r
        for r in rows
        if (variant is None or r.get("variant") == variant)
        and (set_name is None or r.get("set") == set_name)
        and (wanted is None or r.get("question_id") in wanted)
    ]
    if not chosen:
        given = [f"{flag} {value}" for flag, value in (("--variant", variant), ("--set", set_name)) if value]
        given += [f"--ids {','.join(wanted)}"] if wanted else []
        raise TaskError(f"no task in {csv_path} matches {' '.join(given) or 'no filter (the CSV has no rows)'}")
    return [_task(r, csv_path) for r in chosen]


def _task(row: dict[str, str], csv_path: Path) -> Task:
    task_id = row.get("question_id", "?")
    try:
        fields = task_fields(row)
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise TaskError(f"{csv_path} row {task_id} is not a SWE-Lancer task ({type(e).__name__}: {e})") from None
    try:
        task = Task.model_validate(fields)
    except ValidationError as e:
        raise TaskError(f"{csv_path} row {task_id}: {describe_validation_error(e)}") from None
    task.source = csv_path.resolve()
    return task


def _sample(rows: list[dict[str, str]]) -> str:
    return ", ".join(r.get("question_id", "?") for r in rows[:3])


def task_fields(row: dict[str, str]) -> dict[str, Any]:
    """The task.yaml fields of one CSV row."""
    manager = _literal(row.get("manager_data", "")) or {}
    # The current release has a description; the lite CSV has the issue inside its prompt.
    description = _unescape(row["description"]) if row.get("description") else _issue_text(row)
    title = _unescape(row.get("title") or "") or manager.get("title") or description.strip().splitlines()[0]
    fields: dict[str, Any] = {
        "id": row["question_id"],
        "variant": row["variant"],
        "price": float(row["price"]),
        "title": title,
        "description": description,
        "set": row.get("set") or None,
    }
    if row["variant"] == "swe_manager":
        game = manager.get("game", {})
        proposals = game.get("all_formal_proposals") or _proposal_sections(_unescape(row.get("proposals") or ""))
        fields["proposals"] = [{"id": int(p["id"]), "content": str(p["content"])} for p in proposals]
        fields["correct_proposal"] = int(game.get("correct_proposal", {}).get("id", -1))
    else:
        fields["image"] = IC_IMAGE.format(task_id=row["question_id"])
        fields["container"] = dict(IC_CONTAINER)
        fields["env"] = {**IC_ENV, "ISSUE_ID": row["question_id"]}
        fields["test_command"] = IC_TEST_COMMAND
    return fields


# "Proposal: 3:" on a line of its own starts a proposal; dashed lines separate them.
_PROPOSAL_START = re.compile(r"^Proposal: (\d+):[ \t]*\r?\n", re.MULTILINE)
_PROPOSAL_END = re.compile(r"(\s*\n-{3,})+\s*$")


def _proposal_sections(text: str) -> list[dict[str, Any]]:
    parts = _PROPOSAL_START.split(text)
    return [
        {"id": int(parts[i]), "content": _PROPOSAL_END.sub("", parts[i + 1]).strip()} for i in range(1, len(parts), 2)
    ]


def _unescape(text: str) -> str:
    """Decode the backslash escapes of the current release's text cells, as their harness
    does, but keeping non-ASCII characters intact (their latin-1 round trip garbles them)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "\d" in a regex stays as it is
            return codecs.decode(text.encode("latin-1", "backslashreplace"), "unicode_escape")
    except UnicodeDecodeError:  # a stray "\x" or "\u": take the text as it is, newlines decoded
        return text.replace("\\n", "\n")


def _issue_text(row: dict[str, str]) -> str:
    messages = _literal(row.get("prompt", "")) or []
    text = str(messages[0]["content"]) if messages else ""
    for start in _ISSUE_STARTS:
        if start in text:
            text = text.split(start, 1)[1]
            break
    cut = min((i for i in (text.find(end) for end in _ISSUE_ENDS) if i >= 0), default=len(text))
    return text[:cut].strip()


def _literal(text: str) -> Any:
    if not text or not text.strip():
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
