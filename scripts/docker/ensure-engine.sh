#!/usr/bin/env bash
# Makes sure a Docker engine answers and can run privileged containers (kind nodes need that).
# On Debian as root it installs docker.io and starts dockerd when none answers; on hosts whose
# capability bounding set lacks CAP_SYS_RESOURCE it registers a runc wrapper that drops that cap.
set -euo pipefail

readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly WRAPPER_SRC="$HERE/runc-without-sys-resource"
readonly WRAPPER_DST="/usr/local/bin/runc-without-sys-resource"
readonly DAEMON_JSON="/etc/docker/daemon.json"
readonly DOCKERD_LOG="/var/log/dockerd.log"
readonly PROBE_IMAGE="airflow-platform/engine-probe:1"

log() { printf '[docker] %s\n' "$*" >&2; }
die() { printf '[docker] ERROR: %s\n' "$*" >&2; exit 1; }

engine_answers() { docker info >/dev/null 2>&1; }

can_install_here() { [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; }

install_engine() {
  can_install_here || die "no Docker engine answers. Install Docker (https://docs.docker.com/engine/install/) and start it, or run this as root on Debian/Ubuntu so it can install docker.io."
  if ! command -v dockerd >/dev/null || ! command -v jq >/dev/null; then
    log "installing docker.io and jq from apt"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io jq >/dev/null
  fi
}

bounding_set_lacks_sys_resource() {
  local bnd
  bnd="$(awk '/^CapBnd/ {print $2}' /proc/self/status)"
  (( (16#$bnd >> 24 & 1) == 0 ))
}

write_daemon_config() {
  mkdir -p /etc/docker
  if bounding_set_lacks_sys_resource; then
    install -m 0755 "$WRAPPER_SRC" "$WRAPPER_DST"
    cat >"$DAEMON_JSON" <<JSON
{
  "runtimes": {"runc-without-sys-resource": {"path": "$WRAPPER_DST"}},
  "default-runtime": "runc-without-sys-resource"
}
JSON
    log "registered $WRAPPER_DST as the default runtime (host bounding set lacks CAP_SYS_RESOURCE)"
  fi
}

start_dockerd() {
  command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1 && {
    systemctl restart docker; return; }
  pkill -x dockerd 2>/dev/null && sleep 2 || true
  log "starting dockerd (log: $DOCKERD_LOG)"
  nohup dockerd >"$DOCKERD_LOG" 2>&1 &
  for _ in $(seq 1 60); do engine_answers && return; sleep 1; done
  die "dockerd did not answer within 60 s; see $DOCKERD_LOG"
}

# A privileged container from a tiny local image: proves the runtime works with no registry.
privileged_run_works() {
  if ! docker image inspect "$PROBE_IMAGE" >/dev/null 2>&1; then
    # /usr/bin/true plus the libraries ldd names, dereferenced: a two-megabyte image built offline.
    # shellcheck disable=SC2046
    tar -C / -ch usr/bin/true $(ldd /usr/bin/true | grep -o '/[^ ]*' | sed 's|^/||') 2>/dev/null \
      | docker import - "$PROBE_IMAGE" >/dev/null
  fi
  docker run --rm --privileged "$PROBE_IMAGE" /usr/bin/true >/dev/null 2>&1
}

main() {
  if ! engine_answers; then
    install_engine
    write_daemon_config
    start_dockerd
  fi
  if ! privileged_run_works; then
    can_install_here || die "'docker run --privileged' fails on this host; kind needs privileged containers."
    log "privileged containers fail; configuring the runtime wrapper and restarting dockerd"
    write_daemon_config
    start_dockerd
    privileged_run_works || die "'docker run --privileged' still fails; see $DOCKERD_LOG"
  fi
  log "engine ready: $(docker version --format '{{.Server.Version}}') (runtime: $(docker info --format '{{.DefaultRuntime}}'))"
}

main "$@"
