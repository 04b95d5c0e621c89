"""Finished tasks' logs live in the object store, not in any pod (airflow.logs.remote; on kind the
chart's in-cluster S3-compatible test store, airflow.logs.testObjectStore).

The sync run's migrate_data log must be in the bucket, gone from the shared log directory of the
node (deleteLocalCopy), and readable through the REST API, job pod output included, after its worker
pod, its job pod and then every api-server pod were deleted. tests/e2e/test_zz_helm_lifecycle.py
reads it once more after a `helm upgrade`.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from scripts import config, platform_api
from tests.facts import AIRFLOW_POOL, NAMESPACE, RELEASE

from .conftest import SyncRun, task_log_text

pytestmark = pytest.mark.cluster

TASK = "migrate_data"
STORE_SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=object-store"
API_SERVER_SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=api-server"


def _log_path_parts(sync_run: SyncRun) -> tuple[str, ...]:
    """What every copy of the task's log has in its path (Airflow's log_filename_template)."""
    return (f"dag_id={sync_run.dag_id}/", f"run_id={sync_run.run_id}/", f"task_id={TASK}/")


def _matching(paths: list[str], parts: tuple[str, ...]) -> list[str]:
    return [path for path in paths if all(part in path for part in parts)]


def _bucket_files(core: k8s.CoreV1Api) -> list[str]:
    """Every object of the remote-log bucket, as the store's posix backend keeps them (one file each)."""
    bucket = config.installed_values()["airflow"]["logs"]["remote"]["bucket"]
    pod = core.list_namespaced_pod(NAMESPACE, label_selector=STORE_SELECTOR).items[0]
    output = stream(
        core.connect_get_namespaced_pod_exec, pod.metadata.name, NAMESPACE,
        container="object-store", command=["find", f"/data/buckets/{bucket}", "-type", "f"],
        stderr=True, stdin=False, stdout=True, tty=False,
    )  # fmt: skip
    return output.splitlines()


def _node_log_files(node: str) -> list[str]:
    """Files of the hostPath log directory on the node that the control plane and workers share."""
    hostpath = config.installed_values()["airflow"]["logs"]["hostPath"]
    directory = f"{hostpath['path']}/{hostpath['subPath']}"
    result = subprocess.run(
        ["docker", "exec", node, "find", directory, "-type", "f"], capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


def _exists(core: k8s.CoreV1Api, name: str, namespace: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def _delete_api_server_pods(core: k8s.CoreV1Api) -> None:
    """Deletes every api-server pod and waits until only new, ready ones serve the REST API."""
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=API_SERVER_SELECTOR).items
    old = {pod.metadata.name for pod in pods}
    assert old, "no api-server pod to delete"
    for name in old:
        core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=API_SERVER_SELECTOR).items
        names = {pod.metadata.name for pod in pods}
        ready = [
            pod for pod in pods
            if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        ]  # fmt: skip
        if pods and not names & old and len(ready) == len(pods):
            break
        time.sleep(3)
    else:
        pytest.fail(f"the api-server pods {sorted(old)} were not replaced by ready ones within 300 s")
    platform_api.wait_for_api_server()


def test_task_log_is_in_the_bucket_and_not_on_the_node(
    sync_run: SyncRun, core: k8s.CoreV1Api, node_pools: dict[str, str]
) -> None:
    assert sync_run.state == "success"
    parts = _log_path_parts(sync_run)
    deadline = time.monotonic() + 120  # the worker uploads once it reported the task's end
    while not _matching(_bucket_files(core), parts) and time.monotonic() < deadline:
        time.sleep(3)
    assert _matching(_bucket_files(core), parts), f"no object of {parts} in the bucket"
    airflow_node = next(node for node, pool in node_pools.items() if pool == AIRFLOW_POOL)
    assert _matching(_node_log_files(airflow_node), parts) == [], "the local copy was not deleted"


def test_task_log_readable_after_worker_job_and_api_server_pods_are_gone(
    sync_run: SyncRun, core: k8s.CoreV1Api
) -> None:
    pods = [(p.name, p.namespace) for p in sync_run.placements if p.labels.get("task_id") == TASK]
    assert pods, f"no pod of {TASK} was recorded"
    deadline = time.monotonic() + 120  # deleted when the task ended (the worker pod a moment later)
    while (left := [pod for pod in pods if _exists(core, *pod)]) and time.monotonic() < deadline:
        time.sleep(3)
    assert not left, f"pods of {TASK} still exist: {left}"
    _delete_api_server_pods(core)
    with platform_api.api_client() as api:  # a new client: nothing cached from the old pods
        text = task_log_text(api, sync_run.dag_id, sync_run.run_id, TASK)
    assert "[summary]" in text, text[-2000:]  # the job pod's own output, part of the task log
