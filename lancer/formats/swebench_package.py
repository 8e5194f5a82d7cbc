"""What lancer asks of the official `swebench` package (the `[swebench]` extra) before an
instance runs: that it is installed, and for an older row (no eval_script) the log parser
and eval_type swebench gives its repository, or that another runner runs its tests."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from lancer.core.errors import TaskError

INSTALL_HINT = "pip install 'lancer-bench[swebench]'"
# The runner a repository's tests need where it is not pytest, by the log parser swebench
# maps it to: an older row (no eval_script) of such a repository cannot be graded.
OTHER_RUNNERS = {"parse_log_django": "Django's tests/runtests.py", "parse_log_sympy": "sympy's bin/test"}
CURRENT_DATASETS = "--dataset swe-bench-verified (or swe-bench-multilingual)"


def require_swebench() -> str:
    """The installed swebench version (its parsers and rules grade every SWE-bench
    instance); TaskError in one line naming the install when it is missing."""
    try:
        import swebench.harness.grading  # noqa: F401
    except ImportError:
        raise TaskError(f"SWE-bench instances are graded by the official swebench package: {INSTALL_HINT}") from None
    return importlib.metadata.version("swebench")


def instance_parser(repo: str) -> tuple[str, str]:
    """The log parser (a PARSER_REGISTRY name) and eval_type swebench gives an older row of
    ``repo``: the parser it maps the repository to, else pytest's."""
    from swebench.harness.constants import FAIL_ONLY_REPOS
    from swebench.harness.log_parsers import c, go, java, javascript, php, python, ruby, rust

    maps = (python.MAP_REPO_TO_PARSER_PY, javascript.MAP_REPO_TO_PARSER_JS, c.MAP_REPO_TO_PARSER_C,
            go.MAP_REPO_TO_PARSER_GO, java.MAP_REPO_TO_PARSER_JAVA, php.MAP_REPO_TO_PARSER_PHP,
            ruby.MAP_REPO_TO_PARSER_RUBY, rust.MAP_REPO_TO_PARSER_RUST)  # fmt: skip
    from swebench.harness.log_parsers import PARSER_REGISTRY

    mapped = next((m[repo] for m in maps if repo in m), PARSER_REGISTRY["parse_log_pytest"])
    # The registry's name for it (an alias such as parse_log_flask is the same function).
    parser = next(name for name, function in PARSER_REGISTRY.items() if function is mapped)
    return parser, "fail_only" if repo in FAIL_ONLY_REPOS else "pass_and_fail"


def refuse_other_runner(instance_id: str, repo: str, path: Path) -> None:
    """An older row is graded by pytest on its test files: refuse one whose repository's
    tests run otherwise (Django, sympy, every non-Python repository)."""
    from swebench.harness.log_parsers.python import MAP_REPO_TO_PARSER_PY

    parser, _ = instance_parser(repo)
    if parser in OTHER_RUNNERS:
        runner = OTHER_RUNNERS[parser]
    elif parser != "parse_log_pytest" and repo not in MAP_REPO_TO_PARSER_PY:
        runner = f"its own runner (swebench reads it with {parser})"
    else:
        return
    raise TaskError(
        f"{path} instance {instance_id}: {repo} runs its tests with {runner}, not pytest, "
        f"and this row has no eval_script to run them: use the current dataset, {CURRENT_DATASETS}"
    )
