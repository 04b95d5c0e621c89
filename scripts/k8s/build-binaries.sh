#!/usr/bin/env bash
# Builds Kubernetes binaries (kubectl, kubelet, kubeadm, kube-apiserver, ...) from the Go module proxy.
# k8s.io/kubernetes replaces its staging modules with local paths, which `go install` refuses, so we
# build from a generated wrapper module that requires k8s.io/kubernetes and points every staging
# module at its published v0.<minor>.<patch> twin. Binaries carry the same version ldflags as an
# official release (kubeadm derives its control-plane image tags from them).
# Usage: build-binaries.sh OUT_DIR NAME...   (NAME is a directory under k8s.io/kubernetes/cmd)
set -euo pipefail

readonly K8S_VERSION="${KUBERNETES_VERSION:?set KUBERNETES_VERSION (versions.env)}"
mkdir -p "$1"
OUT_DIR="$(cd "$1" && pwd)"; readonly OUT_DIR; shift
readonly ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly WRAPPER="$ROOT/.cache/k8s-wrapper/$K8S_VERSION"
readonly STAGING_VERSION="v0.${K8S_VERSION#v1.}"
# Every command any caller builds: the wrapper's go.sum must cover all of them.
readonly ALL_COMMANDS=(kubectl kubelet kubeadm kube-apiserver kube-controller-manager kube-scheduler kube-proxy)

tools_go() {
  local name
  printf 'package tools\n\nimport (\n'
  for name in "${ALL_COMMANDS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$name"; done
  printf ')\n'
}

write_wrapper_module() {
  local upstream_gomod
  upstream_gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | jq -r .GoMod)"
  mkdir -p "$WRAPPER"
  cd "$WRAPPER"
  rm -f go.mod go.sum
  go mod init airflow-platform.local/k8s-wrapper >/dev/null 2>&1
  go mod edit -go="$(go mod edit -json "$upstream_gomod" | jq -r .Go)" -require="k8s.io/kubernetes@$K8S_VERSION"
  # Every `k8s.io/x => ./staging/src/k8s.io/x` of upstream becomes `k8s.io/x => k8s.io/x v0.Y.Z`.
  go mod edit -json "$upstream_gomod" \
    | jq -r '.Replace[] | select(.New.Path | startswith("./staging/")) | .Old.Path' \
    | while read -r module; do go mod edit -replace="$module=$module@$STAGING_VERSION"; done
  tools_go >tools.go
  go mod tidy >/dev/null 2>&1 || go mod tidy
}

version_ldflags() {
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local flags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

# Regenerate when missing or made for a shorter command list.
if [[ ! -f "$WRAPPER/go.sum" ]] || ! diff -q <(tools_go) "$WRAPPER/tools.go" >/dev/null; then
  (write_wrapper_module)
fi
mkdir -p "$OUT_DIR"
for name in "$@"; do
  start=$SECONDS
  echo "[k8s] building $name $K8S_VERSION"
  (cd "$WRAPPER" && CGO_ENABLED=0 go build -trimpath -ldflags "$(version_ldflags)" \
    -o "$OUT_DIR/$name" "k8s.io/kubernetes/cmd/$name")
  echo "[k8s] $name built in $((SECONDS - start)) s"
done
