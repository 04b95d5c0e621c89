"""A real Airflow task whose job pod asks for a Secret its namespace does not share with jobs (issue
#14): the ValidatingAdmissionPolicy refuses the pod, the task fails, and the refusal reaches the task
log that the DAG author reads through the REST API. The DAG arrives through the e2e git bundle, as a
DAG author's would."""

from __future__ import annotations

import json
import time

import pytest

from scripts.images import image_tag
from tests.facts import image_ref

from .bundle_repo import REFRESH_BUDGET, Api, Repository, wait_until

pytestmark = pytest.mark.cluster

FOREIGN_SECRET_DAG = """
from __future__ import annotations

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.sdk import DAG
from airflow_platform_pools import pod_settings

with DAG("{dag_id}", schedule=None, catchup=False, tags=["e2e"]) as dag:
    KubernetesPodOperator(
        task_id="read_foreign_secret",
        image="{image}",
        cmds=["python", "-c", "print('admitted')"],
        retries=0,
        **pod_settings("general", secrets=[Secret("env", "TOKEN", "{secret}", "token")]),
    )
"""


def _task_log(client: Api, dag_id: str, run_id: str, task_id: str) -> str:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1"
    return json.dumps(client.call("GET", path, params={"full_content": True}))


def test_task_asking_for_a_foreign_secret_fails_with_the_admission_message(
    api: Api,
    repository: Repository,
    foreign_secret: str,
) -> None:
    dag_id = f"e2e_foreign_secret_{int(time.time())}"
    image = image_ref("clickhouse-tools", image_tag())
    dag = FOREIGN_SECRET_DAG.format(dag_id=dag_id, image=image, secret=foreign_secret)
    repository.push({f"{dag_id}.py": dag}, f"add {dag_id}")
    wait_until(lambda: api.exists(dag_id), f"{dag_id} parsed from git", REFRESH_BUDGET)
    run_id = api.trigger(dag_id)
    assert api.finished(dag_id, run_id)["state"] == "failed"
    assert api.task_state(dag_id, run_id, "read_foreign_secret") == "failed"
    log = _task_log(api, dag_id, run_id, "read_foreign_secret")
    assert "may read only Secrets usable by jobs" in log, log[-3000:]
    assert foreign_secret in log
