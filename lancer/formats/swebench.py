"""SWE-bench instances (JSONL, JSON or parquet rows) as lancer tasks.

Each instance becomes a task folder in a workspace (docs/swebench.md): ``repo/`` is the
repository at ``base_commit`` without its history (so the fix cannot leak), ``test.patch``
the instance's ``test_patch`` (applied only at grading), ``solution.patch`` its gold
``patch`` (what ``--model oracle`` plays) and ``task.yaml`` the rest. The repository comes
from ``--repos``: a folder of ``owner__name`` git repositories, or a git URL or path with
``{repo}`` (owner/name) or ``{owner_name}`` (owner__name) in it, cloned once.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from lancer.core.config import StrictModel, describe_validation_error
from lancer.core.errors import TaskError
from lancer.core.tasks import Task, load_task
from lancer.formats import swebench_export
from lancer.formats.swebench_package import refuse_other_runner, require_swebench

SUFFIXES = (".jsonl", ".json", ".parquet")
# The instance's own image (SWE-bench's naming), used by --sandbox docker when this machine
# has it: its tree at /testbed, installed in its conda env, run as root as SWE-bench runs
# it. Without it the instance's repo/ goes to /testbed of an environment image lancer
# builds once per env_key (lancer.core.tasks.Task.sandbox_spec, docs/swebench.md).
IMAGE = "swebench/sweb.eval.x86_64.{id}:latest"
IMAGE_CONTAINER = {"workdir": "/testbed", "user": "root"}
SETUP = ["if [ -f pyproject.toml ] || [ -f setup.py ]; then python3 -m pip install -q -e .; fi"]
# An instance's eval_script, in its task folder; a task repo's task folder, its image's build context.
EVAL_SCRIPT = "eval.sh"
IMAGE_CONTEXT = "image"
# `lancer export --format swebench`: each task's repository is lancer/<task id>.
EXPORT_OWNER = "lancer"


class Instance(StrictModel, extra="ignore"):
    """The fields lancer reads; any other column (created_at, ...) is ignored."""

    instance_id: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.@+=-]*$")
    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    base_commit: str
    patch: str
    test_patch: str
    problem_statement: str
    FAIL_TO_PASS: list[str] = Field(min_length=1)
    PASS_TO_PASS: list[str]
    version: str | None = None
    environment_setup_commit: str | None = None
    # The current datasets' (swebench 5.x): with both, the instance runs as the official
    # harness runs it (docker only, in ``image``: lancer.grader.swebench_eval).
    image: str | None = None
    eval_script: str | None = None
    log_parser: str | None = None
    eval_type: str | None = None
    # A task repo's: the folder whose Dockerfile builds its image (not a dataset column).
    dockerfile: Path | None = Field(None, exclude=True)

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        # The HF datasets hold these as JSON-encoded strings.
        return json.loads(value) if isinstance(value, str) else value

    @property
    def owner_name(self) -> str:
        return self.repo.replace("/", "__")

    @property
    def current(self) -> bool:
        """Whether it carries its image and eval_script: its tree is the image's, no --repos."""
        return bool((self.image or self.dockerfile) and self.eval_script)


def is_instances_file(path: Path) -> bool:
    return path.suffix in SUFFIXES


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a .jsonl, .json (a list of objects) or .parquet file."""
    if not path.is_file():
        raise TaskError(f"SWE-bench instances file {path} does not exist")
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as parquet  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise TaskError(f"reading {path} needs pyarrow: pip install pyarrow (or give the rows as .jsonl)") from None
        return list(parquet.read_table(path).to_pylist())
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise TaskError(f"{path} is not valid JSON{' lines' if path.suffix == '.jsonl' else ''}: {e}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise TaskError(f"{path} must hold SWE-bench instances: JSON objects, one a line (.jsonl) or in a list (.json)")
    return rows


def parse_instance(row: dict[str, Any], path: Path) -> Instance:
    name = row.get("instance_id", "?")
    try:
        return Instance.model_validate(row)
    except ValidationError as e:
        raise TaskError(f"{path} instance {name}: {describe_validation_error(e)}") from None
    except json.JSONDecodeError as e:
        raise TaskError(f"{path} instance {name}: FAIL_TO_PASS or PASS_TO_PASS is not a JSON list ({e})") from None


def select_instances(
    path: Path, ids: Iterable[str] | None, repos: str | None, price_from: str, workspace: Path
) -> list[Task]:
    """The tasks of ``path``'s instances (those named by ``ids``, else all), their folders
    made in ``workspace`` (kept: a folder is made once per instance). Raises TaskError."""
    from lancer.formats.swebench_tasks import is_task_repo, read_task_repo

    contexts: dict[str, Path] = {}
    if is_task_repo(path):  # each instance's image comes from its folder's Dockerfile
        require_swebench()  # its reader is swebench's own
        read = read_task_repo(path)
        rows = [{**row, "image": None} for row, _ in read]
        contexts = {str(row["instance_id"]): folder for row, folder in read}
    else:
        rows = read_rows(path)
    wanted = list(dict.fromkeys(ids)) if ids is not None else None
    if wanted is not None:
        known = {r.get("instance_id") for r in rows}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise TaskError(f"no instance {', '.join(unknown[:5])} in {path} ({len(rows)} instances)")
        rows = [r for r in rows if r.get("instance_id") in wanted]
    if not rows:
        raise TaskError(f"{path} holds no instances")
    instances = [(parse_instance(row, path), row) for row in rows]  # every row checked before any work
    for instance, _ in instances:
        instance.dockerfile = contexts.get(instance.instance_id)
        if instance.current and not (instance.log_parser and instance.eval_type):
            why = "an eval_script needs its log_parser and eval_type"
            raise TaskError(f"{path} instance {instance.instance_id}: {why}")
    require_swebench()
    for instance, _ in instances:
        if not instance.current:
            refuse_other_runner(instance.instance_id, instance.repo, path)
    if repos is None and not all(instance.current for instance, _ in instances):
        raise TaskError("SWE-bench instances need their repositories: give --repos DIR (owner__name git repositories)")
    return [_task(instance, row, repos, price_from, workspace) for instance, row in instances]


def _price(row: dict[str, Any], price_from: str, instance_id: str) -> float | None:
    if price_from == "none":
        return None
    try:
        return float(price_from)
    except ValueError:
        pass
    value = row.get(price_from)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise TaskError(
        f"instance {instance_id} has no price in column {price_from!r} (found {value!r}): "
        "give --price-from COLUMN, a flat price, or none"
    )


def _task(instance: Instance, row: dict[str, Any], repos: str | None, price_from: str, workspace: Path) -> Task:
    price = _price(row, price_from, instance.instance_id)
    fields = task_fields(instance, price)
    # Made again when the instance or what lancer makes of it changes.
    made_of = [instance.model_dump(), fields, _context_digest(instance.dockerfile)]
    digest = hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()[:12]
    folder = workspace / f"{instance.instance_id}-{digest}"
    if not (folder / ".complete").exists():
        staging = folder.with_name(folder.name + ".making")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        if instance.current:  # its tree is the image's
            (staging / EVAL_SCRIPT).write_text(instance.eval_script or "")
            if instance.dockerfile is not None:  # the build context, as swebench builds it
                shutil.copytree(instance.dockerfile, staging / IMAGE_CONTEXT, symlinks=True)
        else:
            assert repos is not None
            _checkout(instance, _mirror(instance, repos, workspace), staging / "repo")
        (staging / "test.patch").write_text(instance.test_patch)
        (staging / "solution.patch").write_text(instance.patch)
        (staging / "task.yaml").write_text(yaml.safe_dump(fields, sort_keys=False))
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        (folder / ".complete").touch()
    return load_task(folder)


def _context_digest(folder: Path | None) -> str:
    """What a task repo's folder holds, so a changed Dockerfile or file beside it makes the task anew."""
    if folder is None:
        return ""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def task_fields(instance: Instance, price: float | None) -> dict[str, Any]:
    """The task.yaml of an instance."""
    statement = instance.problem_statement.strip()
    title = statement.splitlines()[0][:120] if statement else instance.instance_id
    env_of = instance.environment_setup_commit or instance.version or instance.base_commit
    current = (
        {"eval_script": EVAL_SCRIPT, "log_parser": instance.log_parser, "eval_type": instance.eval_type}
        if instance.current
        else {}
    )
    return {
        "id": instance.instance_id,
        "variant": "ic_swe",
        "price": price,
        "title": title,
        "description": statement,
        "set": instance.repo,
        "image": instance.image if instance.current else image_name(instance.instance_id),
        **({"image": None, "dockerfile": f"{IMAGE_CONTEXT}/Dockerfile"} if instance.dockerfile else {}),
        "container": dict(IMAGE_CONTAINER),
        "setup": list(SETUP),
        "env_key": f"swebench-{instance.owner_name}-{env_of}"[:120],
        "swebench": {
            "instance_id": instance.instance_id,
            "repo": instance.repo,
            "base_commit": instance.base_commit,
            "fail_to_pass": instance.FAIL_TO_PASS,
            "pass_to_pass": instance.PASS_TO_PASS,
            "version": instance.version,
            "environment_setup_commit": instance.environment_setup_commit,
            **current,
        },
    }


@dataclass(frozen=True)
class Pruned:
    """What ``prune_workspace`` removed."""

    task_folders: int
    mirrors: int
    bytes: int


def prune_workspace(workspace: Path) -> Pruned:
    """Remove ``workspace`` (the instances' task folders, the repository mirrors cloned from a
    --repos URL, staging folders a killed lancer left): each is made again when next needed."""
    if not workspace.is_dir():
        return Pruned(0, 0, 0)
    folders = sum((p / ".complete").exists() for p in workspace.iterdir())
    mirrors = len(list((workspace / "mirrors").glob("*.git")))
    size = sum(f.lstat().st_size for f in workspace.rglob("*") if not f.is_dir() or f.is_symlink())
    shutil.rmtree(workspace)
    return Pruned(folders, mirrors, size)


def image_name(instance_id: str) -> str:
    """``swebench/sweb.eval.x86_64.<id>:latest``, ``__`` written ``_1776_``, lower-case."""
    return IMAGE.format(id=instance_id.replace("__", "_1776_").lower())


def _git(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], input=stdin, capture_output=True, timeout=900)


def _mirror(instance: Instance, repos: str, workspace: Path) -> str:
    """A local git repository holding ``instance.repo``."""
    if "{" not in repos:
        local = Path(repos) / instance.owner_name
        if not local.is_dir():
            raise TaskError(
                f"instance {instance.instance_id}: no repository {local} (--repos holds owner__name git repositories)"
            )
        return str(local)
    url = repos.format(repo=instance.repo, owner_name=instance.owner_name)
    clone = workspace / "mirrors" / f"{instance.owner_name}.git"
    if not clone.is_dir():
        clone.parent.mkdir(parents=True, exist_ok=True)
        done = _git("clone", "-q", "--bare", url, str(clone))
        if done.returncode != 0:
            shutil.rmtree(clone, ignore_errors=True)
            why = done.stderr.decode(errors="replace").strip().splitlines()
            raise TaskError(f"instance {instance.instance_id}: cannot clone {url}: {why[-1] if why else 'failed'}")
    return str(clone)


def _checkout(instance: Instance, mirror: str, dest: Path) -> None:
    """The tree of ``base_commit`` at ``dest``, without history."""
    archive = _git("-C", mirror, "archive", "--format=tar", instance.base_commit)
    if archive.returncode != 0:
        raise TaskError(
            f"instance {instance.instance_id}: base_commit {instance.base_commit} is not in {mirror} "
            "(fetch it into the mirror, or check the instance)"
        )
    dest.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")


def export_row(task: Task, repos: Path, patch: str, fail_to_pass: list[str], pass_to_pass: list[str]) -> dict[str, Any]:
    """``task`` (a folder with repo/ and hidden pytest tests/) as a SWE-bench instance; its
    repository is made as ``repos/lancer__<id>``, one commit of repo/ (the base commit)."""
    assert task.repo_dir is not None and task.tests_dir is not None
    repo = repos / f"{EXPORT_OWNER}__{task.id}"
    shutil.rmtree(repo, ignore_errors=True)
    shutil.copytree(task.repo_dir, repo, symlinks=True)
    identity = ["-c", "user.name=lancer", "-c", "user.email=lancer@localhost"]
    for step in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-q", "--allow-empty", "-m", f"{task.id} base"]):
        _checked_git(repo, *step)
    base = _checked_git(repo, "rev-parse", "HEAD").strip()
    # The hidden tests as the grader puts them (tests/), as a patch; the mirror keeps the base only.
    shutil.copytree(task.tests_dir, repo / "tests", dirs_exist_ok=True)
    _checked_git(repo, "add", "-A")
    test_patch = _checked_git(repo, "diff", "--cached", "--binary")
    _checked_git(repo, "reset", "-q", "--hard")
    test_files = sorted(f"tests/{p.relative_to(task.tests_dir).as_posix()}" for p in task.tests_dir.rglob("test_*.py"))
    return {
        "instance_id": task.id,
        "repo": f"{EXPORT_OWNER}/{task.id}",
        "base_commit": base,
        "patch": patch,
        "test_patch": test_patch,
        "problem_statement": f"{task.title}\n\n{task.description}",
        "hints_text": "",
        "FAIL_TO_PASS": json.dumps(fail_to_pass),
        "PASS_TO_PASS": json.dumps(pass_to_pass),
        "version": "1",
        "environment_setup_commit": base,
        "price": task.price,
        "eval_script": swebench_export.eval_script(base, test_patch, test_files),
        "log_parser": swebench_export.LOG_PARSER,
        "eval_type": swebench_export.EVAL_TYPE,
    }


def _checked_git(repo: Path, *args: str) -> str:
    done = _git("-C", str(repo), *args)
    if done.returncode != 0:
        raise TaskError(f"git {args[0]} in {repo} failed: {done.stderr.decode(errors='replace').strip()[-300:]}")
    return done.stdout.decode(errors="replace")
