"""Eval directories for the study tests, written per the eval contract (README "Evaluations").

Each attempt is a real ``lancer run`` of a bundled task into ``EVAL/runs/<task_id>/<attempt>/``:
a scripted model, or the Anthropic protocol served by the fake model server (its runs
carry screenshots as images, token costs and retries). eval.json and results.jsonl are
then assembled around them as ``lancer eval`` writes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import EXAMPLES, run_lancer
from tests.fakes.conversation import ANTHROPIC_KEY
from tests.fakes.llm_server import ApiError, FakeLLMServer, anthropic_error

# The result.json fields an eval copies into its results.jsonl line.
RESULT_FIELDS = ("task_id", "variant", "price", "resolved", "earned", "exit_status", "cost_usd", "input_tokens",
                 "output_tokens", "steps", "duration_s")  # fmt: skip

SUBMIT_ONLY = "turns:\n  - content: Nothing to change, I think.\n    tool_calls: [{name: submit, arguments: {}}]\n"
WRONG_PROPOSAL = "turns:\n  - tool_calls: [{name: submit, arguments: {proposal_id: 3}}]\n"


@dataclass
class Attempt:
    task: str
    attempt: int
    script: str | None = None  # turns YAML text; None: the task's solution.yaml
    # The Anthropic protocol through the fake server: these errors first, then the script.
    anthropic_errors: list[ApiError] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def run_attempt(eval_dir: Path, spec: Attempt) -> dict[str, Any]:
    """Runs one attempt into eval_dir/runs/<task>/<attempt>/ and returns its results.jsonl row."""
    task_dir = EXAMPLES / spec.task
    out = eval_dir / "runs" / spec.task / str(spec.attempt)
    script = task_dir / "solution.yaml"
    if spec.script is not None:
        script = eval_dir / f"script-{spec.task}-{spec.attempt}.yaml"
        script.write_text(spec.script)
    if spec.anthropic_errors is None:
        proc = run_lancer("run", str(task_dir), "--model", f"scripted:{script}", "--out", str(out))
    else:
        config = eval_dir / "fast-retries.yaml"
        config.write_text(json.dumps({"model": {"retry_initial_wait_s": 0.01, "retry_max_wait_s": 0.05}}))
        with FakeLLMServer.from_turns_file(script, spec.anthropic_errors, api_key=ANTHROPIC_KEY) as server:
            env = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": server.url}
            proc = run_lancer(
                "run",
                str(task_dir),
                "--model",
                "anthropic:claude-sonnet-4-5",
                "--out",
                str(out),
                "--config",
                str(config),
                env=env,
            )
    result = json.loads((out / "result.json").read_text())
    assert proc.returncode in (0, 1), proc.stderr
    grade = result.get("grade") or {}
    return {
        **{k: result[k] for k in RESULT_FIELDS},
        "attempt": spec.attempt,
        "set": None,
        "grade_status": grade.get("status"),
        "run_dir": f"runs/{spec.task}/{spec.attempt}",
        "node": "localhost",
        **spec.extra,
    }


def write_eval(
    eval_dir: Path, model: str, rows: list[dict[str, Any]], attempts: int, summary: dict[str, Any] | None = None
) -> Path:
    """eval.json, results.jsonl (and summary.json if given) around rows already run or made."""
    eval_dir.mkdir(parents=True, exist_ok=True)
    tasks: dict[str, dict[str, Any]] = {}
    for row in rows:
        folder = EXAMPLES / row["task_id"]
        tasks.setdefault(
            row["task_id"],
            {
                "id": row["task_id"],
                "price": row["price"],
                "variant": row["variant"],
                "set": row.get("set"),
                **({"folder": str(folder)} if folder.is_dir() else {}),
            },
        )
    spec = {
        "lancer_version": "0.1.0",
        "command": ["lancer", "eval", "examples/tasks", "--model", model],
        "model": model,
        "config": {"limits": {"max_steps": 50}},
        "tasks": list(tasks.values()),
        "attempts": attempts,
    }
    (eval_dir / "eval.json").write_text(json.dumps(spec, indent=2))
    (eval_dir / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    if summary is not None:
        (eval_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return eval_dir


def build_bundled_eval(eval_dir: Path) -> Path:
    """Three bundled tasks x 2 attempts: resolved, failed (wrong fix, wrong proposal), and a
    model error; the web task's first attempt through the Anthropic protocol, with screenshots."""
    attempts = [
        Attempt("invoice-discount", 1),
        Attempt("invoice-discount", 2, script=SUBMIT_ONLY),
        Attempt("manager-date-format", 1),
        Attempt("manager-date-format", 2, script=WRONG_PROPOSAL),
        Attempt("web-todo-delete", 1, anthropic_errors=[anthropic_error(429, retry_after=0)]),
        Attempt("web-todo-delete", 2, anthropic_errors=[anthropic_error(401)]),
    ]
    rows = [run_attempt(eval_dir, a) for a in attempts]
    return write_eval(eval_dir, "anthropic:claude-sonnet-4-5", rows, attempts=2)
