"""clickhouse_db_sync: recreate a ClickHouse database on another server from its source.

start >> drop_destination_db >> create_db >> migrate_data >> end

Every task is a pod: drop/create run the ClickHouse client, migrate runs the `clickhouse-migrate` tool,
both from the platform's clickhouse-tools image. Where the pods run (namespace, node pool, tolerations,
resources) comes from the presets the chart publishes; connection defaults come from the chart too and
can be overridden per run through params. Passwords come only from a Kubernetes Secret as environment
variables: they never appear in pod arguments or in the DAG.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param
from airflow_platform_pools import pod_settings, presets

SYNC = presets()["clickhouseSync"]
CLIENT_POOL = "general"
MIGRATE_POOL = "ssd"  # long-running, I/O-heavy copy
DATABASE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"  # also keeps SQL injection out of the client's DROP/CREATE
DESTINATION_DB = "{{ params.destination_db }}"
HOST_NAME = r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$"


def _endpoint_params(side: str, defaults: dict[str, Any]) -> dict[str, Param]:
    return {
        f"{side}_host": Param(defaults["host"], type="string", pattern=HOST_NAME, description=f"{side} host"),
        f"{side}_port": Param(int(defaults["port"]), type="integer", minimum=1, maximum=65535),
        f"{side}_user": Param(defaults["user"], type="string", minLength=1),
        f"{side}_db": Param(defaults["database"], type="string", pattern=DATABASE_NAME, minLength=1),
    }


def check_distinct_endpoints(source: dict[str, Any], destination: dict[str, Any]) -> None:
    """Dropping the destination must never drop the source: refuse when they are the same database."""
    same_server = (source["host"], int(source["port"])) == (destination["host"], int(destination["port"]))
    if same_server and source["db"] == destination["db"]:
        raise ValueError(
            f"destination {destination['host']}:{destination['port']}/{destination['db']} is the source "
            "database: choose another destination_db or destination_host"
        )


def _check_run_params(context: Any) -> None:
    params = context["params"]
    check_distinct_endpoints(
        {key: params[f"source_{key}"] for key in ("host", "port", "db")},
        {key: params[f"destination_{key}"] for key in ("host", "port", "db")},
    )


def _password_from_secret(env_name: str, key: str) -> Secret:
    return Secret("env", env_name, SYNC["credentialsSecret"], key)


def _client_task(task_id: str, statement: str) -> KubernetesPodOperator:
    """A clickhouse-client pod against the destination; the password is read from the environment."""
    secure = "--secure" if SYNC.get("destinationSecure") else ""
    script = (
        'exec clickhouse-client --host "{{ params.destination_host }}" '
        '--port "{{ params.destination_port }}" --user "{{ params.destination_user }}" '
        f'--password "$CLICKHOUSE_PASSWORD" {secure} --query "{statement}"'
    )
    return KubernetesPodOperator(
        task_id=task_id,
        name=task_id.replace("_", "-"),
        image=presets()["images"]["clickhouseTools"],
        cmds=["bash", "-c"],
        arguments=[script],
        secrets=[_password_from_secret("CLICKHOUSE_PASSWORD", SYNC["destinationPasswordKey"])],
        pre_execute=_check_run_params,
        **pod_settings(CLIENT_POOL),
    )


def _migrate_arguments() -> list[str]:
    yes_no = {True: "y", False: "n"}
    arguments: list[str] = []
    for side in ("source", "destination"):
        for key in ("host", "port", "user", "db"):
            arguments += [f"--{side}-{key}", f"{{{{ params.{side}_{key} }}}}"]
    return [
        *arguments,
        "--destination-secure-flag", yes_no[bool(SYNC.get("destinationSecure"))],
        "--destination-verify-flag", yes_no[bool(SYNC.get("destinationVerify"))],
        "--execute-query-on", SYNC.get("executeQueryOn", "source"),
        "--skip-patterns", *SYNC.get("skipPatterns", []),
        "--verify",
    ]  # fmt: skip


check_distinct_endpoints(
    {"host": SYNC["source"]["host"], "port": SYNC["source"]["port"], "db": SYNC["source"]["database"]},
    {
        "host": SYNC["destination"]["host"],
        "port": SYNC["destination"]["port"],
        "db": SYNC["destination"]["database"],
    },
)

with DAG(
    dag_id="clickhouse_db_sync",
    description="Recreate a ClickHouse database on the destination server from the source server",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=True,
    tags=["clickhouse", "internal"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=3)},
    params={
        **_endpoint_params("source", SYNC["source"]),
        **_endpoint_params("destination", SYNC["destination"]),
    },
    doc_md=__doc__,
) as dag:
    start = EmptyOperator(task_id="start")
    drop_destination_db = _client_task(
        "drop_destination_db", "DROP DATABASE IF EXISTS {{ params.destination_db }}"
    )
    create_db = _client_task("create_db", "CREATE DATABASE IF NOT EXISTS {{ params.destination_db }}")
    migrate_data = KubernetesPodOperator(
        task_id="migrate_data",
        name="migrate-data",
        image=presets()["images"]["clickhouseTools"],
        cmds=["clickhouse-migrate"],
        arguments=_migrate_arguments(),
        secrets=[
            _password_from_secret("CLICKHOUSE_SOURCE_PASSWORD", SYNC["sourcePasswordKey"]),
            _password_from_secret("CLICKHOUSE_DESTINATION_PASSWORD", SYNC["destinationPasswordKey"]),
        ],
        pre_execute=_check_run_params,
        **pod_settings(MIGRATE_POOL),
    )
    end = EmptyOperator(task_id="end")

    start >> drop_destination_db >> create_db >> migrate_data >> end
