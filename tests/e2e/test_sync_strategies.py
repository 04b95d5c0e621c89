"""clickhouse_db_sync strategies on the live platform: the preflight refuses before any drop, `recreate`
and `swap` both produce the copy, and during a `swap` run the destination stays readable throughout.
Also measures the executor worker-pod time `deferrable=True` saves on migrate_data (a figure)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import airflow_client.client as airflow_client
import pytest
from kubernetes import client as k8s

from scripts import platform_api
from tests.facts import CLICKHOUSE_NAMESPACE, NAMESPACE, NAMESPACE_OF_POOL, RELEASE, WORKER_NAMESPACE

from .conftest import record_timing
from .demo_clickhouse import DemoClickHouse

pytestmark = pytest.mark.cluster

DAG_ID = "clickhouse_db_sync"


@pytest.fixture(scope="module")
def demo(core: k8s.CoreV1Api) -> DemoClickHouse:
    return DemoClickHouse(core, RELEASE, NAMESPACE, CLICKHOUSE_NAMESPACE)


def _run(api: Any, conf: dict[str, Any]) -> tuple[str, str]:
    airflow_client.DAGApi(api).patch_dag(DAG_ID, airflow_client.DAGPatchBody(is_paused=False))
    body = airflow_client.TriggerDAGRunPostBody(logical_date=None, conf=conf)
    run_id = airflow_client.DagRunApi(api).trigger_dag_run(DAG_ID, body).dag_run_id
    return run_id, platform_api.wait_for_dag_run(api, DAG_ID, run_id)


def _run_while_sampling(api: Any, conf: dict[str, Any], sample: Callable[[], None]) -> tuple[str, str]:
    """`_run`, with `sample` called about every second in a background thread until the run ends."""
    stop = threading.Event()

    def sample_until_stopped() -> None:
        while not stop.is_set():
            sample()
            time.sleep(1)

    sampler = threading.Thread(target=sample_until_stopped, daemon=True)
    sampler.start()
    try:
        return _run(api, conf)
    finally:
        stop.set()
        sampler.join(timeout=60)


def _state(api: Any, run_id: str, task_id: str) -> str | None:
    instance = airflow_client.TaskInstanceApi(api).get_task_instance(DAG_ID, run_id, task_id)
    return instance.state.value if instance.state else None


def _count(demo: DemoClickHouse, database: str, table: str) -> int:
    ((count,),) = demo.query("destination", f"SELECT count() FROM {database}.`{table}`")
    return int(count)


def _a_copied_table(demo: DemoClickHouse, database: str) -> str:
    # system.parts, not system.tables.total_rows: the demo servers are 18.16, which lacks that column
    sql = (
        f"SELECT table FROM system.parts WHERE database = '{database}' AND active "
        "AND table NOT LIKE '.inner%' GROUP BY table ORDER BY sum(rows) DESC LIMIT 1"
    )
    rows = demo.query("destination", sql)
    return rows[0][0]


def test_recreate_copies_the_database(airflow_api: Any, demo: DemoClickHouse) -> None:
    run_id, state = _run(airflow_api, {"strategy": "recreate"})
    assert state == "success"
    assert _state(airflow_api, run_id, "drop_destination_db") == "success"
    database = demo.databases()["destination"]
    assert _count(demo, database, _a_copied_table(demo, database)) > 0


def test_preflight_refuses_the_source_as_destination_before_any_drop(
    airflow_api: Any, demo: DemoClickHouse
) -> None:
    source = demo.databases()["source"]
    run_id, state = _run(airflow_api, {"destination_profile": "demo-source", "destination_db": source})
    assert state == "failed"
    assert _state(airflow_api, run_id, "preflight") == "failed"
    assert _state(airflow_api, run_id, "drop_destination_db") == "upstream_failed"
    assert source in {row[0] for row in demo.query("source", "SHOW DATABASES")}


def test_swap_keeps_the_destination_readable_during_the_run(airflow_api: Any, demo: DemoClickHouse) -> None:
    database = demo.databases()["destination"]
    table = _a_copied_table(demo, database)  # the copy of the previous (recreate) run
    before = _count(demo, database, table)
    reads: list[int | str] = []

    def read() -> None:
        try:
            reads.append(_count(demo, database, table))
        except Exception as error:  # every failed read is a finding, kept for the assertion
            reads.append(f"{type(error).__name__}: {error}")

    run_id, state = _run_while_sampling(airflow_api, {"strategy": "swap"}, read)
    assert state == "success"
    assert _state(airflow_api, run_id, "drop_destination_db") == "skipped"
    assert len(reads) > 3, "the reader must have observed the destination during the run"
    assert [r for r in reads if not isinstance(r, int)] == []
    assert set(reads) == {before}  # same data: the previous copy, then the swapped-in one


def test_deferrable_migrate_frees_the_worker_pod(airflow_api: Any, core: k8s.CoreV1Api) -> None:
    """A figure, not an assertion: seconds a migrate_data job pod ran, and seconds a worker pod of the
    same task was running meanwhile (sampled every second). With deferrable=True the difference is the
    worker-pod time saved."""
    selector = "dag_id=clickhouse_db_sync,task_id=migrate_data"
    seconds = {"job": 0, "worker_while_job": 0, "worker": 0}

    def running(namespace: str) -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        return any(pod.status.phase == "Running" for pod in pods)

    def count_running_seconds() -> None:
        job, worker = running(NAMESPACE_OF_POOL["ssd"]), running(WORKER_NAMESPACE)
        seconds["job"] += job
        seconds["worker"] += worker
        seconds["worker_while_job"] += job and worker

    run_id, state = _run_while_sampling(airflow_api, {"strategy": "recreate"}, count_running_seconds)
    assert state == "success"
    figures: dict[str, Any] = {f"{key}_seconds": value for key, value in seconds.items()}
    figures |= {"worker_seconds_saved": seconds["job"] - seconds["worker_while_job"], "run_id": run_id}
    print(f"deferrable migrate_data: {figures}")
    record_timing("sync_dag_deferrable", figures)
