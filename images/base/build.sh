#!/usr/bin/env bash
# Builds the air-gapped base image: a Debian minbase rootfs made by debootstrap, imported into Docker
# under the name given as $1 (what the Dockerfiles take as BASE_IMAGE). Needs no registry, only a
# Debian mirror. Idempotent: skips when the image exists; reuses the cached rootfs tarball under .cache/.
# Run by scripts/images.py, which passes DEBIAN_SUITE from versions.env.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

readonly IMAGE="${1:?usage: build.sh IMAGE (e.g. airflow-platform/debian-base:SUITE)}"
readonly SUITE="${DEBIAN_SUITE:?set DEBIAN_SUITE (versions.env)}"
readonly MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
readonly SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
readonly CACHE_DIR=.cache/debian-base
readonly TARBALL="$CACHE_DIR/${SUITE}-minbase.tar"

log() { printf '[base] %s\n' "$*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE exists, nothing to do"
  exit 0
fi
[[ "$(id -u)" == 0 ]] || { log "ERROR: debootstrap needs root"; exit 1; }

make_rootfs_tarball() {
  local rootfs="$CACHE_DIR/rootfs"
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap from apt"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  rm -rf "$rootfs" && mkdir -p "$rootfs"
  log "debootstrap --variant=minbase $SUITE from $MIRROR (a few minutes)"
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 ||
    { tail -20 "$CACHE_DIR/debootstrap.log" >&2; exit 1; }
  cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SOURCES
  # Same image hygiene as the official slim images: no recommends, no package caches in layers.
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$rootfs/etc/apt/apt.conf.d/90-no-recommends"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  tar --numeric-owner -C "$rootfs" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$rootfs"
}

start=$SECONDS
mkdir -p "$CACHE_DIR"
if [[ -f "$TARBALL" ]]; then log "reusing cached $TARBALL"; else make_rootfs_tarball; fi
log "docker import $TARBALL as $IMAGE"
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["bash"]' \
  "$TARBALL" "$IMAGE" >/dev/null
log "$IMAGE ready in $((SECONDS - start)) s"
