"""Platform figures from the live cluster, written to .cache/timings.json and printed as a table:
per-task queued->running latency of the sync run and each Airflow component's memory at idle.
They are measurements, not pass/fail thresholds; the assertions only check they were measurable."""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s

from scripts import platform_api

from .conftest import SyncRun, record_timing

pytestmark = pytest.mark.cluster

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "postgres")


def test_task_queue_latency(airflow_api: object, sync_run: SyncRun) -> None:
    instances = platform_api.airflow_client.TaskInstanceApi(airflow_api).get_task_instances(
        sync_run.dag_id, sync_run.run_id
    )
    latency = {
        ti.task_id: round((ti.start_date - ti.queued_when).total_seconds(), 1)
        for ti in instances.task_instances
        if ti.queued_when and ti.start_date
    }
    record_timing("task_queued_to_running_seconds", latency)
    assert set(latency) >= {"drop_destination_db", "create_db", "migrate_data"}


def _pod_memory(core: k8s.CoreV1Api, node: str) -> dict[str, int]:
    # Raw JSON: with preloading this client version returns the repr of a dict, not JSON.
    response = core.connect_get_node_proxy_with_path(node, "stats/summary", _preload_content=False)
    summary = json.loads(response.data)
    return {
        pod["podRef"]["name"]: sum(c.get("memory", {}).get("workingSetBytes", 0) for c in pod["containers"])
        for pod in summary["pods"]
        if pod["podRef"]["namespace"] == platform_api.NAMESPACE
    }


def test_component_memory_at_idle(core: k8s.CoreV1Api, sync_run: SyncRun) -> None:
    memory: dict[str, float] = {}
    for node in {pod.spec.node_name for pod in core.list_namespaced_pod(platform_api.NAMESPACE).items}:
        for pod_name, used in _pod_memory(core, node).items():
            component = next((c for c in COMPONENTS if c in pod_name), None)
            if component:
                memory[component] = round(used / 2**20, 1)
    record_timing("idle_memory_mib", memory)
    assert set(memory) == set(COMPONENTS)
