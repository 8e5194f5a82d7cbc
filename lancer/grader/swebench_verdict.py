"""A SWE-bench verdict decided by the official `swebench` package (the `[swebench]` extra).

lancer does not reimplement SWE-bench's grading: the instance's log parser
(`swebench.harness.log_parsers`) reads the raw test log and `swebench.harness.grading`
(`get_eval_tests_report`, `get_resolution_status`: cut ids matched by prefix, a skipped
PASS_TO_PASS test maintained, `eval_type` fail_only) decides resolved.

Signature (for callers):

    swebench_verdict(
        *, instance_id: str, repo: str, version: str,
        fail_to_pass: list[str], pass_to_pass: list[str],
        log: str, eval_type: str = "", log_parser: str = "",
    ) -> SwebenchVerdict

`SwebenchVerdict` has `resolved: bool`, `tests: list[dict]` (each
`{"name", "kind": "FAIL_TO_PASS"|"PASS_TO_PASS", "outcome": "passed"|"failed",
"status": the parser's raw status or None when the log does not name it}`), `failed:
list[str]` (the ids graded failure), `status_map` (the parser's output) and
`swebench_version`. `require_swebench()` raises TaskError naming the pip install when
the package is missing; call it when a SWE-bench dataset is loaded.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lancer.core.errors import TaskError

INSTALL_HINT = "pip install 'lancer-bench[swebench]'"


def require_swebench() -> str:
    """The installed swebench version; one line naming the install when it is missing."""
    try:
        import swebench.harness.grading  # noqa: F401
    except ImportError:
        raise TaskError(f"SWE-bench datasets are graded by the official swebench package: {INSTALL_HINT}") from None
    return importlib.metadata.version("swebench")


@dataclass
class SwebenchVerdict:
    resolved: bool
    tests: list[dict[str, Any]]
    failed: list[str]
    status_map: dict[str, str] = field(default_factory=dict)
    swebench_version: str = ""


def parser_for(repo: str, log_parser: str = "") -> Callable[..., dict[str, str]]:
    """The instance's own `log_parser` name, else the repository's mapped parser, else pytest's."""
    require_swebench()
    from swebench.harness import log_parsers

    if log_parser:
        try:
            return log_parsers.PARSER_REGISTRY[log_parser]  # type: ignore[no-any-return]
        except KeyError:
            raise TaskError(f"unknown log_parser {log_parser!r}: swebench has no such parser") from None
    return mapped_parser(repo) or log_parsers.PARSER_REGISTRY["parse_log_pytest"]


def mapped_parser(repo: str) -> Callable[..., dict[str, str]] | None:
    """The parser swebench maps `repo` to (across its per-language maps), if any."""
    from swebench.harness.log_parsers import c, go, java, javascript, php, python, ruby, rust

    maps = (python.MAP_REPO_TO_PARSER_PY, javascript.MAP_REPO_TO_PARSER_JS, c.MAP_REPO_TO_PARSER_C,
            go.MAP_REPO_TO_PARSER_GO, java.MAP_REPO_TO_PARSER_JAVA, php.MAP_REPO_TO_PARSER_PHP,
            ruby.MAP_REPO_TO_PARSER_RUBY, rust.MAP_REPO_TO_PARSER_RUST)
    return next((m[repo] for m in maps if repo in m), None)


def swebench_verdict(
    *,
    instance_id: str,
    repo: str,
    version: str,
    fail_to_pass: list[str],
    pass_to_pass: list[str],
    log: str,
    eval_type: str = "",
    log_parser: str = "",
) -> SwebenchVerdict:
    version_used = require_swebench()
    from swebench.harness import grading
    from swebench.harness.constants import FAIL_TO_PASS, PASS_TO_PASS, EvalType, ResolvedStatus
    from swebench.types import TestSpec

    spec = TestSpec(
        instance_id=instance_id, image="", eval_script_list=[], repo=repo, version=version,
        FAIL_TO_PASS=list(fail_to_pass), PASS_TO_PASS=list(pass_to_pass),
        log_parser=log_parser, eval_type=eval_type,
    )
    status_map = parser_for(repo, log_parser)(log, spec)
    kind = EvalType(eval_type) if eval_type else EvalType.PASS_AND_FAIL
    gold = {FAIL_TO_PASS: list(fail_to_pass), PASS_TO_PASS: list(pass_to_pass)}
    report = grading.get_eval_tests_report(status_map, gold, eval_type=kind)
    resolved = grading.get_resolution_status(report) == ResolvedStatus.FULL.value
    tests: list[dict[str, Any]] = []
    failed: list[str] = []
    for key in (FAIL_TO_PASS, PASS_TO_PASS):
        good = set(report[key]["success"])
        for name in gold[key]:
            matched = grading._resolve_case(name, status_map)  # the prefix match of cut ids
            ok = name in good
            tests.append({
                "name": name, "kind": key, "outcome": "passed" if ok else "failed",
                "status": status_map.get(matched) if matched else None,
            })
            if not ok:
                failed.append(name)
    return SwebenchVerdict(resolved, tests, failed, status_map, version_used)
