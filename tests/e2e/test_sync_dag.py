"""clickhouse_db_sync on the live platform: it succeeds, every pod lands where it should, nothing is
left behind, and the destination database equals the source."""

from __future__ import annotations

import base64
import json
import time

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from tests.facts import AIRFLOW_POOL, JOBS_NAMESPACE, NAMESPACE, RELEASE, WORKER_NAMESPACE

from .conftest import SyncRun, task_log_text

pytestmark = pytest.mark.cluster

CREDENTIALS_SECRET = "clickhouse-credentials"
PRESETS_CONFIGMAP = (f"{RELEASE}-pool-presets", NAMESPACE)
SKIP_PATTERNS = ("copy", "test", "backup", "dict")
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
    """Every pod of the DAG's runs is gone once they finish (deletion is asynchronous: allow 2 min)."""

    def leftovers() -> list[str]:
        return [
            f"{pod.metadata.namespace}/{pod.metadata.name} ({pod.status.phase})"
            for namespace in {p.namespace for p in sync_run.placements}
            for pod in core.list_namespaced_pod(namespace, label_selector=f"dag_id={sync_run.dag_id}").items
        ]

    deadline = time.monotonic() + 120
    while leftovers() and time.monotonic() < deadline:
        time.sleep(5)
    assert leftovers() == []


def _databases(core: k8s.CoreV1Api) -> dict[str, str]:
    """Source and destination database names, as the chart publishes them to the DAG."""
    name, namespace = PRESETS_CONFIGMAP
    sync = json.loads(core.read_namespaced_config_map(name, namespace).data["presets.json"])["clickhouseSync"]
    return {side: sync[side]["database"] for side in ("source", "destination")}


def _password(core: k8s.CoreV1Api, key: str) -> str:
    secret = core.read_namespaced_secret(CREDENTIALS_SECRET, JOBS_NAMESPACE)
    return base64.b64decode(secret.data[key]).decode()


def _query(core: k8s.CoreV1Api, service: str, password: str, sql: str) -> list[list[str]]:
    """Runs SQL with clickhouse-client inside the server's own pod (tab-separated rows)."""
    selector = core.read_namespaced_service(service, JOBS_NAMESPACE).spec.selector
    labels = ",".join(f"{key}={value}" for key, value in selector.items())
    pod = core.list_namespaced_pod(JOBS_NAMESPACE, label_selector=labels).items[0]
    output = stream(
        core.connect_get_namespaced_pod_exec, pod.metadata.name, JOBS_NAMESPACE,
        command=["clickhouse-client", "--password", password, "--query", sql],
        stderr=True, stdin=False, stdout=True, tty=False,
    )  # fmt: skip
    if "Received exception from server" in output or output.startswith("Code: "):
        raise RuntimeError(f"clickhouse-client on {service} failed for {sql!r}:\n{output}")
    return [line.split("\t") for line in output.splitlines() if line]


def _snapshot(core: k8s.CoreV1Api, side: str) -> dict[str, tuple[str, ...]]:
    """Object name -> (engine, row count, order-independent checksum) for one side of the sync."""
    service, password = f"clickhouse-{side}", _password(core, f"{side}-password")
    database = _databases(core)[side]
    objects = _query(
        core, service, password,
        f"SELECT name, engine FROM system.tables WHERE database = '{database}' ORDER BY name",
    )  # fmt: skip
    snapshot: dict[str, tuple[str, ...]] = {}
    for name, engine in objects:
        if name.startswith(".inner.") or engine in {"View", "MaterializedView"}:
            snapshot[name] = (engine,)
            continue
        columns = [row[0] for row in _query(
            core, service, password,
            f"SELECT name FROM system.columns WHERE database = '{database}' AND table = '{name}'",
        )]  # fmt: skip
        hashed = ", ".join(f"toString({column})" for column in columns)
        (count, checksum), = _query(
            core, service, password,
            f"SELECT count(), sum(cityHash64({hashed})) FROM {database}.`{name}`",
        )  # fmt: skip
        snapshot[name] = (engine, count, checksum)
    return snapshot


def test_destination_equals_source_minus_skipped(sync_run: SyncRun, core: k8s.CoreV1Api) -> None:
    assert sync_run.state == "success"
    source = _snapshot(core, "source")
    destination = _snapshot(core, "destination")
    skipped = {name for name in source if any(pattern in name for pattern in SKIP_PATTERNS)}
    assert skipped, "the demo data must contain tables that match the skip patterns"
    assert set(destination) & skipped == set()
    expected = {name: value for name, value in source.items() if name not in skipped}
    assert destination == expected


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
