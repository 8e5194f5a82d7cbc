"""The bash tool over every backend: persistence, timeouts that kill, cut output, no stdin."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lancer.sandbox import Sandbox, SandboxSpec, create_sandbox
from lancer.tools.bash import BashArgs, BashTool
from tests.conftest import make_repo


def bash(sandbox: Sandbox, timeout: float = 30, max_output: int = 10_000) -> BashTool:
    return BashTool(sandbox, default_timeout=timeout, max_timeout=60, max_output_chars=max_output)


def test_cwd_and_exported_variables_survive_between_calls(sandbox: Sandbox) -> None:
    tool = bash(sandbox)
    try:
        tool.run(BashArgs(command="cd src && export GREETING=bonjour && LOCAL_ONLY=1"))
        result = tool.run(BashArgs(command="pwd; echo $GREETING; ls"))
        assert result.output.splitlines() == [f"{sandbox.workdir}/src", "bonjour", "app.py"]
    finally:
        tool.close()


def test_exit_code_and_stderr_are_reported(sandbox: Sandbox) -> None:
    tool = bash(sandbox)
    try:
        result = tool.run(BashArgs(command="echo to-stderr >&2; exit_with() { return 3; }; exit_with"))
        assert "to-stderr" in result.output
        assert "[exit code 3]" in result.output
    finally:
        tool.close()


def test_timeout_kills_the_command_and_its_children_and_the_shell_recovers(sandbox: Sandbox) -> None:
    tool = bash(sandbox, timeout=2)
    try:
        tool.run(BashArgs(command="export KEEP=yes; cd src"))
        started = time.monotonic()
        result = tool.run(BashArgs(command="(sleep 321 &) ; sleep 321 | cat"))
        assert time.monotonic() - started < 15
        assert "timed out after 2 s" in result.output
        left = tool.run(BashArgs(command="ps -eo args | grep -c '^sleep 321' || true"))
        assert left.output.strip() == "0", left.output
        after = tool.run(BashArgs(command="echo $KEEP; pwd"))
        assert after.output.splitlines() == ["yes", f"{sandbox.workdir}/src"]
    finally:
        tool.close()


def test_a_stuck_shell_is_replaced_in_the_same_directory(sandbox: Sandbox) -> None:
    tool = bash(sandbox, timeout=1)
    try:
        tool.run(BashArgs(command="cd src"))
        result = tool.run(BashArgs(command="while :; do :; done"))
        assert "timed out" in result.output and "new shell was started" in result.output
        assert tool.run(BashArgs(command="pwd")).output.strip() == f"{sandbox.workdir}/src"
    finally:
        tool.close()


def test_exit_restarts_the_shell(sandbox: Sandbox) -> None:
    tool = bash(sandbox)
    try:
        assert "the shell exited" in tool.run(BashArgs(command="exit 4")).output
        assert tool.run(BashArgs(command="echo alive")).output.strip() == "alive"
    finally:
        tool.close()


def test_stdin_is_closed_so_interactive_programs_do_not_hang(sandbox: Sandbox) -> None:
    tool = bash(sandbox, timeout=10)
    try:
        started = time.monotonic()
        result = tool.run(BashArgs(command="read answer; echo got:$answer; cat"))
        assert result.output.strip() == "got:"
        assert time.monotonic() - started < 5
    finally:
        tool.close()


def test_syntax_errors_come_back_and_the_shell_stays_usable(sandbox: Sandbox) -> None:
    tool = bash(sandbox)
    try:
        result = tool.run(BashArgs(command="echo 'unterminated"))
        assert "unexpected EOF" in result.output and "[exit code 2]" in result.output
        assert tool.run(BashArgs(command="{ echo grouped; }")).output.strip() == "grouped"
    finally:
        tool.close()


def test_long_output_is_cut_in_the_middle_with_a_note(sandbox: Sandbox) -> None:
    tool = bash(sandbox, max_output=1000)
    try:
        result = tool.run(BashArgs(command="seq 1 100000"))
        assert result.output.startswith("1\n2\n3\n")
        assert result.output.rstrip().endswith("100000")
        assert "characters cut from the middle" in result.output
        assert len(result.output) < 1200
    finally:
        tool.close()


def test_the_hidden_tests_are_out_of_reach(sandbox: Sandbox, hidden_file_name: str) -> None:
    tool = bash(sandbox, timeout=120)
    try:
        result = tool.run(BashArgs(command=f"find / -name {hidden_file_name} 2>/dev/null; echo searched"))
        assert result.output.strip() == "searched"
    finally:
        tool.close()


def test_api_keys_in_lancers_environment_do_not_reach_the_sandbox(
    sandbox_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-should-not-leak-123456")
    sandbox = create_sandbox(sandbox_kind, SandboxSpec(repo_dir=make_repo(tmp_path), label="pytest"))
    tool = bash(sandbox)
    try:
        env = tool.run(BashArgs(command="env")).output
        assert "PATH=" in env and "sk-test" not in env
    finally:
        tool.close()
        sandbox.close()
