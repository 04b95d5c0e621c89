"""clickhouse_db_sync on the live platform: it succeeds, every pod lands where it should, nothing is
left behind, and the destination database equals the source."""

from __future__ import annotations

import time

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.facts import (
    AIRFLOW_POOL,
    CLICKHOUSE_NAMESPACE,
    JOBS_NAMESPACE,
    NAMESPACE,
    RELEASE,
    WORKER_NAMESPACE,
)

from .conftest import SyncRun, label_selector, run_labels, task_log_text
from .demo_clickhouse import DemoClickHouse, expected_copy

pytestmark = pytest.mark.cluster

# Which pool each task's pods must run on (the DAG's contract with the platform).
EXPECTED_POOL = {
    "preflight": "ssd",
    "drop_destination_db": "general",
    "create_db": "general",
    "migrate_data": "ssd",
}


def test_sync_run_succeeds(sync_run: SyncRun) -> None:
    assert sync_run.state == "success"


def test_executor_pods_run_on_the_airflow_pool(sync_run: SyncRun, node_pools: dict[str, str]) -> None:
    workers = [p for p in sync_run.placements if p.namespace == WORKER_NAMESPACE]
    assert {p.labels["task_id"] for p in workers} >= set(EXPECTED_POOL)
    assert {node_pools.get(p.node) for p in workers} == {AIRFLOW_POOL}


def test_task_pods_run_in_their_namespace_and_pool(sync_run: SyncRun, node_pools: dict[str, str]) -> None:
    task_pods = [p for p in sync_run.placements if p.namespace != WORKER_NAMESPACE]
    placed = {(p.labels["task_id"], p.namespace, node_pools.get(p.node)) for p in task_pods}
    expected = {(task, JOBS_NAMESPACE, pool) for task, pool in EXPECTED_POOL.items()}
    assert placed == expected


def test_no_task_pod_left_behind(sync_run: SyncRun, core: k8s.CoreV1Api) -> None:
    """Every pod of the run is gone once it finishes (deletion is asynchronous: allow 2 min).

    Only this run's pods count: the kind lane's earlier tests restart the scheduler mid-run, and the
    KubernetesExecutor deletes the worker pods that finished under the scheduler it replaced only at
    its next orphan check ([scheduler] orphaned_tasks_check_interval, 5 min), by design."""
    namespaces = sorted({p.namespace for p in sync_run.placements})
    assert namespaces, "the run recorded no pods"
    selector = label_selector(run_labels(sync_run.dag_id, sync_run.run_id))

    def leftovers() -> list[str]:
        return [
            f"{pod.metadata.namespace}/{pod.metadata.name} ({pod.status.phase})"
            for namespace in namespaces
            for pod in core.list_namespaced_pod(namespace, label_selector=selector).items
        ]

    deadline = time.monotonic() + 120
    while leftovers() and time.monotonic() < deadline:
        time.sleep(5)
    assert leftovers() == []


@pytest.fixture(scope="module")
def demo(core: k8s.CoreV1Api) -> DemoClickHouse:
    return DemoClickHouse(core, RELEASE, NAMESPACE, CLICKHOUSE_NAMESPACE)


def test_destination_equals_source_minus_skipped(sync_run: SyncRun, demo: DemoClickHouse) -> None:
    assert sync_run.state == "success"
    expected, skipped = expected_copy(demo.snapshot("source"))
    assert skipped, "the demo data must contain tables that match the skip patterns"
    assert demo.snapshot("destination") == expected


def test_task_log_readable_after_its_pods_are_gone(
    sync_run: SyncRun, airflow_api: object, core: k8s.CoreV1Api
) -> None:
    """The executor and job pods of migrate_data are deleted; its log (with the tool's summary) stays."""
    pods = [p for p in sync_run.placements if p.labels.get("task_id") == "migrate_data"]
    assert {p.namespace for p in pods} == {WORKER_NAMESPACE, JOBS_NAMESPACE}
    for pod in pods:
        with pytest.raises(ApiException) as gone:
            core.read_namespaced_pod(pod.name, pod.namespace)
        assert gone.value.status == 404
    text = task_log_text(airflow_api, sync_run.dag_id, sync_run.run_id, "migrate_data")
    assert "[summary]" in text, text[-2000:]
