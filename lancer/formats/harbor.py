"""Harbor (Terminal-Bench 2) task folders, read as lancer tasks; lancer tasks written as them.

A Harbor task is ``task.toml``, ``instruction.md``, ``environment/Dockerfile``,
``solution/solve.sh`` and ``tests/test.sh``, which writes a reward to /logs/verifier. Which
task.toml fields are read, and how the export maps a lancer task: docs/harbor.md.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from lancer.core.config import RunConfig, describe_validation_error
from lancer.core.errors import TaskError
from lancer.core.tasks import ContainerSpec, Task, TaskLimits
from lancer.formats.harbor_toml import WRITTEN_SCHEMA, Metadata, NetworkMode, TaskToml, host_env, read_task_toml
from lancer.formats.harbor_web import (
    CONFTEST,
    browser_layer,
    check_web_exportable,
    conftest,
    is_web_task,
    web_test_body,
)

# Where Harbor puts things in the task's container.
TESTS_AT = "/tests"
SOLUTION_AT = "/solution"
VERIFIER_DIR = "/logs/verifier"
TEST_SCRIPT = "test.sh"
SOLVE_SCRIPT = "solve.sh"
DOCKERFILE = "environment/Dockerfile"
# Its sidecars: the agent and the verifier run in its ``main`` service (lancer.sandbox.docker.compose).
COMPOSE_FILE = "environment/docker-compose.yaml"
# The agent's workdir when the Dockerfile sets none (Terminal-Bench's convention).
DEFAULT_WORKDIR = "/app"
# An exported manager task: the agent writes the number of the proposal it picks here.
ANSWER_FILE = "proposal.txt"


def load_harbor_task(folder: Path) -> Task:
    """The lancer task of a Harbor task folder; TaskError (one line) naming the task and the field."""
    folder = Path(folder).resolve()
    name = folder.name
    spec = read_task_toml(folder / "task.toml", name)
    instruction = (folder / "instruction.md").read_text(errors="replace")
    if not instruction.strip():
        raise TaskError(f"task {name}: instruction.md is empty (it is what the agent is asked to do)")
    if not (folder / "tests" / TEST_SCRIPT).is_file():
        raise TaskError(f"task {name}: tests/{TEST_SCRIPT} is missing (it grades the task by writing a reward)")
    env = spec.environment
    if env.gpus:
        raise TaskError(f"task {name}: task.toml environment.gpus = {env.gpus}: lancer's sandboxes have no GPUs")
    dockerfile = folder / DOCKERFILE
    # A prebuilt docker_image is its Dockerfile's build: with the Dockerfile beside it,
    # lancer builds that (no registry to pull from); without one, the image must be here.
    image = None if dockerfile.is_file() else env.docker_image
    compose = (folder / COMPOSE_FILE).is_file()
    if image is None and not dockerfile.is_file():
        main = " (the image of its docker-compose file's main service)" if compose else ""
        raise TaskError(f"task {name}: no {DOCKERFILE} and no environment.docker_image in task.toml{main}")
    dockerfile_text = dockerfile.read_text(errors="replace") if dockerfile.is_file() else ""
    exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in spec.verifier.env.items())
    metadata = _metadata(spec, name)
    public = {phase: spec.network(phase) == NetworkMode.PUBLIC for phase in ("agent", "verifier")}
    fields = {
        "id": name,
        "variant": "ic_swe",
        "price": metadata.price,  # None: no dollars claimed, not $0
        "title": _title(instruction, name),
        "description": instruction,
        "image": image,
        "dockerfile": None if image else DOCKERFILE,
        "compose": COMPOSE_FILE if compose else None,
        "network": public["agent"],
        "grader_network": public["verifier"],
        "env": host_env(env.env, name),
        "agent_env": spec.agent.env,
        "solution_env": spec.solution.env,
        "test_command": f"{exports}bash {TESTS_AT}/{TEST_SCRIPT}",
        "tests_at": TESTS_AT,
        "reward_dir": VERIFIER_DIR,
        # Harbor's agent and verifier are root in the container unless [agent] / [verifier]
        # user say otherwise; an ENTRYPOINT or CMD (a service the tests query) runs as the
        # image says.
        "container": ContainerSpec(
            workdir=_workdir(dockerfile_text, name),
            user=_user(spec.agent.user),
            grader_user=None if spec.verifier.user is None else str(spec.verifier.user),
            image_command=bool(_instruction("ENTRYPOINT|CMD").search(dockerfile_text)),
        ),
        "limits": TaskLimits(
            time_limit_s=spec.agent.timeout_sec,
            grader_timeout_s=spec.verifier.timeout_sec,
            build_timeout_s=env.build_timeout_sec,
            cpus=env.cpus,
            memory=f"{env.memory_mb}m",
        ),
        "difficulty": metadata.difficulty,
        "category": metadata.category,
        "tags": metadata.tags,
    }
    try:
        task = Task.model_validate(fields)
    except ValidationError as e:
        raise TaskError(f"task {name}: {describe_validation_error(e)}") from None
    task.folder = task.source = folder
    return task


def _metadata(spec: TaskToml, name: str) -> Metadata:
    try:
        return spec.lancer_metadata()
    except ValidationError as e:
        raise TaskError(f"task {name}: task.toml metadata.{describe_validation_error(e)}") from None


def _user(user: str | int | None) -> str:
    return "root" if user is None else str(user)


def _title(instruction: str, name: str) -> str:
    first = next((line.strip() for line in instruction.splitlines() if line.strip()), name)
    return first.lstrip("#").strip()[:200] or name


def _instruction(keywords: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*(?:{keywords})\s+(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


def _workdir(dockerfile_text: str, name: str) -> str:
    """The image's WORKDIR as its Dockerfile leaves it (a relative one joins the one before)."""
    workdir = PurePosixPath(DEFAULT_WORKDIR)
    found = False
    for match in _instruction("WORKDIR").finditer(dockerfile_text):
        value = match.group(1).strip("\"'")
        if "$" in value:
            raise TaskError(f"task {name}: {DOCKERFILE}'s WORKDIR {value} uses a variable: write the path out")
        workdir = workdir / value if found else PurePosixPath("/") / value
        found = True
    if str(workdir) == "/":
        raise TaskError(f"task {name}: {DOCKERFILE}'s WORKDIR is /: the agent needs a folder of its own")
    return str(workdir)


def write_harbor_task(task: Task, root: Path, base_image: str, solution: bytes | None = None) -> Path:
    """Write ``task`` as the Harbor task folder ``root/<task id>`` and return it.

    ``solution``: the fix as a git diff (solve.sh applies it); a manager task's solution is
    its correct proposal. The hidden tests become tests/test.sh, which writes reward 1 when
    they pass, 0 when they fail, and nothing when they cannot run (a web task's start its
    app first and bring their browser: lancer.formats.harbor_web). TaskError (one line) for
    a task Harbor cannot express.
    """
    check_exportable(task)
    out = Path(root) / task.id
    if out.exists():
        raise TaskError(f"{out} already exists: remove it, or export to another folder")
    workdir = task.container.workdir if task.container else DEFAULT_WORKDIR
    manager = task.variant == "swe_manager"
    (out / "solution").mkdir(parents=True)
    (out / "tests").mkdir()
    _write_environment(task, out / "environment", workdir, base_image)
    (out / "task.toml").write_text(_task_toml(task))
    answer = f"{workdir}/{ANSWER_FILE}"
    instruction = f"# {task.title}\n\n{task.description.strip()}\n"
    if manager:
        proposals = "".join(f"\n## Proposal {p.id}\n\n{p.content.strip()}\n" for p in task.proposals)
        instruction += (
            f"\n# Proposals\n{proposals}\nPick the proposal that fixes the issue: change no code, write its "
            f"number alone to {answer}.\n"
        )
    (out / "instruction.md").write_text(instruction)
    if manager:
        _script(out / "solution" / SOLVE_SCRIPT, f"echo {task.correct_proposal} > {shlex.quote(answer)}")
        check = f'[ "$(tr -d "[:space:]" < {shlex.quote(answer)} 2>/dev/null)" = "{task.correct_proposal}" ]'
        _script(out / "tests" / TEST_SCRIPT, _reward_script(f"{check} && exit 0 || exit 1", workdir))
        return out
    if solution is not None:
        (out / "solution" / "solution.patch").write_bytes(solution)
        apply = 'git apply --whitespace=nowarn "$(dirname "$0")/solution.patch"'
        _script(out / "solution" / SOLVE_SCRIPT, f"cd {shlex.quote(workdir)}\n{apply}")
    if task.tests_dir is not None:
        shutil.copytree(task.tests_dir, out / "tests", dirs_exist_ok=True, ignore=_IGNORED)
    if task.app is not None and is_web_task(task):
        (out / "tests" / CONFTEST).write_text(conftest())
        _script(out / "tests" / TEST_SCRIPT, _reward_script(web_test_body(task.app, task.test_command), workdir))
        return out
    copy_tests = 'mkdir -p tests && cp -R "$here"/. tests/ && rm -f tests/test.sh\n' if task.tests_dir else ""
    command = task.test_command or task.default_test_command()
    body = f"{copy_tests}export LANCER_TEST_REPORT=/tmp/lancer-test-report.xml\nbash -c {shlex.quote(command)}"
    _script(out / "tests" / TEST_SCRIPT, _reward_script(body, workdir))
    return out


_GIT_BASELINE = (
    "git init -q && git add -A && git -c user.name=lancer -c user.email=lancer@localhost "
    'commit -q --no-verify -m "lancer baseline"'
)
_IGNORED = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache")


def check_exportable(task: Task) -> None:
    """TaskError unless Harbor can express ``task``."""
    why = None
    if task.reward_dir is not None:
        why = "it is graded by a reward file already (a Harbor task): copy its folder instead"
    elif task.container is not None and (task.container.image_command or task.container.prepare):
        why = "its image's own setup (container.image_command, prepare) has no Harbor equivalent"
    elif task.variant == "ic_swe" and task.tests_dir is None and task.test_command is None:
        why = "it has no hidden tests"
    if why:
        raise TaskError(f"task {task.id} cannot be exported as a Harbor task: {why}")
    if is_web_task(task):
        check_web_exportable(task)


def _write_environment(task: Task, environment: Path, workdir: str, base_image: str) -> None:
    """environment/Dockerfile: the task's image (or Dockerfile, or lancer's base), a web
    task's browser, its repo at the workdir, its env and setup commands baked in."""
    lines = [f"FROM {task.image or base_image}"]
    if task.dockerfile and task.folder:
        source = task.folder / task.dockerfile
        shutil.copytree(source.parent, environment, ignore=_IGNORED)
        lines = [source.read_text().rstrip()]
    environment.mkdir(exist_ok=True)
    if is_web_task(task):
        lines.append(browser_layer())
    lines += [f"ENV {key}={json.dumps(value)}" for key, value in task.env.items()]
    lines.append(f"RUN mkdir -p {workdir}")
    if task.repo_dir is not None:
        shutil.copytree(task.repo_dir, environment / "repo", ignore=_IGNORED)
        lines.append(f"COPY repo/ {workdir}/")
    lines.append(f"WORKDIR {workdir}")
    if task.repo_dir is not None and task.setup:
        # lancer runs a task's setup in a git repository (its baseline); some builds need
        # one (hatch-vcs, setuptools-scm read their version from it).
        lines.append(f"RUN {_GIT_BASELINE}")
    lines += [f"RUN {command}" for command in task.setup]
    (environment / "Dockerfile").write_text("\n".join(lines) + "\n")


def _task_toml(task: Task) -> str:
    """Schema 1.x, every limit and the network written out: Harbor's defaults are not
    lancer's (cpus 1, memory_mb 2048, the network public), so nothing is left to them."""
    limits, defaults = task.limits, RunConfig()
    sections: dict[str, dict[str, object]] = {
        "metadata": {"difficulty": task.difficulty, "category": task.category, "tags": task.tags, "price": task.price},
        "verifier": {"timeout_sec": limits.grader_timeout_s or defaults.grader.timeout_s},
        "agent": {"timeout_sec": limits.time_limit_s},
        "environment": {
            "build_timeout_sec": limits.build_timeout_s,
            # Harbor's cpus are whole.
            "cpus": math.ceil(limits.cpus or defaults.sandbox.cpus),
            "memory_mb": _megabytes(limits.memory or defaults.sandbox.memory),
            "network_mode": (NetworkMode.PUBLIC if task.network else NetworkMode.NO_NETWORK).value,
        },
    }
    text = f'# Written by lancer export from task {task.id}.\nschema_version = "{WRITTEN_SCHEMA}"\n'
    for name, fields in sections.items():
        given = {k: v for k, v in fields.items() if v not in (None, [])}
        if given:
            text += f"\n[{name}]\n" + "".join(f"{k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in given.items())
    return text


def _megabytes(memory: str) -> int:
    units = {"b": 1 / 2**20, "k": 1 / 1024, "m": 1, "g": 1024}
    unit = memory[-1].lower() if memory[-1].isalpha() else "b"
    return max(1, round(float(memory.rstrip("bkmgBKMG")) * units[unit]))


def _reward_script(body: str, workdir: str) -> str:
    """A test.sh: ``body`` runs in the workdir; exit 0 writes reward 1, exit 1 reward 0, and
    anything else no reward (the tests could not run: an error, not a failed fix)."""
    return (
        "# Written by lancer export. Reward 1: the hidden tests passed; 0: they failed;\n"
        "# none: they could not run.\n"
        'here="$(cd "$(dirname "$0")" && pwd)"\n'
        f"mkdir -p {VERIFIER_DIR}\ncd {shlex.quote(workdir)}\n(\n{body}\n)\nstatus=$?\n"
        "case $status in\n"
        f"  0) echo 1 > {VERIFIER_DIR}/reward.txt ;;\n"
        f"  1) echo 0 > {VERIFIER_DIR}/reward.txt ;;\n"
        '  *) echo "the hidden tests could not run (exit $status): no reward" >&2 ;;\n'
        "esac\n"
    )


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)
