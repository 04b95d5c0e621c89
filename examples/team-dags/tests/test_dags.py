"""Parses every DAG of this repository the way the platform's dag-processor does.

Run before every push (and in CI): `pytest tests/`. It needs the same Airflow and providers as the
platform image and the platform's pool presets in AIRFLOW_PLATFORM_PRESETS (a presets.json: ask your
platform team, or `kubectl -n airflow get configmap airflow-platform-pool-presets
-o jsonpath='{.data.presets\\.json}' > presets.json`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag

DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture(scope="module")
def dag_bag() -> DagBag:
    if not Path(os.environ.get("AIRFLOW_PLATFORM_PRESETS", "")).is_file():
        pytest.fail("set AIRFLOW_PLATFORM_PRESETS to the platform's presets.json (see this file's docstring)")
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_file_imports(dag_bag: DagBag) -> None:
    assert dag_bag.import_errors == {}, "\n".join(f"{k}:\n{v}" for k, v in dag_bag.import_errors.items())


def test_every_dag_has_tasks_and_a_tag(dag_bag: DagBag) -> None:
    assert dag_bag.dags, f"no DAG found under {DAGS}"
    for dag_id, dag in dag_bag.dags.items():
        assert dag.tasks, f"{dag_id} has no task"
        assert dag.tags, f"{dag_id} has no tag (tags make a team's DAGs findable in the UI)"


def test_job_pods_use_a_platform_pool(dag_bag: DagBag) -> None:
    """Every pod task got its namespace and tolerations from the presets (pod_settings)."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    for dag in dag_bag.dags.values():
        for task in dag.tasks:
            if isinstance(task, KubernetesPodOperator):
                assert task.namespace, f"{dag.dag_id}.{task.task_id}: no namespace (use pod_settings)"
                assert task.tolerations, (
                    f"{dag.dag_id}.{task.task_id}: no pool tolerations (use pod_settings)"
                )
