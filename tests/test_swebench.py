"""SWE-bench instances end to end: real upstream fixes of pathspec (PyPI sdists, trimmed, in
tests/fixtures/swebench), their git history made here, graded as SWE-bench grades."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_lancer

FIXTURES = Path(__file__).parent / "fixtures" / "swebench"
# Each repository's releases in order: the first is a tree, each later one a patch on the one before.
REPOS = {
    "cpburnz/python-pathspec": ("python-pathspec", ["0.10.0", "0.10.1", "0.10.2", "0.11.0", "0.11.1", "0.11.2"]),
    "uiri/toml": ("toml", ["0.10.1", "0.10.2"]),
}
# (repo, before, after, FAIL_TO_PASS, PASS_TO_PASS, version): each release's fix, with its test.
GITIGNORE = "tests/test_gitignore.py::GitIgnoreSpecTest"
GITWILDMATCH = "tests/test_gitwildmatch.py::GitWildMatchTest"
PATHSPEC = "tests/test_pathspec.py::PathSpecTest"
INSTANCES = [
    (  # pathspec issue #62: a pure wildcard does not match
        "cpburnz/python-pathspec", "0.10.0", "0.10.1",
        [f"{GITIGNORE}::test_04_issue_62", f"{GITWILDMATCH}::test_12_asterisk_1_regex",
         f"{GITWILDMATCH}::test_12_asterisk_3_child", f"{GITWILDMATCH}::test_12_asterisk_4_descendant",
         f"{PATHSPEC}::test_07_issue_62"],
        [f"{GITIGNORE}::test_01_reversed_args", f"{GITWILDMATCH}::test_01_absolute"],
        "0.10",
    ),
    (  # pathspec issue #64: IndexError on a .gitignore line
        "cpburnz/python-pathspec", "0.10.1", "0.10.2",
        [f"{GITIGNORE}::test_06_issue_64"],
        [f"{GITIGNORE}::test_01_reversed_args", f"{GITIGNORE}::test_04_issue_62"],
        "0.10",
    ),
    (  # pathspec issue #74: an included directory overrides an excluded file
        "cpburnz/python-pathspec", "0.11.0", "0.11.1",
        [f"{GITIGNORE}::test_07_issue_74"],
        [f"{GITIGNORE}::test_01_reversed_args", f"{GITIGNORE}::test_04_issue_62"],
        "0.11",
    ),
    (  # pathspec issues #77 and #80: negation with a caret; an empty path
        "cpburnz/python-pathspec", "0.11.1", "0.11.2",
        [f"{GITWILDMATCH}::test_13_issue_77_regex", f"{GITWILDMATCH}::test_13_negate_with_caret",
         f"{PATHSPEC}::test_01_empty_path", f"{PATHSPEC}::test_09_issue_80_a", f"{PATHSPEC}::test_09_issue_80_b"],
        [f"{GITWILDMATCH}::test_01_absolute", f"{PATHSPEC}::test_07_issue_62"],
        "0.11",
    ),
    (  # toml: a parsed time zone cannot be deep-copied
        "uiri/toml", "0.10.1", "0.10.2",
        ["tests/test_api.py::test_deepcopy_timezone"],
        ["tests/test_api.py::test_bug_148", "tests/test_api.py::test_tuple", "tests/test_api.py::test_dict_decoder"],
        "0.10",
    ),
]  # fmt: skip


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env={**os.environ, **env}
    ).stdout


def make_repos(tmp_path: Path) -> tuple[Path, dict[tuple[str, str], str]]:
    """The mirror folder (owner__name repositories, histories made here) and each release's commit."""
    repos = tmp_path / "repos"
    repos.mkdir()
    commits = {}
    for name, (folder, releases) in REPOS.items():
        repo = repos / name.replace("/", "__")
        shutil.copytree(FIXTURES / folder / releases[0], repo)
        _git(repo, "init", "-q")
        for release in releases:
            if release != releases[0]:
                _git(repo, "apply", "--whitespace=nowarn", str(FIXTURES / folder / f"{release}.patch"))
            _git(repo, "add", "-A")
            _git(repo, "commit", "-q", "-m", f"{name} {release}")
            commits[name, release] = _git(repo, "rev-parse", "HEAD").strip()
    return repos, commits


def make_dataset(tmp_path: Path, price: float | None = None) -> tuple[Path, Path]:
    """The mirror folder and the instances JSONL (as SWE-bench writes them)."""
    repos, commits = make_repos(tmp_path)
    rows = []
    for name, before, after, f2p, p2p, version in INSTANCES:
        repo = repos / name.replace("/", "__")
        a, b = commits[name, before], commits[name, after]
        first_of_version = next(i[1] for i in INSTANCES if i[0] == name and i[5] == version)
        row = {
            "instance_id": f"{name.replace('/', '__')}-{after.replace('.', '')}",
            "repo": name,
            "base_commit": a,
            "patch": _git(repo, "diff", a, b, "--", ".", ":!tests"),
            "test_patch": _git(repo, "diff", a, b, "--", "tests"),
            "problem_statement": f"Fix what {name} {after} fixed.",
            "hints_text": "",
            "FAIL_TO_PASS": json.dumps(f2p),  # as in the HF datasets: JSON-encoded strings
            "PASS_TO_PASS": json.dumps(p2p),
            "version": version,
            "environment_setup_commit": commits[name, first_of_version],
            "created_at": "2023-03-14T00:00:00Z",
        }
        if price is not None:
            row["price_usd"] = price
        rows.append(row)
    dataset = tmp_path / "instances.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return repos, dataset


def _results(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


# One environment per repo and environment_setup_commit: 3 for the 5 instances.
ENVIRONMENTS = len({(i[0], i[5]) for i in INSTANCES})


def _environments_said(printed: str) -> list[tuple[str, str, str]]:
    """The eval's "INSTANCE: environment built|reused KEY" lines, as (instance, how, key)."""
    return re.findall(r"^(\S+): environment (built|reused) (\w+)", printed, re.MULTILINE)


def _assert_each_environment_built_once(out: Path, printed: str) -> None:
    """Each environment is built once before the attempts (the log says "built" once per
    environment, "reused" for the other instances), which all start from it; and each
    grade lists its instance's FAIL_TO_PASS and PASS_TO_PASS tests, by their ids."""
    said = _environments_said(printed)
    assert sorted(how for _, how, _ in said) == ["built"] * ENVIRONMENTS + ["reused"] * 2, printed
    assert len({key for _, _, key in said}) == ENVIRONMENTS, said
    for name, _, after, f2p, p2p, _ in INSTANCES:
        task_id = f"{name.replace('/', '__')}-{after.replace('.', '')}"
        result = json.loads((out / "runs" / task_id / "1" / "result.json").read_text())
        assert result["timing"]["environment"].startswith("reused "), result["timing"]
        assert {t["name"] for t in result["grade"]["tests"]} == {*f2p, *p2p}, result["grade"]


def _wrong_fix_scripts(tmp_path: Path, dataset: Path) -> Path:
    """A scripted model that makes the same wrong fix (a comment in setup.cfg) on every
    instance, and writes the sandbox's network interfaces to network.txt."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    command = "ls /sys/class/net > network.txt; echo '# a wrong fix' >> setup.cfg"
    wrong = (
        "turns:\n"
        f'  - tool_calls: [{{name: bash, arguments: {{command: "{command}"}}}}]\n'
        "  - tool_calls: [{name: submit, arguments: {}}]\n"
    )
    for line in dataset.read_text().splitlines():
        (scripts / f"{json.loads(line)['instance_id']}.yaml").write_text(wrong)
    return scripts


def _assert_none_resolved(out: Path) -> None:
    rows = _results(out)
    assert len(rows) == len(INSTANCES)
    assert all(not r["resolved"] and r["grade_status"] == "failed" for r in rows), [r["detail"] for r in rows]
    for row in rows:
        grade = json.loads((out / str(row["run_dir"]) / "result.json").read_text())["grade"]
        assert "FAIL_TO_PASS tests did not pass" in grade["detail"], grade


def test_oracle_resolves_every_instance_and_each_environment_is_built_once(tmp_path: Path) -> None:
    repos, dataset = make_dataset(tmp_path)
    out = tmp_path / "eval"
    done = run_lancer(
        "eval", "--dataset", str(dataset), "--repos", str(repos), "--model", "oracle", "--out", str(out),
        "--workers", "2", timeout=900, env={"COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rows = _results(out)
    assert len(rows) == len(INSTANCES)
    assert all(r["resolved"] and r["grade_status"] == "passed" for r in rows), rows
    assert all(r["price"] is None and r["earned"] is None for r in rows)
    summary = json.loads((out / "summary.json").read_text())["overall"]
    assert summary["pass_at"]["1"] == 1.0 and summary["earned"] is None
    assert "earned no price" in done.stdout + done.stderr  # each attempt's line: no dollars, not $0
    # A venv every instance's own tree shares, each sandbox starting from a copy of it.
    _assert_each_environment_built_once(out, done.stdout + done.stderr)


def test_a_wrong_fix_resolves_nothing(tmp_path: Path) -> None:
    repos, dataset = make_dataset(tmp_path, price=100)
    scripts = _wrong_fix_scripts(tmp_path, dataset)
    out = tmp_path / "eval"
    done = run_lancer(
        "eval", "--dataset", str(dataset), "--repos", str(repos), "--price-from", "price_usd",
        "--model", f"scripted:{scripts}", "--out", str(out), "--workers", "2", timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    _assert_none_resolved(out)
    summary = json.loads((out / "summary.json").read_text())["overall"]
    assert summary["earned"] == 0.0 and summary["possible"] == 100.0 * len(INSTANCES) and summary["errors"] == 0


def test_breaking_a_pass_to_pass_test_is_not_resolved_and_check_validates_an_instance(tmp_path: Path) -> None:
    repos, dataset = make_dataset(tmp_path, price=100)
    instance_id = "cpburnz__python-pathspec-0111"
    common = ["--dataset", str(dataset), "--repos", str(repos), "--price-from", "price_usd"]
    row = next(json.loads(line) for line in dataset.read_text().splitlines() if instance_id in line)
    gold = tmp_path / "gold.diff"
    gold.write_text(row["patch"])
    verdict = json.loads(run_lancer("grade", instance_id, str(gold), *common, timeout=600).stdout)
    assert verdict["resolved"] and verdict["earned"] == 100.0
    # The gold fix plus a change that breaks a PASS_TO_PASS test (test_01_reversed_args).
    repo = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(repos / "cpburnz__python-pathspec"), str(repo)], check=True)
    _git(repo, "checkout", "-q", row["base_commit"])
    _git(repo, "apply", str(gold))
    gitignore = repo / "pathspec" / "gitignore.py"
    text = gitignore.read_text()
    reversed_args = "pattern_factory, lines = lines, pattern_factory"
    assert reversed_args in text
    gitignore.write_text(text.replace(reversed_args, "pass", 1))
    breaking = tmp_path / "breaking.diff"
    breaking.write_text(_git(repo, "diff"))
    verdict = json.loads(run_lancer("grade", instance_id, str(breaking), *common, timeout=600).stdout)
    assert verdict["resolved"] is False and verdict["grade"]["status"] == "failed"
    assert (
        "PASS_TO_PASS tests broke: tests/test_gitignore.py::GitIgnoreSpecTest::test_01_reversed_args"
        in (verdict["grade"]["detail"])
    )
    outcomes = {t["name"]: t["outcome"] for t in verdict["grade"]["tests"]}
    assert outcomes == {f"{GITIGNORE}::test_07_issue_74": "passed", f"{GITIGNORE}::test_01_reversed_args": "failed",
                        f"{GITIGNORE}::test_04_issue_62": "passed"}  # fmt: skip
    # lancer check: the instance fails on its base commit and passes with its gold patch.
    checked = run_lancer("check", *common, "--ids", instance_id, timeout=600)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{instance_id}: valid" in checked.stdout
    assert "original code: failed" in checked.stdout and "reference solution (solution.patch): passed" in checked.stdout


@pytest.mark.parametrize("field", ["FAIL_TO_PASS"])
def test_an_instance_missing_a_field_is_one_line_naming_it(tmp_path: Path, field: str) -> None:
    repos, dataset = make_dataset(tmp_path)
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    del rows[1][field]
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = run_lancer("eval", "--dataset", str(dataset), "--repos", str(repos), "--model", "oracle", "--out",
                      str(tmp_path / "eval"))  # fmt: skip
    assert done.returncode == 2
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and rows[1]["instance_id"] in lines[0] and field in lines[0], lines
    assert not (tmp_path / "eval").exists()


def test_docker_runs_an_instance_in_its_own_image_when_it_is_here(tmp_path: Path) -> None:
    import docker

    repos, dataset = make_dataset(tmp_path)
    instance_id = "cpburnz__python-pathspec-0111"
    row = next(json.loads(line) for line in dataset.read_text().splitlines() if instance_id in line)
    # A stand-in for SWE-bench's image of the instance: its tree at /testbed (SWE-bench's
    # also installs it in a conda env; pathspec imports from /testbed as it is).
    context = tmp_path / "image"
    (context / "testbed").mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(repos / "cpburnz__python-pathspec"), "archive", row["base_commit"]],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(context / "testbed")], input=archive, check=True)
    (context / "Dockerfile").write_text("FROM lancer-base:bookworm\nCOPY testbed /testbed\n")
    image = "swebench/sweb.eval.x86_64.cpburnz_1776_python-pathspec-0111:latest"
    subprocess.run(["docker", "build", "-q", "-t", image, str(context)], check=True, capture_output=True)
    client = docker.from_env()
    envs_before = _env_image_keys(client)
    try:
        common = ["--dataset", str(dataset), "--repos", str(repos), "--sandbox", "docker"]
        gold, empty = tmp_path / "gold.diff", tmp_path / "empty.diff"
        gold.write_text(row["patch"])
        empty.write_text("")
        fixed = run_lancer("grade", instance_id, str(gold), *common, timeout=600)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert json.loads(fixed.stdout)["resolved"] is True
        unfixed = json.loads(run_lancer("grade", instance_id, str(empty), *common, timeout=600).stdout)
        assert unfixed["resolved"] is False and unfixed["grade"]["status"] == "failed"
    finally:
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True)
    assert _env_image_keys(client) <= envs_before  # its own image was used: no environment was built for it


def test_docker_without_the_instances_images_builds_each_environment_once(tmp_path: Path) -> None:
    """None of the instances' own images here: an image per repo and environment_setup_commit
    is built on lancer's base image (pip installs with the network), each instance's container
    starts from it with its own tree at base_commit and without the network."""
    import docker

    from lancer.formats.swebench import image_name

    repos, dataset = make_dataset(tmp_path, price=100)
    client = docker.from_env()
    for line in dataset.read_text().splitlines():
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(image_name(json.loads(line)["instance_id"]))
    common = ["--dataset", str(dataset), "--repos", str(repos), "--sandbox", "docker", "--workers", "2"]
    out = tmp_path / "oracle"
    done = run_lancer("eval", *common, "--model", "oracle", "--out", str(out), timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(r["resolved"] and r["grade_status"] == "passed" for r in _results(out)), _results(out)
    _assert_each_environment_built_once(out, done.stdout + done.stderr)
    # lancer check with the default config: each instance fails untouched and passes with its gold patch.
    checked = run_lancer("check", *common[:-2], timeout=1800)
    assert checked.returncode == 0 and checked.stdout.count(": valid") == len(INSTANCES), checked.stdout

    # A wrong fix, the environments' images there already: all reused, none resolved.
    out = tmp_path / "wrong"
    scripts = _wrong_fix_scripts(tmp_path, dataset)
    done = run_lancer("eval", *common, "--model", f"scripted:{scripts}", "--out", str(out), timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    _assert_none_resolved(out)
    said = _environments_said(done.stdout + done.stderr)
    assert [how for _, how, _ in said] == ["reused"] * len(INSTANCES), done.stderr
    for row in _results(out):  # the agent's container had loopback only: its patch says so
        patch = (out / str(row["run_dir"]) / "patch.diff").read_text()
        assert re.search(r"^\+\+\+ b/network\.txt\n@@ [^\n]*\n\+lo\n(?!\+)", patch, re.MULTILINE), patch

    # lancer sandbox prune --envs removes the environments' images.
    keys = {key for _, _, key in said}
    assert len(keys) == ENVIRONMENTS
    assert keys <= _env_image_keys(client), keys
    pruned = run_lancer("sandbox", "prune", "--envs")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert not keys & _env_image_keys(client)


def _env_image_keys(client: Any) -> set[str]:
    """The keys (tags) of the task environment images on the engine."""
    images = client.images.list(filters={"label": "lancer.managed=env"})
    return {tag.rpartition(":")[2] for image in images for tag in image.tags}


def test_parquet_and_json_hold_the_same_instances_as_jsonl(tmp_path: Path) -> None:
    import pyarrow
    import pyarrow.parquet

    from lancer.formats.swebench import parse_instance, read_rows

    _, dataset = make_dataset(tmp_path)
    rows = read_rows(dataset)
    as_json, as_parquet = tmp_path / "instances.json", tmp_path / "instances.parquet"
    as_json.write_text(json.dumps(rows))
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), as_parquet)
    for other in (as_json, as_parquet):
        assert [parse_instance(r, other) for r in read_rows(other)] == [parse_instance(r, dataset) for r in rows]
    assert INSTANCES[0][3] == parse_instance(rows[0], dataset).FAIL_TO_PASS  # decoded from its JSON string


def test_a_bundled_task_exported_as_swebench_reads_back_with_the_same_verdicts(tmp_path: Path) -> None:
    task = Path(__file__).parent.parent / "examples" / "tasks" / "invoice-discount"
    out = tmp_path / "exported.jsonl"
    exported = run_lancer("export", str(task), "--format", "swebench", str(out), timeout=600)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    row = json.loads(out.read_text())
    assert row["repo"] == "lancer/invoice-discount" and row["price"] == 250
    assert json.loads(row["FAIL_TO_PASS"]) == [
        "tests/test_discount.py::test_discount_comes_off_before_tax",
        "tests/test_discount.py::test_discount_never_makes_the_total_negative",
    ]
    assert json.loads(row["PASS_TO_PASS"]) == ["tests/test_discount.py::test_no_discount_unchanged"]
    assert "def test_discount_comes_off_before_tax" in row["test_patch"] and row["test_patch"] not in row["patch"]
    # lancer check: the folder and its export both fail untouched and pass with the reference solution.
    read_back = ["--dataset", str(out), "--repos", str(tmp_path / "repos"), "--price-from", "price"]
    for where in ([str(task)], read_back):
        checked = run_lancer("check", *where, timeout=600)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "invoice-discount: valid" in checked.stdout and "original code: failed" in checked.stdout
        assert "reference solution" in checked.stdout and ": passed (" in checked.stdout
    evaluated = run_lancer("eval", *read_back, "--model", "oracle", "--out", str(tmp_path / "eval"), timeout=600)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    (result,) = _results(tmp_path / "eval")
    assert result["resolved"] is True and result["earned"] == 250.0


def test_prune_swebench_removes_the_task_folders_and_mirrors_and_a_later_run_makes_them_again(tmp_path: Path) -> None:
    repos, dataset = make_dataset(tmp_path)
    instance_id = "cpburnz__python-pathspec-0111"
    row = next(json.loads(line) for line in dataset.read_text().splitlines() if instance_id in line)
    gold = tmp_path / "gold.diff"
    gold.write_text(row["patch"])
    cache = tmp_path / "cache"
    env = {"LANCER_CACHE_DIR": str(cache)}
    # A --repos path with {owner_name}: cloned into a mirror in the cache, as a git URL would be.
    grade = ["grade", instance_id, str(gold), "--dataset", str(dataset), "--repos", f"{repos}/{{owner_name}}"]
    first = run_lancer(*grade, env=env, timeout=600)
    assert first.returncode == 0 and json.loads(first.stdout)["resolved"], first.stdout + first.stderr
    workspace = cache / "swebench"
    assert [p.name for p in (workspace / "mirrors").iterdir()] == ["cpburnz__python-pathspec.git"]
    assert len(list(workspace.glob(f"{instance_id}-*/.complete"))) == 1
    size = sum(f.lstat().st_size for f in workspace.rglob("*") if f.is_file() or f.is_symlink())

    pruned = run_lancer("sandbox", "prune", "--swebench", env=env)
    assert pruned.returncode == 0, pruned.stderr
    said = f"removed 1 SWE-bench task folder(s) and 1 repository mirror(s) from {workspace}: {size:,} bytes"
    assert said in pruned.stdout, pruned.stdout
    assert not workspace.exists()
    assert (cache / "taskenvs").is_dir()  # the environments are --envs', not --swebench's

    again = run_lancer(*grade, env=env, timeout=600)
    assert again.returncode == 0 and json.loads(again.stdout)["resolved"], again.stdout + again.stderr
    assert len(list(workspace.glob(f"{instance_id}-*/.complete"))) == 1
    assert (workspace / "mirrors" / "cpburnz__python-pathspec.git").is_dir()
    nothing = run_lancer("sandbox", "prune", "--swebench", env={"LANCER_CACHE_DIR": str(tmp_path / "empty")})
    assert "removed 0 SWE-bench task folder(s) and 0 repository mirror(s)" in nothing.stdout, nothing.stdout
