#!/usr/bin/env bash
# Installs the Debian servers the integration tests start themselves (they run them as their own
# processes on loopback, so the packaged services are not started or enabled here).
set -euo pipefail

# chromium: renders the `make report` page in a test (tests/ops/test_report.py).
readonly PACKAGES=(clickhouse-server clickhouse-client postgresql jq chromium)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  echo "[test-deps] already installed: ${PACKAGES[*]}"
  exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "[test-deps] ERROR: missing ${missing[*]}; install them with your package manager (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "[test-deps] installing ${missing[*]} from apt"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
