"""Task logs in a real S3-compatible store, configured exactly as the chart renders it: the S3 task
handler uploads them, the local copy is deleted, so the REST API can only answer from the bucket."""

from __future__ import annotations

import shutil

import pytest

from tests.dags.live_airflow import wait_until

from .conftest import BUCKET, DAG_ID, MARKER, PREFIX, OpsAirflow


def task_log_keys(ops: OpsAirflow, task_id: str) -> list[str]:
    contents = ops.s3.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return [
        item["Key"] for item in contents
        if f"dag_id={DAG_ID}/" in item["Key"] and f"/task_id={task_id}/" in item["Key"]
    ]  # fmt: skip


def test_probe_ran(ops_airflow: OpsAirflow) -> None:
    states = {
        ti["task_id"]: ti["state"]
        for ti in ops_airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{ops_airflow.run_id}/taskInstances").json()[
            "task_instances"
        ]
    }
    assert states == {"say": "success", "fails": "failed"}


@pytest.mark.parametrize("task_id", ["say", "fails"])
def test_task_log_lands_in_the_bucket_under_the_prefix(ops_airflow: OpsAirflow, task_id: str) -> None:
    # The supervisor uploads after it reported the task's end, so the run may finish a moment earlier.
    wait_until(
        lambda: task_log_keys(ops_airflow, task_id), f"the log of {DAG_ID}.{task_id} in the bucket", 120
    )
    keys = task_log_keys(ops_airflow, task_id)
    assert all(key.startswith(f"{PREFIX}/dag_id={DAG_ID}/") for key in keys), keys
    body = ops_airflow.s3.client().get_object(Bucket=BUCKET, Key=keys[0])["Body"].read().decode()
    assert MARKER in body


def test_local_copy_is_deleted_after_upload(ops_airflow: OpsAirflow) -> None:
    home = ops_airflow.airflow.logs[0].parent
    local = [p for p in (home / "logs").rglob("*") if p.is_file() and f"dag_id={DAG_ID}/" in str(p)]
    assert not local, f"local task logs kept although delete_local_logs is on: {local}"


# ids by task: MARKER is random per process, and pytest-xdist's workers must collect the same test ids
@pytest.mark.parametrize(
    ("task_id", "expected"), [("say", MARKER), ("fails", f"{MARKER}-failing")], ids=["say", "fails"]
)
def test_rest_api_reads_the_log_back_from_the_bucket(
    ops_airflow: OpsAirflow, task_id: str, expected: str
) -> None:
    # No local copy can answer: remove the whole local log folder first.
    shutil.rmtree(ops_airflow.airflow.logs[0].parent / "logs", ignore_errors=True)
    path = f"/dags/{DAG_ID}/dagRuns/{ops_airflow.run_id}/taskInstances/{task_id}/logs/1"
    content = ops_airflow.api("GET", path, params={"full_content": "true"}).text
    assert expected in content, content[-2000:]
