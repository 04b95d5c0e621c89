"""Every query of dashboards/airflow-platform.json returns data from a real Prometheus fed (over OTLP,
with the chart's metrics settings) by a real Airflow that ran the probe DAG (a success and a failure)
and the job pod probe (a general-pool job pod's start, through the pool helper's callback)."""

from __future__ import annotations

import time

import pytest

from .conftest import OpsAirflow
from .dashboard import DASHBOARD, TARGETS, expand


def test_dashboard_is_grafana_json() -> None:
    assert DASHBOARD["uid"] and DASHBOARD["title"]
    assert [v["name"] for v in DASHBOARD["templating"]["list"]] == ["datasource"]
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]


@pytest.mark.parametrize(("label", "expression"), TARGETS, ids=[label for label, _ in TARGETS])
def test_dashboard_query_returns_data(
    ops_airflow: OpsAirflow, job_pod_run: str, label: str, expression: str
) -> None:
    assert ops_airflow.prometheus is not None  # job_pod_run skipped otherwise
    deadline = time.monotonic() + 120  # metrics arrive with the next export (2 s in the test)
    while True:
        result = ops_airflow.prometheus.query(expand(expression))
        if result or time.monotonic() > deadline:
            break
        time.sleep(3)
    names = sorted(n for n in ops_airflow.prometheus.metric_names() if n.startswith("airflow"))
    assert result, f"{label}: no data for {expression!r}; Airflow metrics present: {names}"
