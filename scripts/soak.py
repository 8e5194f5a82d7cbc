"""A soak with faults: hundreds of ``lancer eval`` attempts in both sandboxes while things break.

    .venv/bin/python scripts/soak.py [--attempts 200] [--sandboxes local,docker] [--workers 4]
                                     [--kills 2] [--engine private|system|none] [--json FILE]

Per sandbox, ``--attempts`` attempts (synthetic tasks x 2 attempts) run through ``lancer
eval`` (a child process) with the real ``openai`` provider against tests/fakes/llm_server.py
on 127.0.0.1, which answers 429 or 500 at random and sometimes hangs past the request
timeout (seeded; the soak config makes timeouts and retries cost seconds). Each synthetic
task is a copy of a bundled example whose scripted turns first do one harmful thing, then
play the task's solution, so most attempts resolve:

- ``bomb``: a backgrounded fork bomb (with ``--local-faults mild``, for a local sandbox
  run with ``isolation: none``, 20 detached ``sleep``s that must not outlive it instead);
- ``memhog``: 2 GB allocated past the 512 MB limit (mild: 256 MB);
- ``flood``: 1 GB printed (``--flood-mb``), in both sandboxes;
- ``crash``: a web task whose app is killed by a bash command, then the browser used (it
  reports the dead app), the app restarted and the bug fixed;
- ``plain``: the solution only.

Meanwhile the eval is killed with ``kill -9`` ``--kills`` times and resumed with the same
command (``--out`` the same folder), and, in the docker pass, the Docker engine is stopped
and started again. ``--engine private`` (the default) runs a Docker engine of the soak's
own (its own socket and data, the base image loaded into it, started with the flags
scripts/docker-up.sh would use), so a shared machine's engine and other users' containers
are never touched; ``--engine system`` restarts the machine's engine as docker-up.sh starts
it (for a machine of one's own); ``none`` skips the restart. The engine is up again at the
end, whatever happens.

At the end it prints (and writes as JSON with ``--json``): attempts, results written, lost
and double-counted attempts, containers / processes (sandbox shells, apps, bwrap) /
temp folders / Chromium processes left behind, the peak memory of the eval's process tree
(lancer's own Python processes, and everything), and the wall time. It exits 1 if any of
lost, double-counted or left-behind is not 0. Everything is on loopback, bounded in count
(``--attempts``) and time (``--time-limit``), and stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.soak_engine import Engine  # noqa: E402
from scripts.soak_procs import Sampler, become_subreaper, descendants, processes, reap_orphans  # noqa: E402
from tests.fakes.llm_server import FakeLLMServer, Faults  # noqa: E402

EXAMPLES = ROOT / "examples" / "tasks"
# In this order, so a small soak has each fault once before any repeats.
KINDS = ("crash", "bomb", "memhog", "flood", "plain")
ATTEMPTS_PER_TASK = 2
REQUEST_TIMEOUT_S = 2.0
TURN_USAGE = {"input_tokens": 3000, "output_tokens": 150}

# A run config that makes every model fault cost seconds, not minutes.
SOAK_CONFIG: dict[str, Any] = {
    "limits": {"max_steps": 30, "time_limit_s": 600, "cost_limit_usd": 1.0},
    "model": {
        "request_timeout_s": REQUEST_TIMEOUT_S,
        "max_retries": 10,
        "retry_initial_wait_s": 0.1,
        "retry_max_wait_s": 0.5,
        "retry_max_total_s": 60,
    },
    "tools": {"bash_timeout_s": 60},
    "sandbox": {"memory": "512m", "pids_limit": 256},
    "grader": {"attempts": 1},
}


# --- tasks and their scripts -------------------------------------------------------------


def fault_turns(kind: str, sandbox: str, mild_local: bool, flood_mb: int) -> list[dict[str, Any]]:
    """The harmful turns a task of ``kind`` opens with, and a check that the shell still works."""

    def bash(command: str) -> dict[str, Any]:
        return {"tool_calls": [{"name": "bash", "arguments": {"command": command}}]}

    mild = mild_local and sandbox == "local"
    if kind == "bomb":
        first = "for i in $(seq 20); do (sleep 300 &); done; echo spawned" if mild else "bomb() { bomb | bomb & }; bomb"
    elif kind == "memhog":
        size = 256 if mild else 2048
        first = f"python3 -c \"b = b'x' * ({size} * 1024 * 1024); print(len(b))\""
    elif kind == "flood":
        first = f"yes 'soak flood line' | head -c {flood_mb}M; echo"
    elif kind == "crash":
        return [
            {"tool_calls": [{"name": "browser", "arguments": {"action": "goto", "url": "/"}}]},
            bash("kill -9 $(cat .soak-app.pid); sleep 0.5; echo killed"),
            {"tool_calls": [{"name": "browser", "arguments": {"action": "goto", "url": "/"}}]},
            {"tool_calls": [{"name": "browser", "arguments": {"action": "restart_app"}}]},
        ]
    else:
        return []
    return [bash(first), bash("echo still-alive && ls")]


def solution_turns(kind: str) -> list[dict[str, Any]]:
    if kind != "crash":
        turns: list[dict[str, Any]] = yaml.safe_load((EXAMPLES / "invoice-discount" / "solution.yaml").read_text())[
            "turns"
        ]
        return turns
    # web-todo-delete's fix and submit; the grader's browser tests judge it.
    turns = yaml.safe_load((EXAMPLES / "web-todo-delete" / "solution.yaml").read_text())["turns"]
    fix = next(t for t in turns if any(c["name"] == "editor" for c in t.get("tool_calls", [])))
    return [fix, {"tool_calls": [{"name": "submit", "arguments": {}}]}]


def marker(kind: str) -> str:
    return f"Soak fault: {kind}."


def make_tasks(root: Path, count: int) -> list[str]:
    """``count`` task folders under ``root`` (kinds in turn); their ids."""
    ids = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        source = EXAMPLES / ("web-todo-delete" if kind == "crash" else "invoice-discount")
        task_id = f"soak-{i:03d}-{kind}"
        dest = root / task_id
        shutil.copytree(source, dest)
        data = yaml.safe_load((dest / "task.yaml").read_text())
        data.update(id=task_id, description=f"{data['description']}\n{marker(kind)}\n")
        if kind == "crash":  # the app says where it runs, so a bash command can kill it
            data["app"]["command"] = f"echo $$ > .soak-app.pid; exec {data['app']['command']}"
            with (dest / "repo" / ".gitignore").open("a") as f:
                f.write(".soak-app.pid\n")
        (dest / "task.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        (dest / "solution.yaml").unlink(missing_ok=True)
        ids.append(task_id)
    return ids


def routes(sandbox: str, mild_local: bool, flood_mb: int) -> dict[str, list[Any]]:
    from lancer.models.scripted import load_turns

    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            path = Path(tmp) / f"{kind}.yaml"
            turns = fault_turns(kind, sandbox, mild_local, flood_mb) + solution_turns(kind)
            for turn in turns:  # a fixed size per turn: the fake server's own figures grow with its turn count
                turn["usage"] = TURN_USAGE
            path.write_text(yaml.safe_dump({"turns": turns}))
            result[marker(kind)] = list(load_turns(path))
    return result


# --- one eval, with its kills and the engine's restart ------------------------------------------


@dataclass
class Pass:
    sandbox: str
    out: Path
    task_ids: list[str]
    attempts: int
    kills: int = 0
    runs: int = 0
    exit_codes: list[int] = field(default_factory=list)
    timed_out: bool = False


def result_lines(out: Path) -> int:
    path = out / "results.jsonl"
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def run_pass(
    p: Pass,
    tasks: Path,
    base_url: str,
    workers: int,
    events: list[tuple[int, str]],
    engine: Engine,
    sampler: Sampler,
    deadline: float,
) -> None:
    """Run the eval to its end; at each (results count, action) kill it and resume, or restart the engine."""
    config = p.out.parent / "soak-config.yaml"
    config.write_text(yaml.safe_dump(SOAK_CONFIG))
    command = [
        sys.executable,
        "-m",
        "lancer.cli.main",
        "eval",
        str(tasks),
        "--model",
        "openai:gpt-4o",
        "--attempts",
        str(ATTEMPTS_PER_TASK),
        "--workers",
        str(workers),
        "--sandbox",
        p.sandbox,
        "--config",
        str(config),
        "--out",
        str(p.out),
    ]
    env = {
        **os.environ,
        **(engine.env if p.sandbox == "docker" else {}),
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "sk-soak-not-a-real-key",
        "TMPDIR": str(p.out.parent / "tmp"),
    }
    pending = sorted(events)
    restarts: list[threading.Thread] = []
    while True:
        p.runs += 1
        log = (p.out.parent / f"eval-{p.sandbox}-{p.runs}.log").open("wb")
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        killed = False
        while proc.poll() is None:
            sampler.sample(proc.pid)
            if not any(thread.is_alive() for thread in restarts):  # its docker commands are waited for there
                reap_orphans({proc.pid, *engine.pids()})
            if time.monotonic() > deadline and not p.timed_out:
                p.timed_out = True
                proc.send_signal(signal.SIGINT)  # the eval's own Ctrl-C: it cleans up
            done = result_lines(p.out)
            while pending and done >= pending[0][0] and not killed:
                _, action = pending.pop(0)
                if action == "kill":
                    proc.kill()
                    p.kills += 1
                    killed = True
                else:
                    restarts.append(threading.Thread(target=engine.restart, daemon=True))
                    restarts[-1].start()
            time.sleep(0.25)
        p.exit_codes.append(proc.wait())
        log.close()
        if not killed or p.timed_out:
            for thread in restarts:
                thread.join()
            return


# --- the checks -------------------------------------------------------------------------------


def check_pass(p: Pass) -> dict[str, Any]:
    expected = {(t, a) for t in p.task_ids for a in range(1, ATTEMPTS_PER_TASK + 1)}
    seen: Counter[tuple[str, int]] = Counter()
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    torn, broken_runs = 0, []
    path = p.out / "results.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            torn += 1
            continue
        seen[(row["task_id"], row["attempt"])] += 1
        statuses[row["exit_status"]] += 1
        if row.get("exit_status") == "error" or row.get("grade_status") == "error":
            errors[str(row.get("detail") or "no detail")[:160]] += 1
        if not run_dir_intact(p.out / row["run_dir"]):
            broken_runs.append(row["run_dir"])
    runs = p.out / "runs"
    orphan_dirs = [d for d in runs.glob("*/*") if (d.parent.name, int(d.name)) not in seen] if runs.is_dir() else []
    summary = json.loads((p.out / "summary.json").read_text()) if (p.out / "summary.json").is_file() else {}
    overall = summary.get("overall", {})
    return {
        "sandbox": p.sandbox,
        "attempts": len(expected),
        "results_written": sum(seen.values()),
        "lost": len(expected - set(seen)),
        "double_counted": sum(n - 1 for n in seen.values()) + len(set(seen) - expected),
        "torn_lines": torn,
        "run_dirs_without_result": len(orphan_dirs),
        "run_dirs_broken": broken_runs,
        "summary_attempts": overall.get("attempts"),
        "resolved": overall.get("resolved"),
        "errors": overall.get("errors"),
        "exit_statuses": dict(statuses),
        "error_reasons": dict(errors),
        "kills": p.kills,
        "eval_runs": p.runs,
        "eval_exit_codes": p.exit_codes,
        "timed_out": p.timed_out,
    }


def run_dir_intact(run_dir: Path) -> bool:
    """A counted attempt's run directory has its result.json and a trajectory.jsonl of whole lines."""
    try:
        json.loads((run_dir / "result.json").read_text())
        lines = (run_dir / "trajectory.jsonl").read_text().splitlines()
        for line in lines:
            json.loads(line)
    except (OSError, ValueError):
        return False
    return bool(lines)


def leftovers(temp_roots: list[Path], engine: Engine, sampler: Sampler) -> dict[str, Any]:
    """What is left once every eval has ended: the soak is the subreaper of all they started."""
    deadline = time.monotonic() + 20  # PDEATHSIG'd workers may still be cleaning up
    while True:
        mine = [p for p in descendants(os.getpid(), processes()) if p.pid != os.getpid()]
        if not mine or time.monotonic() > deadline:
            break
        time.sleep(1)
    # Each with what is in it (up to 5 names), to tell who left it.
    temps = sorted(f"{e} {sorted(c.name for c in e.iterdir())[:5] if e.is_dir() else ''}".strip()
                   for tmp in temp_roots if tmp.is_dir() for e in tmp.iterdir())  # fmt: skip
    containers = engine.containers(sampler.pids) if engine.mode != "none" or engine.up() else []
    return {
        "containers_left": len(containers),
        "processes_left": len(mine),
        "chromium_left": sum("chrom" in (p.name + p.cmdline).lower() for p in mine),
        "temp_folders_left": len(temps),
        "left_details": {
            "containers": containers,
            "processes": [f"{p.pid} {p.cmdline[:120]}" for p in mine],
            "temp_folders": temps[:20],
        },
    }


# --- main -----------------------------------------------------------------------------------------


def schedule(total: int, kills: int, restart_engine: bool) -> list[tuple[int, str]]:
    """Kills spread over the eval; the engine restart half-way between two kills' marks, so
    it finds attempts running in the engine rather than an eval just starting."""
    step = total / (kills + 2)
    events = [(max(1, round(step * (j + 1))), "kill") for j in range(kills)]
    if restart_engine:
        mark = max(1, round(step * 1.5))
        events.append((mark + 1 if any(m == mark for m, _ in events) else mark, "restart"))
    return events


@contextlib.contextmanager
def workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    # Short: the private engine's sockets live in it (unix socket paths are limited).
    path = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", str(path)], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--attempts", type=int, default=200, help="attempts per sandbox (tasks x 2)")
    parser.add_argument("--sandboxes", default="local,docker", help="comma-separated: local, docker")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=2, help="kill -9 and resume the eval this many times per pass")
    parser.add_argument("--engine", choices=["private", "system", "none"], default="private")
    parser.add_argument(
        "--local-faults",
        choices=["mild", "full"],
        default="full",
        help="mild: no real fork bomb or memory hog in the local sandbox (for isolation: none)",
    )
    parser.add_argument("--flood-mb", type=int, default=1024, help="what the flood task prints, MB")
    parser.add_argument("--error-rate", type=float, default=0.08, help="model requests answered 429 or 500")
    parser.add_argument("--hang-rate", type=float, default=0.02, help="model requests left hanging past the timeout")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=3600, help="seconds for the whole soak")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder)")
    args = parser.parse_args()
    sandboxes = [s for s in args.sandboxes.split(",") if s]
    if bad := set(sandboxes) - {"local", "docker"}:
        parser.error(f"--sandboxes: unknown {', '.join(sorted(bad))} (local, docker)")
    become_subreaper()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"soak: stopped by signal {signum}"))
    started = time.monotonic()
    deadline = started + args.time_limit
    sampler = Sampler()
    passes: list[Pass] = []
    figures: dict[str, Any] = {}
    with workdir(args.keep) as work:
        engine = Engine(args.engine if "docker" in sandboxes else "none", work / "engine")
        faults = Faults(args.error_rate, args.hang_rate, REQUEST_TIMEOUT_S + 1.5, args.seed)
        try:
            if engine.mode == "private":
                engine.start()
            for sandbox in sandboxes:
                folder = work / sandbox
                (folder / "tmp").mkdir(parents=True, exist_ok=True)
                ids = make_tasks(folder / "tasks", math.ceil(args.attempts / ATTEMPTS_PER_TASK))
                p = Pass(sandbox, folder / "eval", ids, len(ids) * ATTEMPTS_PER_TASK)
                passes.append(p)
                server = FakeLLMServer([], routes=routes(sandbox, args.local_faults == "mild", args.flood_mb))
                server.faults = faults
                events = schedule(p.attempts, args.kills, sandbox == "docker" and engine.mode != "none")
                with server:
                    run_pass(
                        p, folder / "tasks", server.openai_base_url, args.workers, events, engine, sampler, deadline
                    )
                figures["model_errors_served"] = figures.get("model_errors_served", 0) + len(server.errors_served)
                figures["model_hangs_served"] = figures.get("model_hangs_served", 0) + server.hangs_served
                figures["model_requests"] = figures.get("model_requests", 0) + len(server.requests)
                figures.setdefault("model_requests_rejected", []).extend(server.rejected)
                print(f"[soak] {sandbox} pass done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
            checks = [check_pass(p) for p in passes]
            left = leftovers([p.out.parent / "tmp" for p in passes], engine, sampler)
        finally:
            if engine.mode == "private":
                with contextlib.suppress(Exception):
                    for cid in engine.containers(set()):
                        engine.docker("rm", "-f", cid, timeout=60)
                engine.stop()
            engine.ensure_up()
    total = {
        "attempts": sum(c["attempts"] for c in checks),
        "results_written": sum(c["results_written"] for c in checks),
        "lost": sum(c["lost"] for c in checks),
        "double_counted": sum(c["double_counted"] for c in checks),
        **{k: v for k, v in left.items() if k != "left_details"},
        "peak_rss_lancer_mb": round(sampler.peak_lancer_kb / 1024, 1),
        "peak_rss_lancer_process_mb": round(sampler.peak_process_kb / 1024, 1),
        "peak_rss_tree_mb": round(sampler.peak_tree_kb / 1024, 1),
        "wall_s": round(time.monotonic() - started, 1),
        "kills": sum(c["kills"] for c in checks),
        "engine_restarts": engine.restarts,
        **figures,
    }
    broken = [
        k
        for k in ("lost", "double_counted", "containers_left", "processes_left", "temp_folders_left", "chromium_left")
        if total[k]
    ]
    if total["model_requests_rejected"]:
        broken.append(f"{len(total['model_requests_rejected'])} malformed model request(s)")
    for c in checks:
        broken += [f"{c['sandbox']}: timed out"] if c["timed_out"] else []
        broken += [f"{c['sandbox']}: {c[k]} {k}" for k in ("torn_lines", "run_dirs_without_result") if c[k]]
        broken += [f"{c['sandbox']}: run dirs broken: {', '.join(c['run_dirs_broken'][:5])}"] * bool(
            c["run_dirs_broken"]
        )
    report = {"ok": not broken, "broken": broken, "total": total, "passes": checks, "left": left["left_details"]}
    for c in checks:
        print(
            f"{c['sandbox']:>6}: {c['attempts']} attempts, {c['results_written']} results, lost {c['lost']}, "
            f"double-counted {c['double_counted']}, resolved {c['resolved']}, errors {c['errors']}, "
            f"kills {c['kills']}, exit statuses {c['exit_statuses']}"
        )
    print(
        f"soak: attempts {total['attempts']}, results written {total['results_written']}, lost {total['lost']}, "
        f"double-counted {total['double_counted']}, containers left {total['containers_left']}, "
        f"processes left {total['processes_left']}, temp folders left {total['temp_folders_left']}, "
        f"Chromium left {total['chromium_left']}, peak lancer RSS {total['peak_rss_lancer_mb']} MB "
        f"(one process {total['peak_rss_lancer_process_mb']} MB, whole tree {total['peak_rss_tree_mb']} MB), "
        f"wall {total['wall_s']} s; kills {total['kills']}, engine restarts {total['engine_restarts']}, "
        f"model errors {total.get('model_errors_served', 0)}, hangs {total.get('model_hangs_served', 0)} "
        f"of {total.get('model_requests', 0)} requests: {'OK' if not broken else 'BROKEN: ' + ', '.join(broken)}"
    )
    if broken and left["left_details"]:
        print(json.dumps(left["left_details"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if not broken else 1


if __name__ == "__main__":
    sys.exit(main())
