"""The real-code SWE-bench fixtures build: repositories, rows, and patches that apply to their base commit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.swebench_real import WRONG_PATCHES, make_real_dataset


def _apply_check(repo: Path, commit: str, patch: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    work = tmp_path / f"work-{commit[:8]}"
    if not work.exists():
        subprocess.run(["git", "clone", "-q", str(repo), str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "checkout", "-q", "--detach", commit], check=True)
    return subprocess.run(
        ["git", "-C", str(work), "apply", "--check", "-"], input=patch, capture_output=True, text=True
    )


def test_real_fixtures_build(tmp_path: Path) -> None:
    repos, dataset = make_real_dataset(tmp_path)
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    assert [r["instance_id"] for r in rows] == ["pallets__click-2724", "pallets__click-2365"]
    assert sorted(WRONG_PATCHES) == sorted(r["instance_id"] for r in rows)
    assert [p.name for p in repos.iterdir()] == ["pallets__click"]
    cut = []
    for row in rows:
        repo = repos / row["repo"].replace("/", "__")
        pyproject = subprocess.run(
            ["git", "-C", str(repo), "show", f"{row['base_commit']}:pyproject.toml"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        assert 'requires = ["flit_core<4"]' in pyproject
        for what in ("patch", "test_patch"):
            done = _apply_check(repo, row["base_commit"], row[what], tmp_path)
            assert done.returncode == 0, f"{row['instance_id']} {what}: {done.stderr}"
        done = _apply_check(repo, row["base_commit"], WRONG_PATCHES[row["instance_id"]], tmp_path)
        assert done.returncode == 0, f"{row['instance_id']} wrong patch: {done.stderr}"
        f2p, p2p = json.loads(row["FAIL_TO_PASS"]), json.loads(row["PASS_TO_PASS"])
        assert f2p and p2p and not set(f2p) & set(p2p)
        cut += [t for t in f2p if "[" in t and "]" not in t]
    assert "tests/test_options.py::test_usage_show_choices[text" in cut
