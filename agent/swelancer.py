"""SWE-Lancer tasks by id, from the benchmark's task CSV (both published schemas).

The older ("lite") CSV carries the issue inside ``prompt`` (a Python-literal list of user
messages) and manager data in ``manager_data``; the newer one has ``title``,
``description`` and ``proposals`` columns. Python literals are read with
``ast.literal_eval``, never ``eval``.
"""

from __future__ import annotations

import ast
import csv
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.config import describe_validation_error
from agent.errors import TaskError
from agent.tasks import Task

# Their IC images, one per task (pulled from Docker Hub where the network allows).
IC_IMAGE = "swelancer/swelancer_x86_{task_id}:releasev1"
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
        return list(csv.DictReader(f))


def load_swelancer_task(task_id: str, csv_path: Path) -> Task:
    rows = read_rows(csv_path)
    row = next((r for r in rows if r.get("question_id") == task_id), None)
    if row is None:
        sample = ", ".join(r["question_id"] for r in rows[:3])
        raise TaskError(
            f"{task_id!r} is neither a task folder nor a task id in {csv_path} ({len(rows)} tasks, e.g. {sample})"
        )
    try:
        task = Task.model_validate(task_fields(row))
    except ValidationError as e:
        raise TaskError(f"{csv_path} row {task_id}: {describe_validation_error(e)}") from None
    task.source = csv_path.resolve()
    return task


def task_fields(row: dict[str, str]) -> dict[str, Any]:
    """The task.yaml fields of one CSV row."""
    manager = _literal(row.get("manager_data", "")) or {}
    description = row.get("description") or _issue_text(row)
    title = row.get("title") or manager.get("title") or description.strip().splitlines()[0]
    fields: dict[str, Any] = {
        "id": row["question_id"],
        "variant": row["variant"],
        "price": float(row["price"]),
        "title": title,
        "description": description,
    }
    if row["variant"] == "swe_manager":
        game = manager.get("game", {})
        proposals = _literal(row.get("proposals", "")) or game.get("all_formal_proposals", [])
        fields["proposals"] = [{"id": int(p["id"]), "content": str(p["content"])} for p in proposals]
        fields["correct_proposal"] = int(game.get("correct_proposal", {}).get("id", -1))
    else:
        fields["image"] = IC_IMAGE.format(task_id=row["question_id"])
        fields["container"] = dict(IC_CONTAINER)
        fields["env"] = {**IC_ENV, "ISSUE_ID": row["question_id"]}
        fields["test_command"] = IC_TEST_COMMAND
    return fields


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
