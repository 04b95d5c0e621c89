# airflow-platform: every entry point a person or CI uses. A thin dispatcher (as kind's Makefile +
# hack/): each recipe is one call into `python -m scripts` (the steps, in Python, sharing
# scripts/config.py) or one shell script; nothing in scripts/ calls make back.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
export PATH := $(ROOT)/.tools/bin:$(VENV)/bin:$(PATH)
export KUBECONFIG ?= $(ROOT)/.cache/kubeconfig
PYTEST := $(VENV)/bin/pytest
# The steps that run before the venv exists (tools, Docker, node image, cluster) need only the
# standard library and PyYAML, so they use the venv's Python when there is one, else the system's.
PY := $(VENV)/bin/python
PY_ANY = $(if $(wildcard $(PY)),$(PY),python3)
STEPS = $(PY_ANY) -m scripts
# How `make test` runs pytest: on pytest-xdist workers, one per core (at most 4), grouped as
# tests/conftest.py says (chart tests one by one, a server-starting module or directory whole on one
# worker). TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= auto
TEST_ARGS ?= -n $(TEST_WORKERS) --maxprocesses=4 --dist loadgroup -q --durations=15
# What `make e2e` runs after `make up` (a test can point it at one file): three workers, one per lane of
# tests/conftest.py E2E_LANES (the kind release, the production-shaped release beside it, Docker and
# bare-node tests), each lane whole and in order on its worker. E2E_WORKERS=0 runs them one after another.
E2E_WORKERS ?= 3
E2E_ARGS ?= -n $(E2E_WORKERS) --dist loadgroup -m "cluster or docker" --durations=25 tests
# The chart whose README's Parameters tables readme-generator-for-helm writes (a test points it at a copy).
CHART_DIR ?= charts/airflow-platform

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

## --- The two commands of the README --------------------------------------------------------------
.PHONY: up test
up: venv ## Platform on a local kind cluster, sync DAG run once, UI address printed
	$(PY) -m scripts up

test: venv test-deps tools lint ## All tests that need no cluster (unit + real ClickHouse/Postgres/Airflow/Helm)
	$(PYTEST) -m "not cluster and not docker" $(TEST_ARGS) tests

## --- Local environment ----------------------------------------------------------------------------
.PHONY: venv test-deps tools docker lint chart-docs chart-docs-check
venv: $(VENV)/.installed ## Python environment in .venv (pinned)
$(VENV)/.installed: requirements/*.txt images/clickhouse-tools/pyproject.toml images/airflow/pool-presets/pyproject.toml scripts/venv.sh versions.env
	scripts/venv.sh

test-deps: ## Debian ClickHouse and PostgreSQL servers for integration tests
	scripts/install-test-deps.sh

tools: ## kind, helm, kubectl, versitygw, Prometheus, readme-generator-for-helm (pinned) in .tools/bin, Go builds cached per machine
	$(STEPS) tools

docker: ## A Docker engine that can run privileged containers
	$(STEPS) docker

lint: venv chart-docs-check ## ruff, bash -n (no shellcheck on our air-gapped path), chart README, checkov on every values scenario
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	git ls-files '*.sh' .ci/run scripts/docker/runc-without-sys-resource | xargs -n1 bash -n
	$(VENV)/bin/python scripts/checkov_chart.py

chart-docs: tools ## Regenerate the chart README's Parameters tables from the @param comments of values.yaml
	$(STEPS) chart-docs --chart $(CHART_DIR)

chart-docs-check: tools ## Fail with the diff when the chart README is not what the generator makes (argo-helm's CI check)
	$(STEPS) chart-docs --check --chart $(CHART_DIR)

## --- Cluster --------------------------------------------------------------------------------------
.PHONY: node-image cluster down test-cluster diagnostics
node-image: docker tools ## kind node image (KUBERNETES_VERSION of versions.env), built from Go modules + Debian
	$(STEPS) node-image

cluster: node-image ## kind cluster: control plane + one worker per node pool (idempotent)
	$(STEPS) cluster

down: ## Delete the kind cluster
	$(STEPS) down

test-cluster: venv cluster ## Cluster tests (pools, storage, DNS, NetworkPolicy)
	$(PYTEST) tests/cluster

diagnostics: ## Cluster, Helm and Airflow state into .cache/artifacts/ (as a failing e2e does)
	$(STEPS) diagnostics --reason "$(or $(REASON),requested)"

## --- Images and platform --------------------------------------------------------------------------
.PHONY: images images-lock images-prune load registry registry-down push e2e bench clean
images: venv docker tools ## Build every image under images/ (air-gapped capable), with sizes and timings
	$(PY) -m scripts images build

images-lock: venv ## Regenerate images/airflow/constraints.txt (pip freeze in the image's own Python)
	$(PY) -m scripts images lock

images-prune: venv ## Remove the project's images of other content tags than the current (disk of a long-lived machine)
	$(PY) -m scripts images prune

load: venv tools ## Load the images into the kind cluster
	$(PY) -m scripts images load

registry: venv docker ## Local OCI registry (TLS + htpasswd) on kind's network, at localhost:5001
	$(PY) -m scripts registry up

registry-down: ## Stop the local registry (its data volume and .cache/registry stay)
	$(STEPS) registry down

push: venv docker tools ## Push every image and the packaged chart to the local registry (started if needed)
	$(PY) -m scripts registry push

# The e2e cluster is made in registry mode (nodes can pull from the local OCI registry, which
# tests/e2e/test_registry_pull.py starts and pushes to); `make up` alone keeps `kind load`.
e2e: export PLATFORM_REGISTRY := 1
# Its suite runs and checks the sync DAG itself (tests/e2e/test_sync_dag.py): no separate run in `make up`.
e2e: export PLATFORM_UP_DAG_RUN := 0
e2e: venv ## make up, then every test that needs the cluster and Docker; diagnostics when it fails
	$(PY) -m scripts up && $(PYTEST) $(E2E_ARGS) || { $(PY) -m scripts diagnostics --reason "make e2e failed"; exit 1; }

bench: venv test-deps ## Benchmarks (print their figures)
	$(PY) -m tests.bench

.PHONY: report
report: venv ## HTML page with the last make up / make e2e figures (.cache/report/index.html)
	$(PY) -m scripts report

clean: down registry-down ## Remove the cluster, the registry, every cache and every image the project made
	docker volume rm -f airflow-platform-registry-data >/dev/null
	rm -rf .cache .tools .venv
	docker images -q 'airflow-platform/*' | sort -u | xargs -r docker rmi -f
