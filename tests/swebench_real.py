"""Old-format SWE-bench instances (no eval_script) made from real upstream fixes in tests/fixtures/swebench.

Each fixture folder holds ``base/`` (the upstream tree at the fix's parent, trimmed; for a later fix of the
same repository, ``base.patch`` from the earlier fixture's base to it), ``fix.patch`` (the code
part of the upstream diff), ``test.patch`` (its test part), ``wrong.patch`` (a plausible wrong fix made here),
and ``instance.json`` (FAIL_TO_PASS / PASS_TO_PASS as swebench's ``parse_log_pytest`` gives them, so ids with a
space are cut at it, e.g. ``test_usage_show_choices[text``). See each folder's README.md for its source.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "swebench"
# Fixture folders, in the order their bases become commits of their repository (oldest upstream first).
REAL_FIXTURES = ["click-2724", "click-2365"]


def _instance(folder: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((FIXTURES / folder / "instance.json").read_text())
    return data


WRONG_PATCHES: dict[str, str] = {
    str(_instance(f)["instance_id"]): (FIXTURES / f / "wrong.patch").read_text() for f in REAL_FIXTURES
}


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env={**os.environ, **env}
    ).stdout


def _commit_base(repo: Path, folder: Path, message: str) -> str:
    """Commit the fixture's base on ``repo``: its ``base/`` tree, or its ``base.patch`` on
    the tree of the fixture before it (a later fix of the same repository); the commit's id."""
    if not repo.exists():
        repo.mkdir(parents=True)
        _git(repo, "init", "-q", "-b", "main")
    if (folder / "base.patch").is_file():
        _git(repo, "apply", "--whitespace=nowarn", str(folder / "base.patch"))
    else:
        for entry in repo.iterdir():
            if entry.name != ".git":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        shutil.copytree(folder / "base", repo, dirs_exist_ok=True)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return _git(repo, "rev-parse", "HEAD").strip()


def make_real_dataset(tmp_path: Path) -> tuple[Path, Path]:
    """The mirror folder (one owner__name git repository per upstream repository, one commit per fixture base)
    and the instances JSONL, with rows as SWE-bench's older dataset files write them (no eval_script)."""
    repos = tmp_path / "repos"
    repos.mkdir()
    rows = []
    for folder in REAL_FIXTURES:
        meta = _instance(folder)
        name = str(meta["repo"])
        repo = repos / name.replace("/", "__")
        commit = _commit_base(repo, FIXTURES / folder, f"{name} at {meta['upstream_base_commit']}")
        rows.append(
            {
                "instance_id": meta["instance_id"],
                "repo": name,
                "base_commit": commit,
                "patch": (FIXTURES / folder / "fix.patch").read_text(),
                "test_patch": (FIXTURES / folder / "test.patch").read_text(),
                "problem_statement": meta["problem_statement"],
                "hints_text": "",
                "FAIL_TO_PASS": json.dumps(meta["FAIL_TO_PASS"]),  # as in the HF datasets: JSON-encoded strings
                "PASS_TO_PASS": json.dumps(meta["PASS_TO_PASS"]),
                "version": meta["version"],
                "environment_setup_commit": commit,
                "created_at": meta["created_at"],
            }
        )
    dataset = tmp_path / "instances.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return repos, dataset
