"""Sandboxes: where a task's code lives and the agent's commands run."""

from lancer.core.sandbox import ExecResult, Sandbox, SandboxSpec, ShellProcess, close_even_if_interrupted

__all__ = ["ExecResult", "Sandbox", "SandboxSpec", "ShellProcess", "create_sandbox", "run_setup"]


def create_sandbox(kind: str, spec: SandboxSpec) -> Sandbox:
    """Build a sandbox of the named backend with the task's setup done (``spec.setup``);
    raises lancer.core.errors.SandboxError if it cannot, SetupError if a setup command fails."""
    if kind == "local":
        from lancer.sandbox.local import LocalSandbox

        return LocalSandbox(spec)  # the setup's result comes from its environment cache
    if kind == "docker" and spec.compose_file is not None:
        from lancer.sandbox.docker.compose import ComposeSandbox  # type: ignore[import-not-found,unused-ignore]

        compose = ComposeSandbox(spec)
        try:
            run_setup(compose, spec.setup, spec.setup_timeout_s)  # in the main service, every time
        except BaseException:
            close_even_if_interrupted(compose)
            raise
        return compose  # type: ignore[no-any-return,unused-ignore]
    if kind == "docker":
        from lancer.sandbox.docker import (  # type: ignore[import-not-found,unused-ignore]
            DockerSandbox,
            resolve_image,
            with_setup_image,
        )

        spec = resolve_image(spec)  # a SWE-bench instance's own image, or the environment built without it
        environment = None
        if spec.setup and not spec.image_command:  # the image's own setup runs in each container
            spec, environment = with_setup_image(spec)  # an image with the setup done, committed once
        sandbox = DockerSandbox(spec)
        sandbox.environment = environment
        try:
            run_setup(sandbox, spec.setup, spec.setup_timeout_s)  # image_command tasks only
        except BaseException:
            close_even_if_interrupted(sandbox)
            raise
        return sandbox  # type: ignore[no-any-return,unused-ignore]
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
