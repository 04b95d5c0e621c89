# airflow-platform: every entry point a person or CI uses. Recipes stay one-liners that call
# scripts/ so each step can also be run (and read) on its own.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

include versions.env
export KUBERNETES_VERSION KIND_VERSION HELM_VERSION CLUSTER_NAME DEBIAN_SUITE AIRFLOW_VERSION PYTHON_VERSION

ROOT := $(CURDIR)
TOOLS_BIN := $(ROOT)/.tools/bin
VENV := $(ROOT)/.venv
export PATH := $(TOOLS_BIN):$(VENV)/bin:$(PATH)
export KUBECONFIG ?= $(ROOT)/.cache/kubeconfig
PYTEST := $(VENV)/bin/pytest

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

## --- The two commands of the README --------------------------------------------------------------
.PHONY: up test
up: venv ## Platform on a local kind cluster, sync DAG run once, UI address printed
	$(VENV)/bin/python scripts/up.py

test: venv test-deps tools lint ## All tests that need no cluster (unit + real ClickHouse/Postgres/Airflow/Helm)
	$(PYTEST) -m "not cluster and not docker" tests

## --- Local environment ----------------------------------------------------------------------------
.PHONY: venv test-deps tools docker lint
venv: $(VENV)/.installed ## Python environment in .venv (pinned)
$(VENV)/.installed: requirements/*.txt images/clickhouse-tools/pyproject.toml images/airflow/pool-presets/pyproject.toml scripts/venv.sh
	scripts/venv.sh

test-deps: ## Debian ClickHouse and PostgreSQL servers for integration tests
	scripts/install-test-deps.sh

tools: ## kind, helm, kubectl (pinned) in .tools/bin
	scripts/tools.sh

docker: ## A Docker engine that can run privileged containers
	scripts/docker/ensure-engine.sh

lint: venv ## ruff (Python) and bash -n (shell syntax; shellcheck is not packaged for our air-gapped path)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	git ls-files '*.sh' .ci/run scripts/docker/runc-without-sys-resource | xargs -n1 bash -n

## --- Cluster --------------------------------------------------------------------------------------
.PHONY: node-image cluster down test-cluster
node-image: docker tools ## kind node image for $(KUBERNETES_VERSION), built from Go modules + Debian
	scripts/node-image/build.sh

cluster: node-image ## kind cluster: control plane + one worker per node pool (idempotent)
	scripts/cluster.sh up

down: ## Delete the kind cluster
	scripts/cluster.sh down

test-cluster: venv cluster ## Cluster tests (pools, storage, DNS, NetworkPolicy)
	$(PYTEST) tests/cluster

## --- Images and platform --------------------------------------------------------------------------
.PHONY: images images-lock load e2e bench clean
images: docker ## Build every image under images/ (air-gapped capable), with sizes and timings
	$(VENV)/bin/python scripts/images.py build

images-lock: venv ## Regenerate images/airflow/constraints.txt (pip freeze in the image's own Python)
	$(VENV)/bin/python scripts/images.py lock

load: tools ## Load the images into the kind cluster
	$(VENV)/bin/python scripts/images.py load

e2e: venv up ## make up, then every test that needs the cluster and Docker
	$(PYTEST) -m "cluster or docker" tests

bench: venv test-deps ## Benchmarks (print their figures)
	$(VENV)/bin/python -m tests.bench

clean: down ## Remove the cluster, every cache and every image the project made
	rm -rf .cache .tools .venv
	docker images -q 'airflow-platform/*' | sort -u | xargs -r docker rmi -f
