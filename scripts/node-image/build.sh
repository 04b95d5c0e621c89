#!/usr/bin/env bash
# Builds the kind node image (see build.py). NODE_IMAGE_SOURCE=build|official overrides the
# auto-detection of an online machine (official kindest/node image when registries answer).
set -euo pipefail
exec python3 "$(dirname "${BASH_SOURCE[0]}")/build.py" "$@"
