"""The DAGs in a real Airflow: parsed by the dag-processor, serialized, triggered through REST API v2.

Uses the official `apache-airflow-client` against api-server + scheduler + dag-processor backed by a
real PostgreSQL. The executor is LocalExecutor, so a KubernetesPodOperator task fails for want of a
cluster: these tests only rely on what happens before a pod would be created.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import airflow_client.client as airflow_api
import pytest
import requests
from airflow_client.client.exceptions import ApiException

from .conftest import DAGS
from .live_airflow import LiveAirflow, airflow_processes, postgres_server, wait_until

SYNC_DAG = "clickhouse_db_sync"


@pytest.fixture(scope="module")
def live_airflow(presets_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAirflow]:
    home = tmp_path_factory.mktemp("airflow-home")
    with (
        postgres_server() as sql_alchemy_conn,
        airflow_processes(sql_alchemy_conn, DAGS, presets_file, home) as live,
    ):
        wait_until(
            lambda: requests.get(f"{live.base_url}/api/v2/monitor/health", timeout=5).ok,
            "api-server",
            180,
            live.logs,
        )
        yield live


@pytest.fixture(scope="module")
def api(live_airflow: LiveAirflow) -> Iterator[airflow_api.ApiClient]:
    configuration = airflow_api.Configuration(host=live_airflow.base_url)
    configuration.access_token = live_airflow.token()
    with airflow_api.ApiClient(configuration) as client:
        wait_until(
            lambda: _dag_exists(client, SYNC_DAG), "the parsed clickhouse_db_sync DAG", 180, live_airflow.logs
        )
        yield client


def _dag_exists(client: airflow_api.ApiClient, dag_id: str) -> bool:
    try:
        airflow_api.DAGApi(client).get_dag(dag_id)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def _trigger(client: airflow_api.ApiClient, conf: dict[str, Any]) -> str:
    body = airflow_api.TriggerDAGRunPostBody(logical_date=None, conf=conf)
    return airflow_api.DagRunApi(client).trigger_dag_run(SYNC_DAG, body).dag_run_id


def _task_state(client: airflow_api.ApiClient, run_id: str, task_id: str) -> str | None:
    instance = airflow_api.TaskInstanceApi(client).get_task_instance(SYNC_DAG, run_id, task_id)
    return instance.state.value if instance.state else None


def test_health_reports_every_component(live_airflow: LiveAirflow, api: airflow_api.ApiClient) -> None:
    def all_healthy() -> bool:
        health = airflow_api.MonitorApi(api).get_health()
        return all(
            component.status == "healthy"
            for component in (health.metadatabase, health.scheduler, health.dag_processor)
        )

    wait_until(all_healthy, "healthy metadatabase, scheduler and dag-processor", 120, live_airflow.logs)


def test_dags_parse_without_import_errors(api: airflow_api.ApiClient) -> None:
    assert airflow_api.ImportErrorApi(api).get_import_errors().total_entries == 0
    dag = airflow_api.DAGApi(api).get_dag(SYNC_DAG)
    assert dag.is_paused is True
    assert {tag.name for tag in dag.tags} == {"clickhouse", "internal"}


def test_serialized_graph_is_the_sync_chain(api: airflow_api.ApiClient) -> None:
    tasks = {task.task_id: task for task in airflow_api.TaskApi(api).get_tasks(SYNC_DAG).tasks}
    assert {task_id: sorted(task.downstream_task_ids) for task_id, task in tasks.items()} == {
        "start": ["drop_destination_db"],
        "drop_destination_db": ["create_db"],
        "create_db": ["migrate_data"],
        "migrate_data": ["end"],
        "end": [],
    }
    assert tasks["migrate_data"].operator_name == "KubernetesPodOperator"


def test_trigger_runs_the_first_task(live_airflow: LiveAirflow, api: airflow_api.ApiClient) -> None:
    airflow_api.DAGApi(api).patch_dag(SYNC_DAG, airflow_api.DAGPatchBody(is_paused=False))
    run_id = _trigger(api, {})
    wait_until(
        lambda: _task_state(api, run_id, "start") == "success", "start task success", 120, live_airflow.logs
    )


def test_trigger_with_an_invalid_param_is_rejected(api: airflow_api.ApiClient) -> None:
    with pytest.raises(ApiException) as rejected:
        _trigger(api, {"destination_db": ""})
    assert rejected.value.status == 400
    assert "destination_db" in rejected.value.body


def test_destination_equal_to_source_fails_before_any_pod(
    live_airflow: LiveAirflow, api: airflow_api.ApiClient, presets: dict
) -> None:
    source = presets["clickhouseSync"]["source"]
    conf = {
        "destination_host": source["host"],
        "destination_port": source["port"],
        "destination_db": source["database"],
    }
    airflow_api.DAGApi(api).patch_dag(SYNC_DAG, airflow_api.DAGPatchBody(is_paused=False))
    run_id = _trigger(api, conf)
    wait_until(
        lambda: _task_state(api, run_id, "drop_destination_db") in {"up_for_retry", "failed"},
        "drop_destination_db to fail",
        180,
        live_airflow.logs,
    )
    # Raw JSON: the generated model keeps only `event` of each structured line, not its error_detail.
    log = airflow_api.TaskInstanceApi(api).get_log_without_preload_content(
        SYNC_DAG, run_id, "drop_destination_db", 1, full_content=True
    )
    assert "is the source database: choose another destination_db" in log.data.decode()
    assert _task_state(api, run_id, "create_db") in {None, "none", "upstream_failed"}
