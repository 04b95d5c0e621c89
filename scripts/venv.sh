#!/usr/bin/env bash
# Creates .venv with the pinned test environment plus the project's own Python packages (editable).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=../versions.env
source versions.env
export AIRFLOW_VERSION  # pip expands ${AIRFLOW_VERSION} in the requirements files

readonly VENV=.venv
readonly PYTHON="${PYTHON:-python$PYTHON_VERSION}"
start=$SECONDS

[[ -x "$VENV/bin/python" ]] || { echo "[venv] creating $VENV with $PYTHON"; "$PYTHON" -m venv "$VENV"; }
"$VENV/bin/pip" install -q --upgrade "pip==$PIP_VERSION"
echo "[venv] installing requirements/dev.txt and the project's packages"
"$VENV/bin/pip" install -q -r requirements/dev.txt -e images/clickhouse-tools -e images/airflow/pool-presets
touch "$VENV/.installed"
echo "[venv] ready in $((SECONDS - start)) s"
