#!/usr/bin/env bash
# Sets up everything lancer and its tests need on a fresh Debian machine (run as root, or
# with sudo available). Idempotent: what is already there is kept.
#   - Python deps in .venv (lancer installed editable, with the dev tools, Ray, the study and swebench extras)
#   - Debian packages: git, bubblewrap (the local sandbox), Chromium (for the browser tools),
#     Node.js (the tests grade a `node --test` task), Docker engine, debootstrap
#   - a running Docker engine, the docker compose v2 plugin (Harbor's compose environments)
#     and the base image lancer's docker sandbox uses by default
# Set LANCER_SETUP_SKIP_DOCKER=1 to skip the Docker engine and image.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# --- Debian packages -------------------------------------------------------------------
need=()
command -v git >/dev/null || need+=(git)
command -v bwrap >/dev/null || need+=(bubblewrap)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
if [ "${LANCER_SETUP_SKIP_DOCKER:-0}" != 1 ]; then
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)
fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

# --- Python ------------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import lancer, playwright, pytest, ruff, pandas, matplotlib, ray, pyarrow, huggingface_hub, datasets, atif, swebench.harness.grading' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.lancer-installed ]; then
  log "installing lancer and its Python dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  # The build backend's warnings about editable installs are noise for a user; errors still show.
  PYTHONWARNINGS=ignore .venv/bin/pip install -q -e '.[dev,study,ray,swebench]'
  touch .venv/.lancer-installed
fi

# The task environments' base (pytest, pip, build backends), built once into lancer's cache.
.venv/bin/python -c 'from lancer.sandbox.taskenv import base_env, find_interpreter; base_env(find_interpreter(None))'

# --- Docker ------------------------------------------------------------------------------
if [ "${LANCER_SETUP_SKIP_DOCKER:-0}" != 1 ]; then
  bash scripts/docker-up.sh
fi
log "ready: .venv/bin/lancer --help"
