"""Reliability on the live cluster: the platform survives losing its scheduler and a task pod."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client as k8s
from kubernetes import watch

from scripts import platform_api
from tests.facts import NAMESPACE_OF_POOL

pytestmark = pytest.mark.cluster

DAG_ID = "clickhouse_db_sync"
MIGRATE_TASK = "migrate_data"
SCHEDULER_SELECTOR = "app.kubernetes.io/component=scheduler"


def _wait_for_task_state(api: object, run_id: str, task_id: str, state: str, timeout: float = 900) -> None:
    instances = platform_api.airflow_client.TaskInstanceApi(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        instance = instances.get_task_instance(DAG_ID, run_id, task_id)
        if instance.state is not None and instance.state.value == state:
            return
        time.sleep(1)
    raise TimeoutError(f"{task_id} never reached {state}")


def test_run_survives_scheduler_restart(airflow_api: object, core: k8s.CoreV1Api) -> None:
    run_id = platform_api.trigger_dag(airflow_api, DAG_ID)
    _wait_for_task_state(airflow_api, run_id, MIGRATE_TASK, "running")
    schedulers = core.list_namespaced_pod(platform_api.NAMESPACE, label_selector=SCHEDULER_SELECTOR).items
    assert schedulers, "no scheduler pod found"
    for pod in schedulers:
        core.delete_namespaced_pod(pod.metadata.name, platform_api.NAMESPACE)
    assert platform_api.wait_for_dag_run(airflow_api, DAG_ID, run_id) == "success"


def _delete_first_running_pod(core: k8s.CoreV1Api, namespace: str, selector: str, deleted: list[str]) -> None:
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_pod, namespace, label_selector=selector, timeout_seconds=900
    ):
        pod = event["object"]
        if pod.status.phase == "Running":
            core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
            deleted.append(pod.metadata.name)
            stream.stop()


def test_deleted_task_pod_is_retried(airflow_api: object, core: k8s.CoreV1Api) -> None:
    deleted: list[str] = []
    selector = f"dag_id={DAG_ID},task_id={MIGRATE_TASK}"
    killer = threading.Thread(
        target=_delete_first_running_pod,
        args=(core, NAMESPACE_OF_POOL["ssd"], selector, deleted),
        daemon=True,
    )
    killer.start()
    run_id = platform_api.trigger_dag(airflow_api, DAG_ID)
    assert platform_api.wait_for_dag_run(airflow_api, DAG_ID, run_id) == "success"
    killer.join(timeout=5)
    assert deleted, "the migrate pod was never seen running"
    instance = platform_api.airflow_client.TaskInstanceApi(airflow_api).get_task_instance(
        DAG_ID, run_id, MIGRATE_TASK
    )
    assert instance.try_number >= 2
