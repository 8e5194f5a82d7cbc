"""Sandboxes: where a task's code lives and the agent's commands run."""

from lancer.core.sandbox import ExecResult, Sandbox, SandboxSpec, ShellProcess

__all__ = ["ExecResult", "Sandbox", "SandboxSpec", "ShellProcess", "create_sandbox", "run_setup"]


def create_sandbox(kind: str, spec: SandboxSpec) -> Sandbox:
    """Build a sandbox of the named backend with the task's setup done (``spec.setup``);
    raises lancer.core.errors.SandboxError if it cannot, SetupError if a setup command fails."""
    if kind == "local":
        from lancer.sandbox.local import LocalSandbox

        return LocalSandbox(spec)  # the setup's result comes from its environment cache
    if kind == "docker":
        from lancer.core.sandbox import close_even_if_interrupted
        from lancer.sandbox.docker import DockerSandbox  # type: ignore[import-not-found,unused-ignore]

        sandbox: Sandbox = DockerSandbox(spec)
        try:
            run_setup(sandbox, spec.setup, spec.setup_timeout_s)
        except BaseException:
            close_even_if_interrupted(sandbox)
            raise
        return sandbox
    from lancer.core.errors import ConfigError

    raise ConfigError(f"unknown sandbox {kind!r}: use --sandbox local or --sandbox docker")


def run_setup(sandbox: Sandbox, commands: list[str], timeout: float = 1800) -> None:
    """Run a task's setup commands in order; raises SetupError naming the one that failed, with its output."""
    from lancer.core.errors import SetupError

    for command in commands:
        result = sandbox.exec(["bash", "-c", command], timeout=timeout)
        if result.exit_code != 0:
            why = "timed out" if result.timed_out else f"exited {result.exit_code}"
            raise SetupError(command, why, result.text)
    if commands:
        from lancer.sandbox.git import commit_setup

        commit_setup(sandbox)
