"""Runs and evals as pandas DataFrames, for study in a notebook or a script.

    from lancer.study.frames import attempts_df, evals_df
    df = attempts_df(["evals/gpt-4o", "evals/sonnet", "runs/invoice-discount-20250101-120000"])
    df.groupby(["model", "variant"]).resolved.mean()

``attempts_df``: one row per attempt, with the fields of results.jsonl (for a lone run,
the same fields from its result.json), ``verdict`` (resolved, failed, error,
interrupted, running), and the eval's ``eval``, ``eval_dir``, ``model`` and its config
flattened into ``config.*`` columns (e.g. ``config.limits.max_steps``). A path may be an
eval directory, a run directory, or a folder holding either.

``evals_df``: one row per eval and per variant or set in it, the columns of
``lancer report``'s summary.csv. pandas comes with ``pip install 'lancer-bench[study]'``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lancer.core.errors import LancerError
from lancer.core.records import is_eval_dir, is_run_dir, read_eval, read_run, row_from_run
from lancer.study import tally


class PandasMissing(LancerError):
    """pandas is not installed."""


def attempts_df(paths: Iterable[str | Path]) -> Any:
    """A pandas DataFrame, one row per attempt of the given eval and run directories."""
    pd = _pandas()
    rows: list[dict[str, Any]] = []
    for path in _expand(paths):
        rows += _eval_rows(path) if is_eval_dir(path) else [_run_row(path)]
    return pd.DataFrame(rows)


def evals_df(paths: Iterable[str | Path]) -> Any:
    """A pandas DataFrame of each eval's figures, overall ("scope" all) and per variant and set."""
    from lancer.study.report import metric_rows

    pd = _pandas()
    return pd.DataFrame(metric_rows([read_eval(p) for p in _expand(paths) if is_eval_dir(p)]))


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise PandasMissing(
            "lancer.study.frames needs pandas, which is not installed: pip install 'lancer-bench[study]'"
        ) from None
    return pandas


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    found = []
    for given in paths:
        path = Path(given)
        if is_eval_dir(path) or is_run_dir(path):
            found.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if is_eval_dir(p) or is_run_dir(p)) if path.is_dir() else []
        if not inside:
            raise LancerError(f"{path} is no eval directory, run directory, or folder of them")
        found += inside
    return found


def _eval_rows(path: Path) -> list[dict[str, Any]]:
    ev = read_eval(path)
    context = {"eval": ev.name, "eval_dir": str(path), "model": ev.model, **_flat(ev.spec.get("config") or {})}
    return [
        {**row, "verdict": tally.verdict(row), "run_dir": str(ev.run_dir(row)), **context}
        for row in ev.rows + ev.running
    ]


def _run_row(path: Path) -> dict[str, Any]:
    run = read_run(path)
    row = row_from_run(run)
    result = run.result or {}
    row.update(
        verdict=tally.verdict(row),
        detail=result.get("detail"),
        started_at=result.get("started_at", run.header.get("started_at")),
        eval=None,
        eval_dir=None,
        **_flat(run.header.get("config") or {}),
    )
    return row


def _flat(config: dict[str, Any], prefix: str = "config.") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
