#!/usr/bin/env bash
# Starts a Docker engine if none answers, and builds lancer's base image without any
# registry (debootstrap from the Debian mirror apt uses + docker import) if it is not
# there yet. Idempotent: a running engine and an existing image are reused.
#
#   LANCER_BASE_IMAGE   the image to build (default lancer-base:bookworm)
#   LANCER_DOCKERD_LOG  dockerd's log (default /var/log/lancer-dockerd.log)
#
# Machines differ in what dockerd can use, so it is started with the defaults first and,
# if it dies, again without what its log blames: no iptables (--iptables=false), no
# bridge (--bridge=none; sandboxes then have no network at all, which is their default
# anyway), or no overlay filesystem (--storage-driver=vfs: slower container starts).
set -euo pipefail
log() { printf '[docker-up] %s\n' "$*" >&2; }
IMAGE="${LANCER_BASE_IMAGE:-lancer-base:bookworm}"
DOCKERD_LOG="${LANCER_DOCKERD_LOG:-/var/log/lancer-dockerd.log}"
# Bump when the image's contents change, so old images are rebuilt.
BASE_VERSION=2
# pip and venv so a task's setup can install its dependencies (pip install -e .), as it
# can in the local sandbox.
PACKAGES=bash,git,python3,python3-pytest,python3-pip,python3-venv,ca-certificates,procps

engine_up() { timeout 10 docker info >/dev/null 2>&1; }

# A pid file left by a dockerd that died makes the next one refuse to start.
clear_stale_pid() {
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file" 2>/dev/null || true)
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    log "removing stale $file"
    rm -f "$file"
  fi
}

start_dockerd() {
  clear_stale_pid /var/run/docker.pid
  clear_stale_pid /var/run/docker/containerd/containerd.pid
  # No cgroup hierarchy (a bare machine without systemd): dockerd cannot limit anything.
  if ! grep -q ' /sys/fs/cgroup' /proc/mounts; then
    mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null || log "warning: no cgroups mounted at /sys/fs/cgroup"
  fi
  log "starting dockerd $*"
  : >"$DOCKERD_LOG"
  setsid dockerd "$@" </dev/null >>"$DOCKERD_LOG" 2>&1 &
  local pid=$!
  for _ in $(seq 1 120); do
    engine_up && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.5
  done
  log "dockerd did not answer within 60 s; stopping it"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 1
}

if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
  log "no Docker engine installed: apt-get install -y docker.io (scripts/setup.sh does this)"
  exit 1
fi

if ! engine_up; then
  started=$(date +%s)
  flags=(--storage-driver=overlay2)
  until start_dockerd "${flags[@]}"; do
    if grep -qiE 'iptables' "$DOCKERD_LOG" && [[ " ${flags[*]} " != *" --iptables=false "* ]]; then
      flags+=(--iptables=false --ip6tables=false)
    elif grep -qiE 'bridge|docker0|netlink' "$DOCKERD_LOG" && [[ " ${flags[*]} " != *" --bridge=none "* ]]; then
      flags+=(--bridge=none)
    elif grep -qiE 'overlay' "$DOCKERD_LOG" && [[ " ${flags[*]} " == *" --storage-driver=overlay2 "* ]]; then
      flags=("${flags[@]/--storage-driver=overlay2/--storage-driver=vfs}")
    else
      log "dockerd did not start; the end of $DOCKERD_LOG:"
      tail -n 15 "$DOCKERD_LOG" >&2
      exit 1
    fi
    log "dockerd failed ($(grep -iE 'level=(error|fatal)|failed' "$DOCKERD_LOG" | tail -n 1 | cut -c1-200)); retrying"
  done
  log "dockerd is up ($(($(date +%s) - started)) s)"
fi

# Compose environments (Harbor tasks with sidecars) run through the `docker compose` plugin.
# Bookworm packages only Compose v1, so the plugin comes from trixie's docker-compose
# package (a static Go binary; needs only libc6), found through trixie's package index.
install_compose() {
  local mirror arch index deb
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  arch=$(dpkg --print-architecture)
  deb=$(mktemp /tmp/docker-compose.XXXXXX.deb)
  # Read whole (no early exit in the pipe: pipefail would call that a failure).
  index=$(curl -fsSL "$mirror/dists/trixie/main/binary-$arch/Packages.xz" | xz -dc \
    | awk '/^Package: docker-compose$/ {p=1} p && /^Filename:/ && !f {print $2; f=1}')
  [ -n "$index" ] || { log "warning: no docker-compose package in trixie's index; compose tasks will be refused"; return 0; }
  curl -fsSL -o "$deb" "$mirror/$index"
  dpkg -i "$deb" >/dev/null
  rm -f "$deb"
  log "installed $(docker compose version 2>&1 | head -n 1)"
}
if ! docker compose version >/dev/null 2>&1; then
  command -v curl >/dev/null && command -v xz >/dev/null || apt-get install -y -q --no-install-recommends curl xz-utils >/dev/null
  install_compose
fi

have_image() {
  [ "$(docker image inspect -f '{{index .Config.Labels "lancer.base-version"}}' "$IMAGE" 2>/dev/null)" = "$BASE_VERSION" ]
}

if ! have_image; then
  command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install -y debootstrap"; exit 1; }
  # The mirror apt itself uses (its URIs: line), not a guessed one.
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  root=$(mktemp -d /tmp/lancer-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  started=$(date +%s)
  log "building $IMAGE from $mirror (debootstrap, about a minute)"
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$mirror" >/tmp/lancer-debootstrap.log 2>&1 \
    || { log "debootstrap failed; the end of /tmp/lancer-debootstrap.log:"; tail -n 15 /tmp/lancer-debootstrap.log >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  # A sandbox is a throwaway system: pip may install into it (PEP 668 would refuse).
  rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
  # The host's own certificate authorities (a proxy's, say) are trusted inside too, so a
  # container that may reach the network reaches what the host reaches.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root"/usr/local/share/ca-certificates/
    chroot "$root" update-ca-certificates >/dev/null 2>&1 || log "warning: update-ca-certificates failed in the image"
  fi
  tar -C "$root" -c . | docker import \
    --change 'LABEL lancer.managed=base' --change "LABEL lancer.base-version=$BASE_VERSION" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$IMAGE" >/dev/null
  log "built $IMAGE ($(($(date +%s) - started)) s)"
fi
