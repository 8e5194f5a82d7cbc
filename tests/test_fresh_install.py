"""What a new user installs: lancer's wheel in a fresh virtualenv, nothing of the checkout.

Slow (a wheel build and a fresh virtualenv, about 40 s with pip's cache each, then `lancer
check` of every bundled task, about 2 minutes, and a SWE-Lancer task of the lite CSV the
wheel ships): the one test of the installed package.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT

_NOT_SHIPPED = shutil.ignore_patterns(".venv", ".git", "build", "runs", "*.egg-info", "__pycache__", ".*_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lancer's wheel, built from a copy of the checkout (so the build leaves nothing in it)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "lancer"
    shutil.copytree(ROOT, source, ignore=_NOT_SHIPPED)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(source)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (path,) = (work / "dist").glob("lancer_bench-*.whl")
    return path


def _venv(where: Path, *install: str) -> tuple[Path, dict[str, str]]:
    """A fresh virtualenv with ``install`` pip-installed, and an environment with nothing
    of the development venv or the checkout in it."""
    venv = where / "venv"
    # No PYTHONPATH: a checkout on it would make pip think lancer is installed already.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", *install],
        capture_output=True,
        text=True,
        env={**env, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return venv, env


def _lancer(venv: Path, env: dict[str, str], cwd: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """The installed ``lancer`` command, as a user runs it."""
    return subprocess.run(
        [str(venv / "bin" / "lancer"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_wheel_installs_one_top_level_name(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        paths = [row[0] for row in csv.reader(archive.read(record).decode().splitlines()) if row]
    top = {p.split("/")[0] for p in paths if ".dist-info/" not in p}
    assert top == {"lancer"}
    assert "lancer/prompts/system.j2" in paths and "lancer/study/view/static/view.js" in paths
    # The SWE-Lancer lite CSV ships with its license (--dataset swelancer-lite).
    assert {"lancer/formats/data/swelancer_tasks_lite.csv", "lancer/formats/data/LICENSE"} <= set(paths)
    assert wheel.name.startswith("lancer_bench-")


@pytest.mark.timeout(900)
def test_the_wheel_without_extras_checks_every_bundled_task(wheel: Path, tmp_path: Path) -> None:
    venv, env = _venv(tmp_path, str(wheel))
    listed = subprocess.run([str(venv / "bin" / "pip"), "list"], capture_output=True, text=True).stdout
    assert "ruff" not in listed and "mypy" not in listed  # the dev tools stay in [dev]
    proc = _lancer(venv, env, tmp_path, "check", str(EXAMPLES), "--attempts", "1", timeout=800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for task in sorted(p.name for p in EXAMPLES.iterdir() if (p / "task.yaml").is_file()):
        assert f"{task}: valid" in lines
    # Per-test verdicts for a local task, a web task (its tests run on the host) and a
    # real upstream task whose setup installs its own dependencies.
    assert "    failed   tests.test_discount::test_discount_comes_off_before_tax" in lines
    assert "    failed   tests.test_delete::test_delete_the_last_todo" in lines
    assert "    failed   tests.test_slugify.TestSlugify::test_pre_translation" in lines
    assert "  reference solution (solution.patch): passed (the hidden tests passed: 82 of 82)" in lines
    assert lines[-1] == "all tasks valid"
    # A SWE-Lancer task by its id in the lite CSV lancer ships, named as users name it.
    lite = ["run", "15193-manager-0", "--dataset", "swelancer-lite", "--model", "oracle", "--out", "lite"]
    run = _lancer(venv, env, tmp_path, *lite, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((tmp_path / "lite" / "result.json").read_text())
    assert (result["task_id"], result["resolved"], result["earned"]) == ("15193-manager-0", True, 4000.0), result
    assert "RESOLVED  earned $4,000.00 of $4,000.00" in run.stderr


@pytest.mark.timeout(900)
def test_the_wheel_beside_pypis_tools_runs_an_eval_on_ray_and_a_plugin(wheel: Path, tmp_path: Path) -> None:
    # `tools` on PyPI installs a top-level package of that name, as lancer once did.
    venv, env = _venv(tmp_path, f"{wheel}[ray]", "tools", str(ROOT / "examples" / "plugin"))
    python = str(venv / "bin" / "python")
    both = subprocess.run(
        [python, "-c", "import lancer, tools, tools.tools; print(lancer.__file__); print(tools.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert both.returncode == 0, both.stderr
    site = str(venv / "lib")
    assert [line.startswith(site) for line in both.stdout.splitlines()] == [True, True]
    assert subprocess.run([python, "-m", "lancer", "--version"], env=env, capture_output=True, text=True).stdout

    models = subprocess.run(
        [str(venv / "bin" / "lancer"), "models"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert models.returncode == 0, models.stderr
    assert any(line.split()[:1] == ["rules"] for line in models.stdout.splitlines()), models.stdout

    env["RAY_AUTH_MODE"] = "disabled"
    task = EXAMPLES / "invoice-discount"
    ray_eval = subprocess.run(
        [
            str(venv / "bin" / "lancer"),
            "eval",
            str(task),
            "--model",
            "oracle",
            "--executor",
            "ray",
            "--workers",
            "1",
            "--out",
            "ev",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ray_eval.returncode == 0, ray_eval.stdout + ray_eval.stderr
    overall = json.loads((tmp_path / "ev" / "summary.json").read_text())["overall"]
    assert (overall["resolved"], overall["errors"]) == (1, 0), overall

    rules = tmp_path / "rules.yaml"
    shutil.copy(ROOT / "examples" / "plugin" / "rules" / "invoice-discount.yaml", rules)
    run = subprocess.run(
        [str(venv / "bin" / "lancer"), "run", str(task), "--model", f"rules:{rules}", "--out", "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "RESOLVED" in run.stdout + run.stderr
