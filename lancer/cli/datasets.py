"""The ``--dataset`` flags every command shares, and what they mean to the loaders."""

from __future__ import annotations

import argparse
from pathlib import Path

from lancer.core.cachedir import cache_dir
from lancer.formats.catalog import NAMES
from lancer.formats.datasets import DatasetOptions


def add_dataset_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        type=Path,
        metavar="FILE|NAME",
        help="a SWE-Lancer tasks CSV, SWE-bench instances (.jsonl, .json, .parquet), a dataset's name ("
        + ", ".join(NAMES)
        + "), or with --registry NAME@VERSION",
    )
    parser.add_argument(
        "--registry", type=Path, help="a Harbor registry file (registry.json): --dataset names one of its datasets"
    )
    parser.add_argument(
        "--repos", help="SWE-bench: a folder of owner__name git repositories, or a git URL with {repo} in it"
    )
    parser.add_argument(
        "--pull", action="store_true", help="docker: pull a SWE-bench instance's image when it is not here"
    )
    parser.add_argument(
        "--price-from",
        default="none",
        metavar="COLUMN|USD|none",
        help="SWE-bench: each task's price, from a column or flat; none (default): no dollars",
    )


def swebench_workspace() -> Path:
    """Where SWE-bench instances' task folders and repository mirrors are made."""
    return cache_dir() / "swebench"


def dataset_options(args: argparse.Namespace) -> DatasetOptions:
    from lancer.sandbox.taskenv import cache_dir

    registry = getattr(args, "registry", None)
    return DatasetOptions(swebench_workspace(), args.repos, args.price_from, registry, cache_dir() / "harbor-registry")
