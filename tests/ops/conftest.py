"""One real Airflow (api-server, scheduler, dag-processor on Postgres) configured with the chart's own
remote-logging and metrics settings, pointed at a real S3-compatible server (versitygw) and a real
Prometheus; a probe DAG with a succeeding and a failing task has run once when the tests start. The
pool helper reads the example presets (what the chart publishes with its defaults)."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from unittest import mock

import pytest
import requests
from airflow_platform_pools.testing import example_presets_path

from tests.chart.rendering import (
    NAMESPACE,
    RELEASE,
    Manifest,
    airflow_cfg,
    executor_pod_template,
    find,
    render,
)
from tests.dags.live_airflow import LiveAirflow, airflow_processes, postgres_server, wait_until

from .prometheus_server import PROMETHEUS, Prometheus, prometheus_server
from .s3_server import S3Server, s3_server

BUCKET = "task-logs"
PREFIX = "airflow/tasks"
DAG_ID = "ops_probe"
MARKER = "ops-probe-marker-" + secrets.token_hex(8)
DAG = f'''
from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.bash import BashOperator

with DAG("{DAG_ID}", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):
    BashOperator(task_id="say", bash_command="echo {MARKER}")
    BashOperator(task_id="fails", bash_command="echo {MARKER}-failing; exit 3")

with DAG("{DAG_ID}_long", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):
    BashOperator(task_id="sleeps", bash_command="sleep 900")
'''
# A job pod's start on the general pool, in a real task process. There is no cluster: the task calls the
# callbacks pod_settings gives a KubernetesPodOperator exactly as the operator does once its pod runs
# (on_pod_starting with the pod read back from the API), so what reaches Prometheus is what a job pod's
# start sends. Run only where Prometheus runs (tests/ops/test_dashboard.py, test_job_pod_metrics.py).
JOB_POD_DAG_ID = f"{DAG_ID}_job_pod"
JOB_POD_START_SECONDS = 7
JOB_POD_STARTED = f"""
from datetime import datetime, timedelta, timezone

from airflow_platform_pools import pod_settings
from kubernetes.client import models as k8s


def job_pod_started(**context):
    settings = pod_settings("general")
    created = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=30)
    started = created + timedelta(seconds={JOB_POD_START_SECONDS})
    pod = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(
            name="job-pod", namespace=settings["namespace"], labels=settings["labels"],
            creation_timestamp=created,
        ),
        status=k8s.V1PodStatus(phase="Running", container_statuses=[k8s.V1ContainerStatus(
            name="base", image="job:1", image_id="", ready=True, restart_count=0,
            state=k8s.V1ContainerState(running=k8s.V1ContainerStateRunning(started_at=started)),
        )]),
    )
    for callback in settings["callbacks"]:
        callback.on_pod_starting(pod=pod, client=None, mode="sync", operator=None, context=context)
"""
JOB_POD_DAG = f'''{JOB_POD_STARTED}

from airflow.sdk import DAG, task

with DAG("{JOB_POD_DAG_ID}", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):
    task(job_pod_started)()
'''


def chart_env(s3: S3Server, prometheus: Prometheus | None) -> dict[str, str]:
    """The chart's [logging]/[metrics] options and Airflow container env for these servers."""
    metrics = (
        ["--set", "metrics.enabled=true", "--set", f"metrics.otlpEndpoint={prometheus.otlp_endpoint}",
         "--set", "metrics.exportIntervalSeconds=2"]
        if prometheus else []
    )  # fmt: skip
    manifests = render(
        "values.yaml",
        "--set", "airflow.logs.remote.enabled=true",
        "--set", f"airflow.logs.remote.bucket={BUCKET}",
        "--set", f"airflow.logs.remote.prefix={PREFIX}",
        "--set", f"airflow.logs.remote.endpointUrl={s3.endpoint_url}",
        "--set", "airflow.logs.remote.addressingStyle=path",
        "--set", "airflow.logs.remote.credentials.existingSecret=logs-s3",
        *metrics,
    )  # fmt: skip
    cfg = airflow_cfg(manifests)
    env = {f"AIRFLOW__LOGGING__{key.upper()}": value for key, value in cfg["logging"].items()}
    env.pop("AIRFLOW__LOGGING__BASE_LOG_FOLDER")  # the pod's mount path; locally AIRFLOW_HOME/logs
    env |= worker_metrics_env(manifests, "ops-probe-" + secrets.token_hex(3))
    # What the secretKeyRefs inject: the chart's connection Secret and the credentials Secret.
    connection = find(manifests, "Secret", f"{RELEASE}-remote-logs", NAMESPACE)["data"]["connection"]
    env["AIRFLOW_CONN_AIRFLOW_PLATFORM_LOGS"] = base64.b64decode(connection).decode()
    # This 2-CPU machine is shared by many test runs: give the task runner's execution API calls time.
    env |= {"AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60"}
    return env | s3.credentials_env()


def worker_metrics_env(manifests: list[Manifest], pod_name: str) -> dict[str, str]:
    """The [metrics] options and OTEL_* variables the chart gives a worker pod named `pod_name`."""
    cfg = airflow_cfg(manifests)
    env = {f"AIRFLOW__METRICS__{key.upper()}": value for key, value in cfg.get("metrics", {}).items()}
    for item in executor_pod_template(manifests)["spec"]["containers"][0]["env"]:
        if "value" in item and item["name"].startswith("OTEL_"):
            env[item["name"]] = item["value"].replace("$(AIRFLOW_PLATFORM_POD_NAME)", pod_name)
    return env


@dataclass
class OpsAirflow:
    airflow: LiveAirflow
    s3: S3Server
    prometheus: Prometheus | None  # None without .tools/bin/prometheus (`make tools`)
    run_id: str
    sql_alchemy_conn: str

    def api(self, method: str, path: str, **kwargs: object) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.airflow.token()}"}
        url = f"{self.airflow.base_url}/api/v2{path}"
        response = requests.request(method, url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]
        response.raise_for_status()
        return response


def run_dag(airflow: LiveAirflow, dag_id: str) -> str:
    """Unpause and trigger `dag_id`, wait until the run finished; its run id."""

    def api(method: str, path: str, **kwargs: object) -> requests.Response:
        headers = {"Authorization": f"Bearer {airflow.token()}"}
        return requests.request(
            method, f"{airflow.base_url}/api/v2{path}", headers=headers, timeout=30, **kwargs
        )  # type: ignore[arg-type]

    wait_until(lambda: api("GET", f"/dags/{dag_id}").ok, f"the parsed DAG {dag_id}", 240, airflow.logs)
    api("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    response = api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
    response.raise_for_status()
    run_id = response.json()["dag_run_id"]
    wait_until(
        lambda: api("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"] in {"success", "failed"},
        f"the run of {dag_id}", 300, airflow.logs,
    )  # fmt: skip
    return run_id


# Package scope: it patches os.environ (the chart's logging and metrics settings) until it ends, which
# is when tests/ops ends, so no test of another directory (e.g. a live Airflow of tests/dags started after
# it on the same pytest-xdist worker) inherits them.
@pytest.fixture(scope="package")
def ops_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsAirflow]:
    home = tmp_path_factory.mktemp("airflow-home")
    dags = tmp_path_factory.mktemp("dags")
    (dags / f"{DAG_ID}.py").write_text(DAG)
    (dags / f"{JOB_POD_DAG_ID}.py").write_text(JOB_POD_DAG)
    presets = example_presets_path()
    with ExitStack() as stack:
        s3 = stack.enter_context(s3_server())
        prometheus = stack.enter_context(prometheus_server()) if PROMETHEUS.exists() else None
        s3.client().create_bucket(Bucket=BUCKET)
        with (
            mock.patch.dict(os.environ, chart_env(s3, prometheus)),
            postgres_server(migrated=True) as sql_alchemy_conn,
            airflow_processes(sql_alchemy_conn, dags, presets, home, migrated=True) as airflow,
        ):
            airflow.wait_healthy(timeout=240)
            yield OpsAirflow(airflow, s3, prometheus, run_dag(airflow, DAG_ID), sql_alchemy_conn)


@pytest.fixture(scope="package")
def job_pod_run(ops_airflow: OpsAirflow) -> str:
    """One run of the job pod probe (its task succeeded); its run id. Only where Prometheus runs."""
    if ops_airflow.prometheus is None:
        # only when pytest runs without `make tools` (Prometheus is a long cold build from the Go proxy)
        pytest.skip(f"{PROMETHEUS} is missing: run `make tools` to run the dashboard queries")
    run_id = run_dag(ops_airflow.airflow, JOB_POD_DAG_ID)
    run = ops_airflow.api("GET", f"/dags/{JOB_POD_DAG_ID}/dagRuns/{run_id}").json()
    assert run["state"] == "success", run
    return run_id
