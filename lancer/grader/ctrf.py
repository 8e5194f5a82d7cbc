"""Per-test outcomes from a CTRF report (https://ctrf.io), as Harbor's verifiers write it
to /logs/verifier/ctrf.json (``pytest --ctrf``, pytest-json-ctrf): ``results.tests``, each
with a ``name`` and a ``status`` (passed, failed, skipped, pending or other)."""

from __future__ import annotations

import json

from lancer.grader.report import Outcome, ReportError, TestOutcome

CTRF_JSON = "ctrf.json"
_OUTCOMES: dict[str, Outcome] = {"passed": "passed", "failed": "failed", "skipped": "skipped", "pending": "skipped"}


def parse_ctrf(data: bytes) -> list[TestOutcome]:
    """Every test of a CTRF report; ReportError when it is not one."""
    try:
        tests = json.loads(data)["results"]["tests"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ReportError(f"{CTRF_JSON} is not a CTRF report ({type(e).__name__}: {e})") from None
    if not isinstance(tests, list) or not all(isinstance(t, dict) and "name" in t for t in tests):
        raise ReportError(f"{CTRF_JSON}'s results.tests is not a list of tests with names")
    return [
        TestOutcome(str(t["name"]), _OUTCOMES.get(str(t.get("status")), "error"), str(t.get("message") or ""))
        for t in tests
    ]
