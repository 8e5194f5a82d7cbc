"""The Sandbox protocol behaves the same on every backend (the ``sandbox`` fixture runs each
test on local and on docker)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lancer.sandbox import Sandbox, SandboxSpec, create_sandbox
from lancer.sandbox.git import apply_patch, diff
from tests.conftest import make_repo

BINARY = bytes(range(256)) * 8 + b"\0\0\xff\xfe"


def test_exec_reports_exit_code_stdout_and_stderr_apart(sandbox: Sandbox) -> None:
    result = sandbox.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.exit_code, result.stdout, result.stderr, result.timed_out) == (3, b"out\n", b"err\n", False)


def test_exec_runs_in_the_working_tree_or_cwd_with_extra_env(sandbox: Sandbox) -> None:
    assert sandbox.exec(["pwd"]).stdout.decode().strip() == sandbox.workdir
    result = sandbox.exec(["sh", "-c", 'pwd; echo "$GREETING"'], cwd=f"{sandbox.workdir}/src", env={"GREETING": "hi"})
    assert result.stdout.decode().split() == [f"{sandbox.workdir}/src", "hi"]


def test_exec_feeds_stdin_binary_safe_and_large(sandbox: Sandbox) -> None:
    data = BINARY * 200  # ~400 KB: more than any pipe buffer
    result = sandbox.exec(["cat"], stdin=data, timeout=60)
    assert result.exit_code == 0 and result.stdout == data


def test_exec_without_stdin_gets_end_of_file(sandbox: Sandbox) -> None:
    result = sandbox.exec(["cat"], timeout=10)
    assert (result.exit_code, result.timed_out) == (0, False)


def test_exec_timeout_kills_the_command_and_what_it_started(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = sandbox.exec(["sh", "-c", "sleep 301 & sleep 302; echo never"], timeout=1)
    assert result.timed_out and b"never" not in result.stdout
    assert time.monotonic() - started < 15
    ps = sandbox.exec(["ps", "-eo", "args"]).stdout.decode()
    assert "sleep 301" not in ps and "sleep 302" not in ps


def test_files_round_trip_binary_safe_creating_parents(sandbox: Sandbox) -> None:
    path = f"{sandbox.workdir}/new/dir/blob.bin"
    sandbox.write_file(path, BINARY)
    assert sandbox.read_file(path) == BINARY
    sandbox.write_file(path, b"shorter")
    assert sandbox.read_file(path) == b"shorter"


def test_read_file_errors_are_pythons(sandbox: Sandbox) -> None:
    with pytest.raises(FileNotFoundError):
        sandbox.read_file(f"{sandbox.workdir}/no/such/file")
    with pytest.raises(IsADirectoryError):
        sandbox.read_file(f"{sandbox.workdir}/src")


def test_copy_in_and_out_keep_trees_and_bytes(sandbox: Sandbox, tmp_path: Path) -> None:
    source = tmp_path / "in"
    (source / "deep").mkdir(parents=True)
    (source / "deep" / "blob.bin").write_bytes(BINARY)
    (source / "top.txt").write_text("top\n")
    sandbox.copy_in(source, f"{sandbox.workdir}/copied")
    listing = sandbox.exec(["sh", "-c", "find copied -type f | sort"]).stdout.decode().split()
    assert listing == ["copied/deep/blob.bin", "copied/top.txt"]
    # The time of the copy, not the packed tar's (none: 1970), which would confuse make and friends.
    copied_at = int(sandbox.exec(["stat", "-c", "%Y", "copied/top.txt"]).stdout)
    assert abs(copied_at - time.time()) < 3600
    # Files copied in belong to whoever runs the commands: the agent can edit them.
    assert sandbox.exec(["sh", "-c", "echo more >> copied/top.txt"]).exit_code == 0
    sandbox.copy_out(f"{sandbox.workdir}/copied", tmp_path / "out")
    assert (tmp_path / "out" / "deep" / "blob.bin").read_bytes() == BINARY
    assert (tmp_path / "out" / "top.txt").read_text() == "top\nmore\n"
    sandbox.copy_out(f"{sandbox.workdir}/hello.txt", tmp_path / "single.txt")
    assert (tmp_path / "single.txt").read_text() == "hello\nworld\n"


def test_the_working_tree_starts_clean_with_one_baseline_commit(sandbox: Sandbox) -> None:
    assert diff(sandbox) == b""
    log = sandbox.exec(["git", "log", "--format=%s"]).stdout.decode().split("\n")
    assert log[0] == "lancer baseline" and log[1:] == [""]


def test_binary_safe_patch_applies_in_a_fresh_sandbox(sandbox_kind: str, sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.write_file(f"{sandbox.workdir}/assets/logo.bin", BINARY)
    sandbox.write_file(f"{sandbox.workdir}/hello.txt", b"hello\nthere\n")
    sandbox.exec(["rm", "src/app.py"])
    patch = diff(sandbox)
    assert b"GIT binary patch" in patch
    fresh = create_sandbox(sandbox_kind, SandboxSpec(repo_dir=make_repo(tmp_path / "fresh"), label="pytest"))
    try:
        apply_patch(fresh, patch)
        assert fresh.read_file(f"{fresh.workdir}/assets/logo.bin") == BINARY
        assert fresh.read_file(f"{fresh.workdir}/hello.txt") == b"hello\nthere\n"
        with pytest.raises(FileNotFoundError):
            fresh.read_file(f"{fresh.workdir}/src/app.py")
        assert diff(fresh) == patch
    finally:
        fresh.close()


def test_close_is_idempotent(sandbox_kind: str, tmp_path: Path) -> None:
    sb = create_sandbox(sandbox_kind, SandboxSpec(repo_dir=make_repo(tmp_path), label="pytest"))
    sb.close()
    sb.close()


def test_the_baseline_is_lancers_whatever_the_hosts_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's git config that signs every commit and runs failing hooks, and names another
    author, changes nothing: the baseline is made apart from it."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for name in ("pre-commit", "commit-msg", "post-commit"):
        (hooks / name).write_text("#!/bin/sh\nexit 1\n")
        (hooks / name).chmod(0o755)
    config = tmp_path / "gitconfig"
    config.write_text(f"[commit]\n\tgpgSign = true\n[core]\n\thooksPath = {hooks}\n[user]\n\tname = someone else\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    sandbox = create_sandbox("local", SandboxSpec(repo_dir=make_repo(tmp_path / "repo"), label="pytest"))
    try:
        log = sandbox.exec(["git", "log", "--format=%an <%ae> %s"]).stdout.decode()
        assert log == "lancer <lancer@localhost> lancer baseline\n"
        assert diff(sandbox) == b""
        sandbox.write_file(f"{sandbox.workdir}/hello.txt", b"changed\n")
        assert b"+changed" in diff(sandbox)
    finally:
        sandbox.close()
