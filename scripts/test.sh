#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every check: ruff, mypy, the whole pytest suite
# (Docker and Chromium tests included; none is skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy lancer
.venv/bin/pytest -q -p no:cacheprovider "$@"
