"""``lancer replay RUN``: play a recorded run's model turns again and say whether it reproduces.

The task and the config come from the trajectory header (see lancer/agent/provenance.py); the
``replay:`` provider plays the recorded tool calls against a fresh sandbox. Then each
step's observations are compared with the recorded ones, and the new patch with the
recorded patch.diff. Observations are compared after masking what differs between any
two runs: the sandbox's and the run directory's paths, loopback ports, durations, commit
ids and memory addresses.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lancer.agent.outdirs import fresh_dir
from lancer.agent.provenance import load_recorded_task, task_changes
from lancer.core.config import RunConfig, describe_validation_error
from lancer.core.errors import ConfigError
from lancer.core.secrets import redact
from lancer.core.tasks import Task
from lancer.core.text import price_text, truncate_middle
from lancer.core.trajectory import read_trajectory
from lancer.models import Model, create_model

# What two faithful runs still differ in: (pattern, replacement), applied in order.
_VOLATILE = [
    (re.compile(r"/tmp/lancer-[\w.-]+"), "/tmp/lancer-<tmp>"),  # the sandbox's and the app log's temp names
    (re.compile(r"\b(127\.\d+\.\d+\.\d+|localhost|0\.0\.0\.0|\[::1\]):\d+"), r"\1:<port>"),
    # Commit ids (the baseline commit's time differs): hex with a digit and a letter.
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"), "<hash>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s|sec|seconds)\b"), "<time>"),
    (re.compile(r"\b0x[0-9a-fA-F]{6,}\b"), "0x<address>"),
]
SHOWN_CHARS = 2000  # of each output shown side by side
SHOWN_PATCH_LINES = 80


@dataclass
class ReplayPlan:
    """What a replay needs, read from the recorded run."""

    run_dir: Path
    records: list[dict[str, Any]]
    task: Task
    config: RunConfig
    model: Model
    task_changes: list[str] = field(default_factory=list)  # parts of the task changed since the run
    warnings: list[str] = field(default_factory=list)

    def default_out(self) -> Path:
        return fresh_dir(self.run_dir.parent, f"{self.run_dir.name}-replay")


@dataclass
class StepDifference:
    step: int
    call: str  # the tool call whose output differs, e.g. "bash {"command": "ls"}"
    recorded: str
    replayed: str


@dataclass
class ReplayCheck:
    recorded_run: str
    replay_run: str
    task_changes: list[str]
    recorded_steps: int
    replayed_steps: int
    first_difference: StepDifference | None
    patch_same: bool
    patch_diff: str  # unified diff of recorded and replayed patch.diff ("" when the same)
    recorded_verdict: str
    replayed_verdict: str

    @property
    def reproduced(self) -> bool:
        return self.first_difference is None and self.patch_same and self.recorded_steps == self.replayed_steps

    def to_dict(self) -> dict[str, Any]:
        return {"reproduced": self.reproduced, **asdict(self)}

    def report(self) -> str:
        lines = [f"replay of {self.recorded_run} in {self.replay_run}"]
        if self.task_changes:
            lines.append(f"warning: the task changed since the recorded run: its {', '.join(self.task_changes)}")
        difference = self.first_difference
        if difference is None and self.recorded_steps == self.replayed_steps:
            lines.append(f"steps: the observations of all {self.recorded_steps} steps match the recording")
        elif difference is None:
            lines.append(
                f"steps: the recording has {self.recorded_steps}, the replay {self.replayed_steps}; "
                f"the observations of the first {min(self.recorded_steps, self.replayed_steps)} match"
            )
        else:
            lines.append(f"first differing step: {difference.step}, {difference.call}")
            lines.append(f"  recorded output:\n{_indent(difference.recorded)}")
            lines.append(f"  replayed output:\n{_indent(difference.replayed)}")
            if self.recorded_steps != self.replayed_steps:
                lines.append(f"steps: the recording has {self.recorded_steps}, the replay {self.replayed_steps}")
        if self.patch_same:
            lines.append("patch: the same as the recorded patch.diff")
        else:
            lines.append("patch: differs from the recorded patch.diff")
            lines.append(_indent(self.patch_diff))
        lines.append(f"verdict: recorded {self.recorded_verdict}, replayed {self.replayed_verdict}")
        lines.append("REPRODUCED" if self.reproduced else "NOT REPRODUCED")
        return "\n".join(lines)


def prepare_replay(
    run_dir: Path, task: Task | None = None, config: RunConfig | None = None, sandbox: dict[str, Any] | None = None
) -> ReplayPlan:
    """The recorded run's task (unless ``task`` is given), config (unless given) with
    ``sandbox`` settings applied, and a replay model; warnings say what changed since."""
    trajectory = run_dir / "trajectory.jsonl" if run_dir.is_dir() else run_dir
    if not trajectory.is_file():
        raise ConfigError(f"{run_dir} holds no trajectory.jsonl (give a run directory written by lancer run)")
    records = read_trajectory(trajectory)
    header = records[0] if records and records[0].get("type") == "header" else {}
    task = task or load_recorded_task(header, trajectory)
    config = config or _recorded_config(header, trajectory)
    overrides = {k: v for k, v in (sandbox or {}).items() if v is not None}
    config = config.model_copy(update={"sandbox": config.sandbox.model_copy(update=overrides)})
    warnings = []
    changed = task_changes(header, task)
    if changed:
        warnings.append(
            f"the task differs from the recorded one: its {', '.join(changed)} changed since the run "
            "(the replay may not reproduce)"
        )
    recorded_id = header.get("task", {}).get("id")
    if recorded_id not in (None, task.id):
        warnings.append(f"the run was of task {recorded_id!r}, the replay is of {task.id!r}")
    model = create_model(f"replay:{trajectory}", config.model)
    return ReplayPlan(trajectory.parent, records, task, config, model, changed, warnings)


def check_replay(plan: ReplayPlan, replay_dir: Path) -> ReplayCheck:
    """Compare the replay in ``replay_dir`` with the recorded run; also written to replay.json there."""
    replayed = read_trajectory(replay_dir / "trajectory.jsonl")
    recorded_steps, replayed_steps = _steps(plan.records), _steps(replayed)
    mask_recorded, mask_replayed = _masker(plan.records, plan.run_dir), _masker(replayed, replay_dir)
    first: StepDifference | None = None
    for old, new in zip(recorded_steps, replayed_steps, strict=False):
        first = _step_difference(old, new, mask_recorded, mask_replayed)
        if first:
            break
    old_patch = _read(plan.run_dir / "patch.diff")
    new_patch = _read(replay_dir / "patch.diff")
    check = ReplayCheck(
        recorded_run=str(plan.run_dir),
        replay_run=str(replay_dir),
        task_changes=plan.task_changes,
        recorded_steps=len(recorded_steps),
        replayed_steps=len(replayed_steps),
        first_difference=first,
        patch_same=old_patch == new_patch,
        patch_diff=_patch_diff(old_patch, new_patch),
        recorded_verdict=_verdict(plan.run_dir),
        replayed_verdict=_verdict(replay_dir),
    )
    (replay_dir / "replay.json").write_text(redact(json.dumps(check.to_dict(), indent=2)) + "\n")
    return check


def _recorded_config(header: dict[str, Any], trajectory: Path) -> RunConfig:
    try:
        return RunConfig.model_validate(header.get("config") or {})
    except ValidationError as e:
        raise ConfigError(
            f"the config recorded in {trajectory} is not valid now ({describe_validation_error(e)}); "
            "give one with --config FILE"
        ) from None


def _steps(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("type") == "step"]


def _step_difference(
    old: dict[str, Any], new: dict[str, Any], mask_old: _Mask, mask_new: _Mask
) -> StepDifference | None:
    old_seen, new_seen = old.get("observations", []), new.get("observations", [])
    calls = old.get("tool_calls", [])
    for i in range(max(len(old_seen), len(new_seen))):
        a = old_seen[i] if i < len(old_seen) else {"output": "(no observation)"}
        b = new_seen[i] if i < len(new_seen) else {"output": "(no observation)"}
        if mask_old(a.get("output", "")) != mask_new(b.get("output", "")) or a.get("is_error") != b.get("is_error"):
            call = calls[i] if i < len(calls) else {"name": a.get("name", "?"), "arguments": {}}
            arguments = json.dumps(call.get("arguments"), ensure_ascii=False)
            return StepDifference(
                step=int(old.get("step", 0)),
                call=f"{call['name']} {truncate_middle(arguments, 200)}",
                recorded=truncate_middle(a.get("output", ""), SHOWN_CHARS),
                replayed=truncate_middle(b.get("output", ""), SHOWN_CHARS),
            )
    return None


class _Mask:
    """Replaces a run's own paths (its sandbox, its run directory) and volatile numbers with placeholders."""

    def __init__(self, paths: dict[str, str]) -> None:
        # Longest first, so a run directory inside the sandbox root is named as itself.
        self._paths = sorted(((p, name) for p, name in paths.items() if len(p) > 1), key=lambda x: -len(x[0]))

    def __call__(self, text: str) -> str:
        for path, name in self._paths:
            text = text.replace(path, name)
        for pattern, replacement in _VOLATILE:
            text = pattern.sub(replacement, text)
        return text


def _masker(records: list[dict[str, Any]], run_dir: Path) -> _Mask:
    header = records[0] if records else {}
    prompt = next((r for r in records if r.get("type") == "prompt"), {})
    paths: dict[str, str] = {str(run_dir): "<run>", str(run_dir.resolve()): "<run>"}
    if header.get("out_dir"):
        paths[header["out_dir"]] = "<run>"
    workdir = prompt.get("workdir")
    if workdir:
        paths[workdir] = "<workdir>"
        if Path(workdir).parent != Path("/"):  # the local sandbox's temp root (its HOME is there)
            paths[str(Path(workdir).parent)] = "<sandbox>"
    return _Mask(paths)


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b""


def _patch_diff(old: bytes, new: bytes) -> str:
    if old == new:
        return ""
    lines = list(
        difflib.unified_diff(
            old.decode("utf-8", "replace").splitlines(),
            new.decode("utf-8", "replace").splitlines(),
            "recorded/patch.diff",
            "replayed/patch.diff",
            lineterm="",
        )
    )
    if len(lines) > SHOWN_PATCH_LINES:
        lines = [*lines[:SHOWN_PATCH_LINES], f"[... {len(lines) - SHOWN_PATCH_LINES} more lines]"]
    return "\n".join(lines)


def _verdict(run_dir: Path) -> str:
    path = run_dir / "result.json"
    if not path.is_file():
        return "unknown (no result.json)"
    result = json.loads(path.read_text())
    resolved = "resolved" if result.get("resolved") else "not resolved"
    return f"{resolved} (exit: {result.get('exit_status')}, earned {price_text(result.get('earned'))})"


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.rstrip("\n").splitlines()) or "    [no output]"
