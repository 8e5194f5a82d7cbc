"""Datasets by name (``--dataset NAME``): where each one lives and how it is fetched.

- ``swelancer-lite``: SWE-Lancer's lite CSV, shipped inside this package (lancer/formats/data,
  MIT, with its license and source), so a plain ``pip install`` has it.
- ``swelancer``: SWE-Lancer's current release, ``all_swelancer_tasks.csv`` of
  openai/preparedness, downloaded once into lancer's cache (``$LANCER_SWELANCER_URL`` says
  where from instead, e.g. a mirror).
- ``swe-bench-verified``, ``swe-bench-lite``, ``swe-bench-multilingual``: the test split of
  each SWE-bench dataset on the Hugging Face Hub (one parquet file), fetched by the Hub's own
  client into its own cache, so ``HF_HOME``, ``HF_ENDPOINT``, ``HF_TOKEN`` and
  ``HF_HUB_OFFLINE`` mean what they mean to any Hugging Face tool.

A path that exists is always that file: a name is looked up only when no such file is here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lancer.core.cachedir import cache_dir
from lancer.core.errors import TaskError

SWELANCER_LITE = Path(__file__).parent / "data" / "swelancer_tasks_lite.csv"
SWELANCER_URL = "https://raw.githubusercontent.com/openai/preparedness/main/project/swelancer/all_swelancer_tasks.csv"
SWELANCER_URL_ENV = "LANCER_SWELANCER_URL"
DOWNLOAD_TIMEOUT_S = 120


@dataclass(frozen=True)
class HubDataset:
    title: str
    repo_id: str
    filename: str = "data/test-00000-of-00001.parquet"  # the test split, as the Hub's parquet export names it


# The SWE-bench organisation's own copies (princeton-nlp/... are older names of the first two).
HUB = {
    "swe-bench-verified": HubDataset("SWE-bench Verified", "SWE-bench/SWE-bench_Verified"),
    "swe-bench-lite": HubDataset("SWE-bench Lite", "SWE-bench/SWE-bench_Lite"),
    "swe-bench-multilingual": HubDataset("SWE-bench Multilingual", "SWE-bench/SWE-bench_Multilingual"),
}
NAMES = ("swelancer-lite", "swelancer", *HUB)


def dataset_file(dataset: str | Path) -> Path:
    """The file ``dataset`` names: itself when it exists, else a named dataset's file
    (fetched and cached if need be). Raises TaskError (one line) when it cannot be had."""
    path = Path(dataset)
    name = str(dataset)
    if path.exists():
        return path
    if name == "swelancer-lite":
        return SWELANCER_LITE
    if name == "swelancer":
        return swelancer_release()
    if name in HUB:
        return hub_file(HUB[name])
    if not path.suffix and len(path.parts) == 1:  # a bare word: a misspelt name rather than a missing file
        raise TaskError(f"--dataset {name}: no such file, nor a dataset of that name ({', '.join(NAMES)})")
    return path  # the format's loader says the file does not exist


def swelancer_release() -> Path:
    """all_swelancer_tasks.csv in lancer's cache, downloaded the first time."""
    target = cache_dir() / "datasets" / "swelancer" / "all_swelancer_tasks.csv"
    if target.is_file():
        return target
    url = os.environ.get(SWELANCER_URL_ENV) or SWELANCER_URL
    advice = f"download {url} and pass --dataset FILE (or set {SWELANCER_URL_ENV} to a mirror)"
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except urllib.error.HTTPError as e:
        raise _not_downloaded("SWE-Lancer's all_swelancer_tasks.csv", f"HTTP {e.code}", advice) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise _not_downloaded("SWE-Lancer's all_swelancer_tasks.csv", f"no network: {reason}", advice) from None
    # A proxy's or portal's HTML page must not land in the cache as the task list.
    if not data.lstrip(b"\xef\xbb\xbf").startswith(b"question_id,"):
        raise TaskError(f"{url} did not answer with a SWE-Lancer task CSV: {advice}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed, so a crash mid-write never leaves half a CSV where the cache is read.
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".download-", delete=False) as part:
        part.write(data)
    try:
        os.replace(part.name, target)
    finally:
        Path(part.name).unlink(missing_ok=True)
    return target


def hub_file(dataset: HubDataset) -> Path:
    """The dataset's parquet file from the Hugging Face Hub's cache, downloaded if not there."""
    try:
        from huggingface_hub import constants, hf_hub_download, hf_hub_url
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled
    except ImportError:
        raise TaskError(
            f"{dataset.title} is fetched with huggingface_hub: pip install 'lancer-bench[swebench]'"
        ) from None
    url = hf_hub_url(dataset.repo_id, dataset.filename, repo_type="dataset")
    advice = f"set HF_ENDPOINT to a mirror, or download {url} and pass --dataset FILE"
    what = f"{dataset.title} ({dataset.repo_id})"
    try:
        with _quiet("huggingface_hub"):
            return Path(hf_hub_download(dataset.repo_id, dataset.filename, repo_type="dataset"))
    except LocalEntryNotFoundError as e:
        offline = constants.HF_HUB_OFFLINE or isinstance(e.__cause__, OfflineModeIsEnabled)
        why = "HF_HUB_OFFLINE is set" if offline else "no network"
        raise _not_downloaded(what, why, f"it is not in the Hugging Face cache either; {advice}") from None
    except HfHubHTTPError as e:
        raise _not_downloaded(what, f"HTTP {e.response.status_code}", advice) from None


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Without the client's own warnings: offline, it logs each of its retries (about 20 s of
    backoff) before failing, and lancer's one line after them says what to do."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _not_downloaded(what: str, why: str, advice: str) -> TaskError:
    return TaskError(f"{what} could not be downloaded ({why}): {advice}")
