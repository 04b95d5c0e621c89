#!/usr/bin/env bash
# Creates .venv with the pinned test environment plus the project's own Python packages (editable).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=../versions.env
source versions.env
export AIRFLOW_VERSION

readonly VENV=.venv
readonly PYTHON="${PYTHON:-python$PYTHON_VERSION}"
start=$SECONDS

[[ -x "$VENV/bin/python" ]] || { echo "[venv] creating $VENV with $PYTHON"; "$PYTHON" -m venv "$VENV"; }
"$VENV/bin/pip" install -q --upgrade "pip==$PIP_VERSION" "uv==$UV_VERSION"
echo "[venv] installing requirements/dev.txt and the project's packages (uv $UV_VERSION)"
# uv installs what pip would (same pins, same resolution) in seconds instead of minutes, but unlike pip
# it does not expand ${VAR} in requirement files: install from a copy with AIRFLOW_VERSION written in.
expanded=$(mktemp -d)
trap 'rm -rf "$expanded"' EXIT
cp requirements/*.txt "$expanded/"
sed -i "s/\${AIRFLOW_VERSION}/$AIRFLOW_VERSION/g" "$expanded"/*.txt
if leftover=$(grep -l '\${' "$expanded"/*.txt); then
  echo "[venv] requirements use a variable other than AIRFLOW_VERSION: $leftover" >&2
  exit 1
fi
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" \
  -r "$expanded/dev.txt" -e images/clickhouse-tools -e images/airflow/pool-presets
# Bytecode for everything installed: uv writes no .pyc (and skips --compile-bytecode when it installs
# nothing), and where PYTHONDONTWRITEBYTECODE=1 (our CI machine) Python writes none either, so every
# process compiled what it imported, every time: importing Airflow and the Kubernetes provider took
# 7.1 s of CPU instead of 2.4 s, in each of the dozens of Airflow processes `make test` starts.
# compileall skips what is up to date (~5 s then; ~30 s of CPU the first time).
"$VENV/bin/python" -m compileall -q -j 0 "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
touch "$VENV/.installed"
echo "[venv] ready in $((SECONDS - start)) s"
