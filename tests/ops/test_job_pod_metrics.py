"""The job pod start latency (airflow_platform_pools.metrics) reaches a real Prometheus's OTLP receiver
under the name and labels the dashboard queries: from a task of the real Airflow, and from a task process
that exits before its next periodic export (Airflow's exit flush is what delivers it)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from airflow_platform_pools.testing import example_presets_path

from tests.chart.rendering import render
from tests.dags.live_airflow import wait_until
from tests.facts import JOBS_NAMESPACE

from .conftest import JOB_POD_START_SECONDS, JOB_POD_STARTED, OpsAirflow, worker_metrics_env
from .prometheus_server import PROMETHEUS, Prometheus, prometheus_server

METRIC = "airflow_job_pod_start_latency_milliseconds"
# Count and sum of the native histogram per pool and namespace, over every process that sent one.
COUNT = f"histogram_count(sum by (pool, namespace) (last_over_time({METRIC}[1h])))"
SUM = f"histogram_sum(sum by (pool, namespace) (last_over_time({METRIC}[1h])))"


def series(prometheus: Prometheus, expression: str) -> dict[tuple[str, str], float]:
    return {
        (item["metric"].get("pool", ""), item["metric"].get("namespace", "")): float(item["value"][1])
        for item in prometheus.query(expression)
    }


def test_a_job_pod_start_in_a_task_arrives_per_pool(ops_airflow: OpsAirflow, job_pod_run: str) -> None:
    prometheus = ops_airflow.prometheus
    assert prometheus is not None  # job_pod_run skipped otherwise
    wait_until(lambda: series(prometheus, COUNT), f"{METRIC} in Prometheus", 120, ops_airflow.airflow.logs)
    assert series(prometheus, COUNT) == {("general", JOBS_NAMESPACE): 1.0}
    assert series(prometheus, SUM) == {("general", JOBS_NAMESPACE): JOB_POD_START_SECONDS * 1000.0}


# A task process in short: Stats initialized as the task runner's main() does, the callback called as
# KubernetesPodOperator does, then the supervisor child's exit (the atexit handlers registered in the
# process, then os._exit). The export interval is an hour: only the exit flush can deliver the value.
TASK_PROCESS = f"""
import atexit
import os

from airflow.sdk._shared.observability.metrics import stats
from airflow.sdk.configuration import conf
from airflow.sdk.observability.metrics import stats_utils

stats.initialize(
    factory=stats_utils.get_stats_factory(),
    export_legacy_names=conf.getboolean("metrics", "legacy_names_on"),
)
{JOB_POD_STARTED}
job_pod_started()
atexit._run_exitfuncs()
os._exit(0)
"""


def test_the_task_process_flushes_the_latency_when_it_exits(tmp_path: Path) -> None:
    if not PROMETHEUS.exists():
        pytest.skip(f"{PROMETHEUS} is missing: run `make tools` to send the metric to a real Prometheus")
    with prometheus_server() as prometheus:
        manifests = render(
            "values.yaml",
            "--set", "metrics.enabled=true",
            "--set", f"metrics.otlpEndpoint={prometheus.otlp_endpoint}",
            "--set", "metrics.exportIntervalSeconds=3600",
        )  # fmt: skip
        env = {
            **os.environ,
            **worker_metrics_env(manifests, "flush-probe"),
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW_PLATFORM_PRESETS": str(example_presets_path()),
        }
        started = time.monotonic()
        process = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(TASK_PROCESS)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert process.returncode == 0, process.stderr[-4000:]
        assert time.monotonic() - started < 3600  # long before the first periodic export
        assert "not recorded" not in process.stderr, process.stderr[-4000:]
        wait_until(lambda: series(prometheus, COUNT), f"{METRIC} flushed at exit", 30)
        assert series(prometheus, SUM) == {("general", JOBS_NAMESPACE): JOB_POD_START_SECONDS * 1000.0}
        assert prometheus.query(f'{METRIC}{{k8s_pod_name="flush-probe"}}'), "not from the task process"
