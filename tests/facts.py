"""The facts tests assert against, each derived from its one home so no test hard-codes it:
release and namespaces from scripts/config.py and the chart's values, pools from
node-pools/pools.yaml, image repositories from the chart's values."""

from __future__ import annotations

import re

from scripts import config

ROOT = config.ROOT
RELEASE = config.RELEASE
NAMESPACE = config.AIRFLOW_NAMESPACE  # the release namespace: Airflow's control plane
WORKER_NAMESPACE = config.worker_namespace()
WORKLOAD_NAMESPACES = config.workload_namespaces()
TASK_POD_NAMESPACES = (WORKER_NAMESPACE, *WORKLOAD_NAMESPACES)
PLATFORM_NAMESPACES = config.platform_namespaces()
NAMESPACE_OF_POOL = config.namespace_of_pool()
JOBS_NAMESPACE = NAMESPACE_OF_POOL["general"]  # ordinary job pods
GPU_JOBS_NAMESPACE = NAMESPACE_OF_POOL["gpu"]
CLICKHOUSE_NAMESPACE = WORKLOAD_NAMESPACES[0]  # the demo ClickHouse pair (chart: ap.clickhouse.namespace)

POOLS = config.node_pools()  # node-pools/pools.yaml
POOL_LABEL = POOLS["poolLabelKey"]
POOL_NAMES = tuple(POOLS["pools"])
AIRFLOW_POOL = config.installed_values()["nodePools"]["airflow"]  # Airflow components and worker pods
SERVICES_POOL = config.installed_values()["nodePools"]["services"]  # Postgres, demo ClickHouse

IMAGE_REPOSITORIES = {image.name: image.repository for image in config.images()}


# `make e2e` (registry mode) installs the kind release from the local registry with the chart-made pull
# Secret; the pods tests create there pull the same way (scripts/up.py images_to_nodes says why).
IMAGE_PULL_SECRET = f"{RELEASE}-image-pull"


def image_ref(name: str, tag: str) -> str:
    """`<repository>:<tag>` of the image folder images/<name>/, under the local registry in registry
    mode (as the kind release names it)."""
    ref = f"{IMAGE_REPOSITORIES[name]}:{tag}"
    return f"{config.REGISTRY_HOST}/{ref}" if config.registry_mode() else ref


def image_pull_secrets() -> list[str]:
    """The pull Secret names a test pod in a platform namespace needs (none when images are loaded)."""
    return [IMAGE_PULL_SECRET] if config.registry_mode() else []


def expand_versions(text: str) -> str:
    """`${NAME}` replaced by NAME of versions.env, as pip expands it in the requirements files."""
    return re.sub(r"\$\{(\w+)\}", lambda match: config.VERSIONS[match.group(1)], text)
