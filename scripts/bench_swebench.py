"""How long `lancer eval` takes on SWE-bench instances, their environments built (cold) or there (warm).

    .venv/bin/python scripts/bench_swebench.py [--runs 3] [--sandbox docker|local] [--workers 2]

The 5 fixture instances of tests/test_swebench.py (real upstream fixes of pathspec and
toml; 3 environments: one per repository and version), their histories made in a
temporary folder, run with ``--model oracle``. Each run is the whole ``lancer eval``
command, timed from outside:

  - cold: no environment there. Docker: the environments' images removed first (the
    instances' own SWE-bench images are not on the machine, so lancer builds them, its
    setup installing from PyPI); local: a private, empty cache of task environments.
  - warm: the same eval again, the environments there.

It prints each run's wall time, the median, min and max, and checks every run resolved
all 5 and said "built" once per environment (cold) or "reused" only (warm).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lancer.sandbox.taskenv import cache_dir  # noqa: E402
from tests.test_swebench import ENVIRONMENTS, INSTANCES, make_dataset  # noqa: E402


def run_eval(argv: list[str], out: Path, env: dict[str, str]) -> tuple[float, list[str], list[str]]:
    """Seconds the eval took, what each instance's environment line said, and the env keys."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "lancer.cli.main", "eval", *argv, "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=3600)  # fmt: skip
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"the eval failed: {(done.stdout + done.stderr)[-2000:]}")
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    if len(rows) != len(INSTANCES) or not all(r["resolved"] for r in rows):
        raise SystemExit(f"the oracle did not resolve every instance: {[r['detail'] for r in rows]}")
    said = re.findall(r"^\S+: environment (built|reused) (\w+)", done.stdout + done.stderr, re.MULTILINE)
    return seconds, [how for how, _ in said], [key for _, key in said]


def remove_env_images(keys: set[str]) -> None:
    """Docker's cold start: the environments' committed images gone (lancer.sandbox.docker.envimage)."""
    from lancer.sandbox.docker.engine import ENV_IMAGE_LABEL, MANAGED_LABEL, connect

    client = connect()
    try:
        for image in client.api.images(filters={"label": f"{MANAGED_LABEL}={ENV_IMAGE_LABEL}"}):
            if any(tag.rpartition(":")[2] in keys for tag in image.get("RepoTags") or []):
                client.api.remove_image(image["Id"], force=True)
    finally:
        client.close()


def spread(values: list[float]) -> str:
    shown = ", ".join(f"{v:.1f}" for v in values)
    return f"median {statistics.median(values):.1f} s (min {min(values):.1f}, max {max(values):.1f}; runs {shown})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="cold and warm runs each (default 3)")
    parser.add_argument("--sandbox", choices=["local", "docker"], default="docker")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    base_envs = cache_dir() / "envs"
    with tempfile.TemporaryDirectory(prefix="bench-swebench-") as tmp:
        folder = Path(tmp)
        repos, dataset = make_dataset(folder)
        argv = ["--dataset", str(dataset), "--repos", str(repos), "--model", "oracle"]
        argv += ["--sandbox", args.sandbox, "--workers", str(args.workers)]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
        print(f"{args.sandbox} sandbox, {len(INSTANCES)} instances, {ENVIRONMENTS} environments, "
              f"--workers {args.workers}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        cold, warm, keys = [], [], set[str]()
        for i in range(args.runs):
            if args.sandbox == "docker":
                remove_env_images(keys)
            else:  # a private, empty cache of task environments; the base environments are shared
                cache = folder / f"cache-{i}"
                (cache / "envs").parent.mkdir()
                (cache / "envs").symlink_to(base_envs)
                env["LANCER_CACHE_DIR"] = str(cache)
            seconds, said, run_keys = run_eval(argv, folder / f"cold-{i}", env)
            if said.count("built") != ENVIRONMENTS:
                raise SystemExit(f"a cold run did not build every environment: {said}")
            cold.append(seconds)
            keys |= set(run_keys)
        for i in range(args.runs):
            seconds, said, _ = run_eval(argv, folder / f"warm-{i}", env)
            if set(said) != {"reused"}:
                raise SystemExit(f"a warm run built an environment: {said}")
            warm.append(seconds)
        if args.sandbox == "docker":
            remove_env_images(keys)
        print(f"  cold (the environments built): {spread(cold)}")
        print(f"  warm (the environments there): {spread(warm)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
