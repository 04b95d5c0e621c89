"""The DAGs in a real Airflow: parsed by the dag-processor, serialized, triggered through REST API v2.

Uses the official `apache-airflow-client` against api-server + scheduler + dag-processor backed by a
real PostgreSQL, the chart's presets (with notifications pointed at a real SMTP server, aiosmtpd) and
the chart's bootstrap (Airflow pools, SMTP connection). The executor is LocalExecutor, so a
KubernetesPodOperator task cannot start a pod: these tests rely on what happens before a pod would be
created (trigger-time validation, the DAG's refusals, scheduling, retries, notifications).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import airflow_client.client as airflow_api
import pytest
import yaml
from aiosmtpd.controller import Controller
from airflow_client.client.exceptions import ApiException, ServiceException

from tests.chart.rendering import presets as chart_presets
from tests.chart.rendering import render
from tests.clickhouse.servers import free_port
from tests.facts import CLICKHOUSE_NAMESPACE

from .conftest import DAGS
from .live_airflow import LiveAirflow, airflow_processes, postgres_server, wait_until

SYNC_DAG = "clickhouse_db_sync"
RECIPIENT = "data-platform@example.com"
# The source server under other names: each must be refused as a destination of the same database.
SOURCE_ALIASES = {
    "source-fqdn": f"clickhouse-source.{CLICKHOUSE_NAMESPACE}.svc.cluster.local",
    "source-upper": "CLICKHOUSE-SOURCE",
    "source-namespaced": f"clickhouse-source.{CLICKHOUSE_NAMESPACE}",
}
INJECTIONS = ("$(cat /proc/self/environ)", "demo; DROP DATABASE demo", "`id`", "a b", "--help", "")
PARAMS = ("source_profile", "source_db", "destination_profile", "destination_db", "strategy")


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted for delivery"


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server on loopback collecting what it receives."""
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port  # type: ignore[attr-defined]
    yield box
    controller.stop()


@pytest.fixture(scope="module")
def live_presets(mailbox: Mailbox, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The kind presets, with notifications to the test SMTP server and alias profiles of the source."""
    source = {
        "port": 9000,
        "user": "default",
        "passwordKey": "source-password",
        "secure": False,
        "verify": True,
    }
    values = {
        "presets": {
            "notifications": {
                "enabled": True, "to": [RECIPIENT], "from": "airflow@example.com", "onSuccess": False,
                "smtp": {"host": "127.0.0.1", "port": mailbox.port},  # type: ignore[attr-defined]
            },
            "clickhouseSync": {
                "profiles": {name: {**source, "host": host} for name, host in SOURCE_ALIASES.items()}
            },
        }
    }  # fmt: skip
    path = tmp_path_factory.mktemp("values") / "live.yaml"
    path.write_text(yaml.safe_dump(values))
    return chart_presets(render("values-kind.yaml", "--values", str(path)))


@pytest.fixture(scope="module")
def live_airflow(live_presets: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAirflow]:
    home = tmp_path_factory.mktemp("airflow-home")
    presets_file = home / "presets.json"
    presets_file.write_text(json.dumps(live_presets))
    with (
        postgres_server(migrated=True) as sql_alchemy_conn,
        airflow_processes(sql_alchemy_conn, DAGS, presets_file, home, migrated=True) as live,
    ):
        # What the chart's airflow-bootstrap Job runs: Airflow pools and the SMTP connection.
        bootstrap = subprocess.run(
            [sys.executable, "-m", "airflow_platform_pools.bootstrap"],
            env=live.env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert bootstrap.returncode == 0, bootstrap.stdout + bootstrap.stderr
        live.bootstrap_output = bootstrap.stdout  # type: ignore[attr-defined]
        live.wait_healthy()
        yield live


@pytest.fixture(scope="module")
def api(live_airflow: LiveAirflow) -> Iterator[airflow_api.ApiClient]:
    configuration = airflow_api.Configuration(host=live_airflow.base_url)
    configuration.access_token = live_airflow.token()
    with airflow_api.ApiClient(configuration) as client:
        wait_until(
            lambda: _dag_exists(client, SYNC_DAG), "the parsed clickhouse_db_sync DAG", 180, live_airflow.logs
        )
        airflow_api.DAGApi(client).patch_dag(SYNC_DAG, airflow_api.DAGPatchBody(is_paused=False))
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


def _task(client: airflow_api.ApiClient, run_id: str, task_id: str) -> Any:
    return airflow_api.TaskInstanceApi(client).get_task_instance(SYNC_DAG, run_id, task_id)


def _task_state(client: airflow_api.ApiClient, run_id: str, task_id: str) -> str | None:
    state = _task(client, run_id, task_id).state
    return state.value if state else None


def _run_state(client: airflow_api.ApiClient, run_id: str) -> str:
    return airflow_api.DagRunApi(client).get_dag_run(SYNC_DAG, run_id).state.value


def _fail_run(client: airflow_api.ApiClient, run_id: str, attempts: int = 5) -> None:
    """Mark a run failed, as an operator would in the UI, retrying the API's transient database errors.

    The PATCH updates the run and its task instances while the scheduler may be updating the same rows;
    PostgreSQL then aborts one transaction and the API answers 500 "Database error" (seen once in CI on
    a loaded machine). An operator clicks again; so does this helper, a bounded number of times.
    """
    body = airflow_api.DAGRunPatchBody(state=airflow_api.DagRunMutableStates.FAILED)
    for attempt in range(1, attempts + 1):
        try:
            airflow_api.DagRunApi(client).patch_dag_run(SYNC_DAG, run_id, body)
            return
        except ServiceException as error:
            if attempt == attempts or "Database error" not in str(error.body):
                raise
            time.sleep(attempt)


def _log(client: airflow_api.ApiClient, run_id: str, task_id: str, try_number: int = 1) -> str:
    # Raw JSON: the generated model keeps only `event` of each structured line, not its error_detail.
    log = airflow_api.TaskInstanceApi(client).get_log_without_preload_content(
        SYNC_DAG, run_id, task_id, try_number, full_content=True
    )
    return log.data.decode()


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
    assert {tag.name for tag in dag.tags} == {"clickhouse", "internal"}
    assert dag.max_active_runs == 1


def test_serialized_graph_is_the_sync_chain(api: airflow_api.ApiClient) -> None:
    tasks = {task.task_id: task for task in airflow_api.TaskApi(api).get_tasks(SYNC_DAG).tasks}
    assert {task_id: sorted(task.downstream_task_ids) for task_id, task in tasks.items()} == {
        "start": ["preflight"],
        "preflight": ["drop_destination_db"],
        "drop_destination_db": ["create_db"],
        "create_db": ["migrate_data"],
        "migrate_data": ["end"],
        "end": [],
    }
    assert all(tasks[task_id].execution_timeout for task_id in ("preflight", "create_db", "migrate_data"))


def test_bootstrap_created_pools_mirroring_quotas_and_the_smtp_connection(
    api: airflow_api.ApiClient, live_presets: dict
) -> None:
    pools = {pool.name: pool for pool in airflow_api.PoolApi(api).get_pools().pools}
    for name, expected in live_presets["airflowPools"].items():
        assert pools[name].slots == expected["slots"]
        assert pools[name].include_deferred is True
    connection = airflow_api.ConnectionApi(api).get_connection("platform_smtp")
    assert (connection.conn_type, connection.host) == ("smtp", "127.0.0.1")


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_attempts_are_rejected_at_trigger_time(
    api: airflow_api.ApiClient, param: str, value: str
) -> None:
    with pytest.raises(ApiException) as rejected:
        _trigger(api, {param: value})
    assert rejected.value.status == 400
    assert param in rejected.value.body


@pytest.mark.parametrize("alias", sorted(SOURCE_ALIASES))
def test_same_source_under_another_name_fails_once_before_any_drop_and_notifies(
    live_airflow: LiveAirflow, api: airflow_api.ApiClient, live_presets: dict, mailbox: Mailbox, alias: str
) -> None:
    source = live_presets["clickhouseSync"]["source"]
    run_id = _trigger(api, {"destination_profile": alias, "destination_db": source["database"]})
    wait_until(lambda: _run_state(api, run_id) == "failed", "the run to fail", 180, live_airflow.logs)

    preflight = _task(api, run_id, "preflight")
    assert preflight.state.value == "failed"  # not up_for_retry: a refusal is not retried
    assert preflight.try_number == 1
    assert "is the source database" in _log(api, run_id, "preflight")
    for task_id in ("drop_destination_db", "create_db", "migrate_data"):
        assert _task_state(api, run_id, task_id) == "upstream_failed"

    def notified() -> list[Message]:
        return [message for message in mailbox.messages if run_id in str(message["Subject"])]

    wait_until(lambda: notified(), f"the failure e-mail of {run_id}", 120, live_airflow.logs)
    (message,) = notified()
    assert RECIPIENT in message["X-Envelope-To"]
    assert "failed" in str(message["Subject"])


def test_a_second_run_waits_for_the_first(live_airflow: LiveAirflow, api: airflow_api.ApiClient) -> None:
    """The first run's preflight cannot start a pod here (no cluster): it waits for its retry, running."""
    first = _trigger(api, {})
    wait_until(
        lambda: _task_state(api, first, "preflight") in {"running", "up_for_retry"},
        "the first run's preflight to start",
        180,
        live_airflow.logs,
    )
    second = _trigger(api, {"destination_db": "another_copy"})
    try:
        assert _run_state(api, first) == "running"
        assert _run_state(api, second) == "queued"
        assert _task_state(api, second, "preflight") in {None, "none"}
        _fail_run(api, first)
        wait_until(
            lambda: _run_state(api, second) == "running", "the second run to start", 120, live_airflow.logs
        )
    finally:
        for run_id in (first, second):
            if _run_state(api, run_id) not in {"failed", "success"}:
                _fail_run(api, run_id)
