"""What ``lancer export --format swebench`` adds for the official harness: each instance's
``eval_script`` (the current datasets' shape, pytest read by ``parse_log_pytest``) and,
with ``--images``, the Dockerfile of its image: lancer's base image with the exported
repository (its one commit, the base) at ``/testbed`` and the task's setup run there."""

from __future__ import annotations

import shlex

LOG_PARSER = "parse_log_pytest"
EVAL_TYPE = "pass_and_fail"
# The harness's heredoc delimiter, as in SWE-bench's own eval scripts.
_HEREDOC = "EOF_114329324912"


def eval_script(base_commit: str, test_patch: str, test_files: list[str]) -> str:
    """The script the harness runs in /testbed: the test files reset to the base, the test
    patch applied, pytest between the Start/End Test Output markers, the test files reset."""
    files = " ".join(shlex.quote(f) for f in test_files)
    return "\n".join(
        [
            "#!/bin/bash",
            "set -uxo pipefail",
            "cd /testbed",
            "git config --global --add safe.directory /testbed",
            f"git -c core.fileMode=false diff {base_commit}",
            f"git checkout {base_commit} {files}",
            f"git apply -v - <<'{_HEREDOC}'",
            test_patch.rstrip("\n"),
            _HEREDOC,
            ": '>>>>> Start Test Output'",
            f"python3 -m pytest -p no:cacheprovider -rA {files}",
            ": '>>>>> End Test Output'",
            f"git checkout {base_commit} {files}",
            "",
        ]
    )


def dockerfile(base_image: str, setup: list[str]) -> str:
    """The image's Dockerfile; its context holds the repository as ``testbed/``."""
    lines = [f"FROM {base_image}", "COPY testbed /testbed", "WORKDIR /testbed"]
    lines += [f"RUN {command}" for command in setup]
    return "\n".join(lines) + "\n"
