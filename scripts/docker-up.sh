#!/usr/bin/env bash
# Starts a Docker engine if none answers, and builds lancer's base image without any
# registry (debootstrap + docker import) if it is not there yet.
set -euo pipefail
log() { printf '[docker-up] %s\n' "$*" >&2; }
IMAGE="${LANCER_BASE_IMAGE:-lancer-base:bookworm}"

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  (dockerd --storage-driver=overlay2 >/var/log/lancer-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/lancer-dockerd.log"; exit 1; }
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  # The mirror apt itself uses (its URIs: line), not a guessed one.
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  root=$(mktemp -d /tmp/lancer-rootfs.XXXXXX)
  log "building $IMAGE from $mirror (debootstrap, about a minute)"
  debootstrap --variant=minbase --include=git,python3,python3-pytest,ca-certificates,procps \
    bookworm "$root" "$mirror" >/tmp/lancer-debootstrap.log 2>&1 \
    || { log "debootstrap failed; see /tmp/lancer-debootstrap.log"; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import --change 'LABEL lancer.managed=base' \
    --change 'CMD ["bash"]' - "$IMAGE" >/dev/null
  rm -rf "$root"
  log "built $IMAGE"
fi
