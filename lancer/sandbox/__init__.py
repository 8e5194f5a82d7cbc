"""Sandboxes: where a task's code lives and the agent's commands run."""

from pathlib import Path

from lancer.core.sandbox import ExecResult, Sandbox, SandboxSpec, ShellProcess

__all__ = ["ExecResult", "Sandbox", "SandboxSpec", "ShellProcess", "create_sandbox", "run_setup"]


def create_sandbox(kind: str, spec: SandboxSpec) -> Sandbox:
    """Build a sandbox of the named backend; raises lancer.core.errors.SandboxError if it cannot."""
    if kind == "local":
        from lancer.sandbox.local import LocalSandbox

        return LocalSandbox(spec)
    if kind == "docker":
        from lancer.sandbox.docker import DockerSandbox  # type: ignore[import-not-found,unused-ignore]

        return DockerSandbox(spec)  # type: ignore[no-any-return,unused-ignore]
    from lancer.core.errors import ConfigError

    raise ConfigError(f"unknown sandbox {kind!r}: use --sandbox local or --sandbox docker")


def run_setup(sandbox: Sandbox, commands: list[str], timeout: float = 1800, env_key: str | None = None) -> None:
    """Run a task's setup commands in order; raises SetupError naming the one that failed, with its output.

    With ``env_key`` (a local sandbox), the environment they install is shared: built here
    once per key and stored, then copied into every later sandbox of that key instead.
    """
    venv = getattr(sandbox, "venv_dir", None)
    if env_key is not None and commands and isinstance(venv, Path):
        _shared_setup(sandbox, commands, timeout, env_key, venv)
        return
    _run_commands(sandbox, commands, timeout)


def _shared_setup(sandbox: Sandbox, commands: list[str], timeout: float, env_key: str, venv: Path) -> None:
    import sys
    import time

    from lancer.core.logs import get_logger
    from lancer.sandbox.taskenv import restore_shared_env, save_shared_env, shared_env

    log, started = get_logger("sandbox"), time.monotonic()
    with shared_env(env_key) as stored:
        if stored is not None:
            restore_shared_env(stored, venv, Path(sandbox.workdir))
            said = f"task environment {env_key} reused ({stored})"
        else:
            _run_commands(sandbox, commands, timeout)
            stored = save_shared_env(env_key, venv, Path(sandbox.workdir))
            said = f"task environment {env_key} built in {time.monotonic() - started:.1f} s ({stored})"
    log.info(said)
    print(f"lancer: {said}", file=sys.stderr, flush=True)


def _run_commands(sandbox: Sandbox, commands: list[str], timeout: float) -> None:
    from lancer.core.errors import SetupError

    for command in commands:
        result = sandbox.exec(["bash", "-c", command], timeout=timeout)
        if result.exit_code != 0:
            why = "timed out" if result.timed_out else f"exited {result.exit_code}"
            raise SetupError(command, why, result.text)
    if commands:
        from lancer.sandbox.git import commit_setup

        commit_setup(sandbox)
