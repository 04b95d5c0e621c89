#!/usr/bin/env bash
# kind cluster lifecycle: `cluster.sh up` (idempotent, waits for Ready nodes and CoreDNS) and
# `cluster.sh down`. The work is in cluster.py; it needs PyYAML (the venv's, else the system's).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
[[ -x "$PYTHON" ]] || PYTHON=python3
exec "$PYTHON" "$ROOT/scripts/cluster.py" "$@"
