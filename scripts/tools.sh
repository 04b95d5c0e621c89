#!/usr/bin/env bash
# Puts pinned kind, helm, kubectl, versitygw, Prometheus and readme-generator into .tools/bin. For each
# tool: keep a matching one already there, on PATH or in the machine's cache; else download the
# official release (when GitHub/dl.k8s.io answer); else build it from the Go module proxy (the
# air-gapped path). TOOLS_SOURCE=download|go forces one path. readme-generator comes from the npm
# registry instead. Installed binaries are kept in MACHINE_CACHE/tools/<name>-<version> (by version,
# which every candidate is checked against) so a fresh clone on the same machine copies them instead
# of spending minutes rebuilding them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT BIN="$ROOT/.tools/bin"
readonly KIND_VERSION="${KIND_VERSION:?}" HELM_VERSION="${HELM_VERSION:?}" KUBERNETES_VERSION="${KUBERNETES_VERSION:?}"
readonly TOOLS_SOURCE="${TOOLS_SOURCE:-auto}"
readonly VERSITYGW_VERSION="${VERSITYGW_VERSION:?}" README_GENERATOR_VERSION="${README_GENERATOR_VERSION:?}"
readonly CACHE="${MACHINE_CACHE:?}/tools"
mkdir -p "$BIN" "$CACHE"

kind_version() { "$1" version 2>/dev/null | awk '{print $2}'; }
helm_version() { "$1" version --template '{{.Version}}' 2>/dev/null; }
kubectl_version() { "$1" version --client -o json 2>/dev/null | jq -r .clientVersion.gitVersion; }
versitygw_version() { "$1" --version 2>/dev/null | awk '/^Version/ {print $3}'; }
readme-generator_version() { "$1" --version 2>/dev/null | awk '$1 == "Version:" {print $2}'; }

# has_tool NAME WANT: true when .tools/bin has it at WANT, copying a matching one from PATH or the
# machine's cache first (not readme-generator: a Node.js launcher works only beside its node_modules).
has_tool() {
  local name="$1" want="$2" candidate candidates=("$BIN/$1")
  [[ "$name" == readme-generator ]] ||
    candidates+=("$CACHE/$name-$want" "$(PATH="${PATH//$BIN:/}" command -v "$name" || true)")
  for candidate in "${candidates[@]}"; do
    [[ -x "$candidate" && "$("${name}_version" "$candidate")" == "$want" ]] || continue
    [[ "$candidate" == "$BIN/$name" ]] || cp "$candidate" "$BIN/$name"
    return 0
  done
  return 1
}

can_download() {
  [[ "$TOOLS_SOURCE" == download ]] && return 0
  [[ "$TOOLS_SOURCE" == auto ]] && curl -fsS -o /dev/null --max-time 5 -I "$1" 2>/dev/null
}

install_kind() {
  local url="https://github.com/kubernetes-sigs/kind/releases/download/$KIND_VERSION/kind-linux-amd64"
  if can_download "$url"; then curl -fsSL -o "$BIN/kind" "$url" && chmod +x "$BIN/kind"; return; fi
  GOBIN="$BIN" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"
}

install_helm() {
  local url="https://get.helm.sh/helm-$HELM_VERSION-linux-amd64.tar.gz" major="${HELM_VERSION%%.*}"
  if can_download "$url"; then
    curl -fsSL "$url" | tar -xz -C "$BIN" --strip-components=1 linux-amd64/helm; return
  fi
  # Without the version ldflag `helm version` is blank; helm 4 reads the Kubernetes version it
  # assumes for `helm template` from its build info, helm 3 from ldflags.
  local pkg="helm.sh/helm/$major" ldflags="-s -w -X helm.sh/helm/$major/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/$major/internal/version.metadata="
  GOBIN="$BIN" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "$pkg/cmd/helm@$HELM_VERSION"
}

install_kubectl() {
  local url="https://dl.k8s.io/release/$KUBERNETES_VERSION/bin/linux/amd64/kubectl"
  if can_download "$url"; then curl -fsSL -o "$BIN/kubectl" "$url" && chmod +x "$BIN/kubectl"; return; fi
  "$ROOT/scripts/k8s/build-binaries.sh" "$BIN" kubectl
}

# S3-compatible server for the remote-logging tests: no official binary download, always the Go proxy.
install_versitygw() {
  local ldflags="-s -w -X main.Version=$VERSITYGW_VERSION"
  GOBIN="$BIN" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" \
    "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
}

# The chart README's Parameters tables from the `## @param` comments of values.yaml (`make chart-docs`):
# Bitnami's readme-generator-for-helm from the npm registry, run by the machine's Node.js, in its own
# .tools/node: `npm ci` from scripts/readme-generator/package-lock.json, so every transitive version is
# pinned too (npm's cache makes a reinstall offline).
install_readme-generator() {
  local dir="$ROOT/.tools/node"
  if ! command -v npm >/dev/null; then
    echo "[tools] ERROR: readme-generator needs Node.js and npm (Debian: apt-get install nodejs npm)" >&2
    return 1
  fi
  rm -rf "$dir" && mkdir -p "$dir"
  cp "$ROOT/scripts/readme-generator/package.json" "$ROOT/scripts/readme-generator/package-lock.json" "$dir/"
  npm ci --prefix "$dir" --no-audit --no-fund --prefer-offline --loglevel=error
  ln -sfn ../node/node_modules/.bin/readme-generator "$BIN/readme-generator"
}

# Prometheus 3 for the dashboard, federation and job-pod metric tests of `make test` (tests/ops): from
# the Go module proxy it is a long cold build, once per machine and version (the cache above).
prometheus_version() { "$1" --version 2>/dev/null | awk 'NR == 1 {print $3}'; }
install_prometheus() {
  local ldflags="-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION"
  GOBIN="$BIN" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION"
}

specs=("kind:$KIND_VERSION" "helm:$HELM_VERSION" "kubectl:$KUBERNETES_VERSION" \
  "versitygw:$VERSITYGW_VERSION" "prometheus:${PROMETHEUS_VERSION:?}" \
  "readme-generator:$README_GENERATOR_VERSION")
for spec in "${specs[@]}"; do
  name="${spec%%:*}" want="${spec#*:}"
  if has_tool "$name" "$want"; then echo "[tools] $name $want ready"; continue; fi
  start=$SECONDS
  echo "[tools] installing $name $want"
  "install_$name"
  got="$("${name}_version" "$BIN/$name")"
  [[ "$got" == "$want" ]] || { echo "[tools] ERROR: $name reports '$got', expected $want" >&2; exit 1; }
  # copied under a temporary name first: a concurrent clone never finds half a binary
  [[ "$name" == readme-generator ]] || { cp "$BIN/$name" "$CACHE/.$name-$want.$$" && mv "$CACHE/.$name-$want.$$" "$CACHE/$name-$want"; }
  echo "[tools] $name $want installed in $((SECONDS - start)) s"
done
