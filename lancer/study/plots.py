"""The study plots, as PNG (matplotlib's Agg renderer: no display needed).

Four pictures over one or more evals: dollars earned against dollars spent (the return on
investment), pass rate by price bucket (as the SWE-Lancer paper reads it), pass@k against
k, and the cost of an attempt. matplotlib comes with ``pip install 'lancer-bench[study]'``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lancer.core.errors import LancerError
from lancer.core.records import EvalRecord
from lancer.study import tally

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 5.0, 100  # every plot is 800 x 500 pixels
PLOT_FILES = {
    "roi.png": "Dollars earned against dollars spent",
    "pass_rate_by_price.png": "Pass rate by task price",
    "pass_at_k.png": "pass@k against k",
    "cost_per_attempt.png": "Cost per attempt",
}


class PlotsUnavailable(LancerError):
    """matplotlib is not installed."""


def _figure() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotsUnavailable(
            "plots need matplotlib, which is not installed: pip install 'lancer-bench[study]'"
        ) from None
    return Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)


def _axes(name: str, xlabel: str, ylabel: str) -> tuple[Any, Any]:
    """A figure with one plot, titled and labelled; its picture is saved as ``name``."""
    fig = _figure()
    ax = fig.subplots()
    ax.set(title=PLOT_FILES[name], xlabel=xlabel, ylabel=ylabel)
    return fig, ax


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:  # an eval with nothing finished yet has nothing to name
        ax.legend(fontsize=8)


def label(ev: EvalRecord) -> str:
    return _plain(f"{ev.name} ({ev.model})")


def _plain(text: str) -> str:
    """Text as written: matplotlib reads $...$ as mathematics."""
    return text.replace("$", r"\$")


def roi_plot(evals: list[EvalRecord]) -> Any:
    """Each eval a point; the dashed lines are returns of 1x (break-even), 10x, 100x, ...

    Both axes are logarithmic when every eval spent and earned something (model costs are
    cents to dollars, task prices hundreds to thousands), else linear from 0.
    """
    fig, ax = _axes("roi.png", "dollars spent on model calls (all attempts)", "dollars earned (all attempts)")
    points = []
    for ev in evals:
        money = tally.dollars(ev.rows)
        if money["earned"] is None:
            continue  # no task of it has a price: it earned no dollars to plot, not $0
        partly = " (some costs unknown)" if money["unknown_costs"] else ""
        ax.scatter([money["spent"]], [money["earned"]], s=60, label=label(ev) + partly, zorder=3)
        ax.annotate(f"  {_plain(ev.name)}", (money["spent"], money["earned"]))
        points.append((money["spent"], money["earned"]))
    logarithmic = bool(points) and all(x > 0 and y > 0 for x, y in points)
    if logarithmic:
        ax.set_xscale("log")
        ax.set_yscale("log")
        low = min(min(x, y) for x, y in points) / 10
        high = max(max(x, y) for x, y in points) * 10
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        for exponent in range(7):
            ratio = 10.0**exponent
            where = high / 2 / ratio  # the label sits where the line nears the top
            if where < low:
                break
            ax.plot([low, high], [low * ratio, high * ratio], linestyle="--", color="grey", linewidth=0.8)
            name = "1x (break-even)" if ratio == 1 else f"{ratio:g}x"
            ax.annotate(
                name,
                (where, high / 2),
                color="grey",
                fontsize=7,
                ha="center",
                va="center",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
            )
    else:
        top = max((x for x, _ in points), default=0.0)
        if top > 0:
            ax.plot([0, top], [0, top], linestyle="--", color="grey", linewidth=1, label="break-even (earned = spent)")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    _legend(ax)
    return fig


def pass_rate_by_price_plot(evals: list[EvalRecord]) -> Any:
    fig, ax = _axes("pass_rate_by_price.png", "task price (n = tasks in the bucket)", "pass rate (pass@1), %")
    per_eval = [dict((b, (n, rate)) for b, n, rate in tally.pass_rate_by_bucket(ev.rows)) for ev in evals]
    order = [tally.price_bucket(edge - 1) for edge in tally.PRICE_EDGES] + [tally.price_bucket(tally.PRICE_EDGES[-1])]
    buckets = [b for b in order if any(b in d for d in per_eval)]
    width = 0.8 / max(len(evals), 1)
    for i, (ev, data) in enumerate(zip(evals, per_eval, strict=True)):
        xs = [j + i * width for j, b in enumerate(buckets) if b in data]
        ys = [data[b][1] * 100 for b in buckets if b in data]
        bars = ax.bar(xs, ys, width=width, label=label(ev))
        ax.bar_label(bars, labels=[f"n={data[b][0]}" for b in buckets if b in data], fontsize=7)
    ax.set_xticks([j + width * (len(evals) - 1) / 2 for j in range(len(buckets))], [_plain(b) for b in buckets])
    ax.set_ylim(0, 105)
    _legend(ax)
    return fig


def pass_at_k_plot(evals: list[EvalRecord]) -> Any:
    fig, ax = _axes("pass_at_k.png", "k (attempts per task)", "pass@k, %")
    k_max = 1
    for ev in evals:
        pass_at = tally.eval_summary(ev)["overall"].get("pass_at") or {}
        points = [(int(k), v * 100) for k, v in pass_at.items() if v is not None]
        if points:
            points.sort()
            ax.plot([k for k, _ in points], [v for _, v in points], marker="o", label=label(ev))
            k_max = max(k_max, points[-1][0])
    ax.set_xticks(range(1, k_max + 1))
    ax.set_ylim(0, 105)
    _legend(ax)
    return fig


def cost_per_attempt_plot(evals: list[EvalRecord]) -> Any:
    fig, ax = _axes("cost_per_attempt.png", "", "USD per attempt")
    data = [[float(r["cost_usd"]) for r in ev.rows if r.get("cost_usd") is not None] for ev in evals]
    ax.boxplot([d or [0.0] for d in data], showmeans=True)
    for i, d in enumerate(data, start=1):  # every attempt as a dot beside its box
        ax.scatter([i + 0.25] * len(d), d, s=10, alpha=0.6)
    ax.set_xticks(
        range(1, len(evals) + 1),
        [f"{label(ev)}\n{len(d)} attempts" for ev, d in zip(evals, data, strict=True)],
        fontsize=8,
    )
    return fig


_PLOTTERS: dict[str, Callable[[list[EvalRecord]], Any]] = {
    "roi.png": roi_plot,
    "pass_rate_by_price.png": pass_rate_by_price_plot,
    "pass_at_k.png": pass_at_k_plot,
    "cost_per_attempt.png": cost_per_attempt_plot,
}


def write_plots(evals: list[EvalRecord], out_dir: Path) -> list[Path]:
    """The four plots as PNG files in out_dir; raises PlotsUnavailable without matplotlib."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, plot in _PLOTTERS.items():
        path = out_dir / name
        plot(evals).savefig(path, format="png", dpi=DPI)
        written.append(path)
    return written


def eval_plots_data_uris(evals: list[EvalRecord]) -> list[tuple[str, str]]:
    """(title, data: URI) of each plot, for a page that must hold its images."""
    import base64

    out = []
    for name, plot in _PLOTTERS.items():
        buffer = io.BytesIO()
        plot(evals).savefig(buffer, format="png", dpi=DPI)
        out.append((PLOT_FILES[name], "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()))
    return out
