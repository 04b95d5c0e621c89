"""files/ops/reap_orphans.py's database query against the real Airflow of tests/ops/conftest.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.dags.live_airflow import wait_until

from .conftest import DAG_ID, OpsAirflow
from .test_orphan_reaper import SCRIPT, operator_labels, reaper


def test_active_task_keys_reads_running_tasks_from_the_metadata_database(
    ops_airflow: OpsAirflow, tmp_path
) -> None:
    """A running task's label key is active; the finished probe tasks' keys are not."""
    dag_id = f"{DAG_ID}_long"
    ops_airflow.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    run_id = ops_airflow.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None}).json()[
        "dag_run_id"
    ]
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/sleeps"
    wait_until(lambda: ops_airflow.api("GET", path).json()["state"] == "running", "the sleeping task", 240)
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": ops_airflow.sql_alchemy_conn,
           "AIRFLOW_HOME": str(tmp_path)}  # fmt: skip
    # The keys go to a file: Airflow's own logging (a failed metrics export at exit) may print after them.
    output = tmp_path / "active.json"
    code = (
        f"import json, sys; sys.path.insert(0, {str(SCRIPT.parent)!r}); import reap_orphans;"
        f"open({str(output)!r}, 'w').write(json.dumps(sorted(reap_orphans.active_task_keys())))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    active = {tuple(key) for key in json.loads(output.read_text())}
    assert reaper.label_key(dag_id, "sleeps", run_id, -1) in active
    assert (
        *tuple(operator_labels(dag_id, "sleeps", run_id)[k] for k in ("dag_id", "task_id", "run_id")),
        "",
    ) in active
    assert not any(key[0] == DAG_ID for key in active), "finished probe tasks are not active"
    ops_airflow.api("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"})
