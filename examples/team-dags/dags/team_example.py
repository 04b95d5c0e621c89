"""A team's DAG delivered through a git DAG bundle: one job image on the `general` node pool.

The namespace, tolerations, node affinity, default resources and service account come from the
platform's pool presets (`airflow_platform_pools`), never hard-coded here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from airflow_platform_pools import pod_settings

with DAG(
    dag_id="team_example_report",
    description="Nightly report of the example team (a container job on the general pool)",
    schedule="0 3 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["team-example"],
) as dag:
    KubernetesPodOperator(
        task_id="build_report",
        # Your team's image, pinned by tag (or digest); the platform only schedules it.
        image="registry.example.com/team-example/report:1.0.0",
        arguments=["--date", "{{ ds }}"],
        **pod_settings("general", resources={"requests": {"cpu": "250m", "memory": "256Mi"}}),
    )
