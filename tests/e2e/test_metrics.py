"""Airflow's metrics reach the kind platform's Prometheus (metrics.testPrometheus, fed over OTLP by every
component and worker pod), and every query of the dashboard (dashboards/airflow-platform.json) returns
data once the sync DAG and a DAG with a succeeding and a failing task ran. That DAG arrives through the
e2e git bundle."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from scripts.images import image_tag
from tests.facts import NAMESPACE, RELEASE, image_ref
from tests.ops.dashboard import TARGETS, expand
from tests.ops.prometheus_server import Prometheus

from .bundle_repo import REFRESH_BUDGET, Api, Repository, wait_until
from .conftest import SyncRun, port_forward

pytestmark = pytest.mark.cluster

PROBE_DAG = """
from __future__ import annotations

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from airflow_platform_pools import pod_settings

with DAG("{dag_id}", schedule=None, catchup=False, tags=["e2e"]) as dag:
    for task_id, code in (("say", "print('hello')"), ("fails", "raise SystemExit(3)")):
        KubernetesPodOperator(
            task_id=task_id, image="{image}", cmds=["python", "-c", code], retries=0,
            **pod_settings("general"),
        )
"""


@pytest.fixture(scope="module")
def prometheus() -> Iterator[Prometheus]:
    """The chart's Prometheus through `kubectl port-forward` (its NetworkPolicy admits only Airflow)."""
    with port_forward(NAMESPACE, f"service/{RELEASE}-prometheus", 9090, "/-/ready") as url:
        yield Prometheus(url)


@pytest.fixture(scope="module")
def probe_run(api: Api, repository: Repository, sync_run: SyncRun) -> str:
    """One run of a DAG with a succeeding and a failing job pod, after the session's sync DAG run (`make
    e2e` does not run it in `make up`); its dag_id."""
    dag_id = f"e2e_metrics_{int(time.time())}"
    dag = PROBE_DAG.format(dag_id=dag_id, image=image_ref("clickhouse-tools", image_tag()))
    repository.push({f"{dag_id}.py": dag}, f"add {dag_id}")
    wait_until(lambda: api.exists(dag_id), f"{dag_id} parsed from git", REFRESH_BUDGET)
    run_id = api.trigger(dag_id)
    assert api.finished(dag_id, run_id)["state"] == "failed"
    assert (api.task_state(dag_id, run_id, "say"), api.task_state(dag_id, run_id, "fails")) == (
        "success",
        "failed",
    )
    return dag_id


def test_the_probe_dag_reports_its_success_and_its_failure(prometheus: Prometheus, probe_run: str) -> None:
    for counter in ("airflow_ti_successes_total", "airflow_ti_failures_total"):
        expression = f'sum(max_over_time({counter}{{dag_id="{probe_run}"}}[1h]))'
        wait_until(lambda: prometheus.query(expression), f"{counter} of {probe_run}", 180)  # noqa: B023


@pytest.mark.parametrize(("label", "expression"), TARGETS, ids=[label for label, _ in TARGETS])
def test_dashboard_query_returns_data(
    prometheus: Prometheus, probe_run: str, label: str, expression: str
) -> None:
    deadline = time.monotonic() + 180  # the next export of each process (5 s on kind), with margin
    while not (result := prometheus.query(expand(expression))) and time.monotonic() < deadline:
        time.sleep(5)
    names = sorted(n for n in prometheus.metric_names() if n.startswith("airflow"))
    assert result, f"{label}: no data for {expression!r}; Airflow metrics present: {names}"
