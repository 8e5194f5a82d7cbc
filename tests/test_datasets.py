"""Datasets by name: ``--dataset swelancer-lite`` (shipped in lancer), ``swelancer``
(downloaded once into lancer's cache) and the SWE-bench sets fetched from the Hugging Face
Hub by its own client (huggingface_hub), each tried with no network, from a loopback
stand-in, and then from the cache with the stand-in gone."""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow
import pyarrow.parquet

from lancer.formats.catalog import HUB, SWELANCER_LITE, dataset_file
from lancer.formats.swelancer import read_rows
from tests.conftest import ROOT, run_lancer
from tests.fakes.hf_hub import FakeHub
from tests.test_swebench import make_dataset

VERIFIED = HUB["swe-bench-verified"]
TOML_FIX = "uiri__toml-0102"  # the smallest of the real fixes tests/test_swebench.py builds instances of


def _closed_port() -> int:
    """A loopback port nothing listens on: what a machine without the network reaches."""
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return int(s.getsockname()[1])


def _hub_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A Hugging Face client environment of the test's own: an empty cache and no token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return env | {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1", **extra}


def _eval_resolved(out: Path) -> list[tuple[str, bool]]:
    lines = (out / "results.jsonl").read_text().splitlines()
    return [(row["task_id"], row["resolved"]) for row in map(json.loads, lines)]


def test_the_lite_csv_ships_in_lancer_with_its_license() -> None:
    assert dataset_file("swelancer-lite") == SWELANCER_LITE
    assert SWELANCER_LITE.is_relative_to(ROOT / "lancer")  # inside the package, not beside the checkout
    rows = read_rows(SWELANCER_LITE)
    assert len(rows) == 174 and sum(float(r["price"]) for r in rows) == 377_000
    license_text = (SWELANCER_LITE.parent / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and "Copyright (c) 2025" in license_text


def test_a_misspelt_name_is_one_line_naming_the_names(tmp_path: Path) -> None:
    done = run_lancer("eval", "--dataset", "swe-bench-verifed", "--model", "oracle", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "lancer: error: --dataset swe-bench-verifed: no such file, nor a dataset of that name "
        "(swelancer-lite, swelancer, swe-bench-verified, swe-bench-lite, swe-bench-multilingual)"
    ]


def test_swe_bench_verified_says_how_to_get_it_offline_downloads_from_the_hub_then_works_from_the_cache(
    tmp_path: Path,
) -> None:
    repos, jsonl = make_dataset(tmp_path)
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    parquet = tmp_path / "test.parquet"  # as the Hub's datasets hold them: FAIL_TO_PASS etc. JSON strings
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), parquet)
    args = ["eval", "--dataset", "swe-bench-verified", "--repos", str(repos), "--ids", TOML_FIX, "--model", "oracle"]

    # No network, nothing cached: one line saying where the file is and what to do.
    endpoint = f"http://127.0.0.2:{_closed_port()}"
    offline = run_lancer(*args, "--out", str(tmp_path / "none"), env=_hub_env(tmp_path, HF_ENDPOINT=endpoint))
    assert offline.returncode == 2, offline.stdout + offline.stderr
    url = f"{endpoint}/datasets/{VERIFIED.repo_id}/resolve/main/{VERIFIED.filename}"
    assert offline.stderr.strip().splitlines() == [
        f"lancer: error: SWE-bench Verified (SWE-bench/SWE-bench_Verified) could not be downloaded (no network): "
        f"it is not in the Hugging Face cache either; set HF_ENDPOINT to a mirror, or download {url} "
        "and pass --dataset FILE"
    ]
    assert not (tmp_path / "none").exists()
    # The client's offline switch is its own word: the line says so, and nothing is tried.
    switched = run_lancer(*args, env=_hub_env(tmp_path, HF_ENDPOINT=endpoint, HF_HUB_OFFLINE="1"))
    assert switched.returncode == 2
    assert "could not be downloaded (HF_HUB_OFFLINE is set): it is not in the Hugging Face cache" in switched.stderr

    # The Hub (a loopback stand-in speaking its protocol): downloaded, then run.
    with FakeHub() as hub:
        hub.add_dataset_file(VERIFIED.repo_id, VERIFIED.filename, parquet.read_bytes())
        first = run_lancer(*args, "--out", str(tmp_path / "first"), env=_hub_env(tmp_path, HF_ENDPOINT=hub.url))
        assert first.returncode == 0, first.stdout + first.stderr
        commit = hub.commit(VERIFIED.repo_id)
    wanted = f"/datasets/{VERIFIED.repo_id}/resolve/main/{VERIFIED.filename}"
    assert hub.requests == [("HEAD", wanted), ("GET", wanted)]
    assert _eval_resolved(tmp_path / "first") == [(TOML_FIX, True)]
    cached = tmp_path / "hf" / "hub" / "datasets--SWE-bench--SWE-bench_Verified" / "snapshots" / commit
    assert (cached / VERIFIED.filename).read_bytes() == parquet.read_bytes()  # in the client's own cache

    # The stand-in gone and the client told it is offline: the cached copy serves.
    again = run_lancer(
        *args, "--out", str(tmp_path / "again"), env=_hub_env(tmp_path, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="1")
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert _eval_resolved(tmp_path / "again") == [(TOML_FIX, True)]


@contextmanager
def _static_server(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """Plain HTTP of a folder's files on loopback (a stand-in for GitHub's raw files), and
    the paths asked for."""
    asked: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.2", 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.2:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_the_swelancer_release_is_downloaded_once_into_lancers_cache(tmp_path: Path) -> None:
    env = {"LANCER_CACHE_DIR": str(tmp_path / "cache")}
    task = ["run", "90002-manager-0", "--dataset", "swelancer", "--model", "oracle"]

    nowhere = f"http://127.0.0.2:{_closed_port()}/all_swelancer_tasks.csv"
    offline = run_lancer(*task, "--out", str(tmp_path / "none"), env=env | {"LANCER_SWELANCER_URL": nowhere})
    assert offline.returncode == 2
    [line] = offline.stderr.strip().splitlines()
    assert line.startswith("lancer: error: SWE-Lancer's all_swelancer_tasks.csv could not be downloaded (no network: ")
    assert line.endswith(f"download {nowhere} and pass --dataset FILE (or set LANCER_SWELANCER_URL to a mirror)")

    # The release's columns and encoding (tests/data/all_swelancer_tasks_sample.csv) served as the release.
    served = tmp_path / "served"
    served.mkdir()
    (served / "all_swelancer_tasks.csv").write_bytes((ROOT / "tests/data/all_swelancer_tasks_sample.csv").read_bytes())
    with _static_server(served) as (url, asked):
        env["LANCER_SWELANCER_URL"] = f"{url}/all_swelancer_tasks.csv"
        first = run_lancer(*task, "--out", str(tmp_path / "first"), env=env)
        assert first.returncode == 0, first.stderr
        second = run_lancer(*task, "--out", str(tmp_path / "second"), env=env)
        assert second.returncode == 0, second.stderr
    assert asked == ["/all_swelancer_tasks.csv"]  # once: the second run read the cache
    for run in ("first", "second"):
        result = json.loads((tmp_path / run / "result.json").read_text())
        assert (result["resolved"], result["earned"]) == (True, result["price"]), result
    cached = tmp_path / "cache" / "datasets" / "swelancer" / "all_swelancer_tasks.csv"
    assert cached.read_bytes() == (served / "all_swelancer_tasks.csv").read_bytes()
    assert sorted(p.name for p in cached.parent.iterdir()) == ["all_swelancer_tasks.csv"]  # no partial file left
