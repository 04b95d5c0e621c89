"""files/ops/reap_orphans.py: which job pods are orphans (pure decision, real label sanitizing of the
cncf-kubernetes provider), and its database query against a real Airflow metadata database."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from tests.chart.rendering import CHART
from tests.facts import JOBS_NAMESPACE

from .chart_scripts import load_chart_script

SCRIPT = CHART / "files" / "ops" / "reap_orphans.py"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=30)
RUN_ID = "manual__2026-01-01T10:00:00.123456+00:00"  # not a valid label value: the operator hashes it


reaper = load_chart_script("reap_orphans")


class _TI:
    def __init__(self, dag_id: str, task_id: str, map_index: int, try_number: int = 1) -> None:
        self.dag_id, self.task_id, self.map_index, self.try_number = dag_id, task_id, map_index, try_number


class _Dag:
    parent_dag = None


def operator_labels(dag_id: str, task_id: str, run_id: str, map_index: int = -1) -> dict[str, str]:
    """The labels the real KubernetesPodOperator writes on its pod for this task instance."""
    context = {"ti": _TI(dag_id, task_id, map_index), "run_id": run_id, "dag": _Dag()}
    return KubernetesPodOperator._get_ti_pod_labels(context)  # type: ignore[arg-type]


def pod(labels: dict[str, str], age: timedelta, name: str = "job") -> object:
    return reaper.JobPod(JOBS_NAMESPACE, name, labels, NOW - age)


def test_operator_labels_are_sanitized_for_this_run_id() -> None:
    assert operator_labels("d", "t", RUN_ID)["run_id"] != RUN_ID, (
        "the test needs a run_id the operator hashes"
    )


def test_pod_of_an_active_task_is_kept() -> None:
    labels = operator_labels("sync", "migrate_data", RUN_ID)
    active = {reaper.label_key("sync", "migrate_data", RUN_ID, -1)}
    assert reaper.orphans([pod(labels, timedelta(hours=5))], active, NOW, GRACE) == []


def test_pod_of_a_finished_task_is_an_orphan() -> None:
    orphan = pod(operator_labels("sync", "migrate_data", RUN_ID), timedelta(hours=1))
    other_run = {reaper.label_key("sync", "migrate_data", RUN_ID.replace("10:00", "11:00"), -1)}
    assert reaper.orphans([orphan], other_run, NOW, GRACE) == [orphan]


def test_mapped_task_pods_are_told_apart() -> None:
    first = pod(operator_labels("d", "t", RUN_ID, 0), timedelta(hours=1), "first")
    second = pod(operator_labels("d", "t", RUN_ID, 1), timedelta(hours=1), "second")
    active = {reaper.label_key("d", "t", RUN_ID, 1)}
    assert reaper.orphans([first, second], active, NOW, GRACE) == [first]


def test_long_ids_match_the_operator_hashing() -> None:
    dag_id, task_id = "team_" + "x" * 90, "load_" + "y" * 80
    labels = operator_labels(dag_id, task_id, RUN_ID)
    assert max(len(value) for value in labels.values()) <= 63
    active = {reaper.label_key(dag_id, task_id, RUN_ID, -1)}
    assert reaper.orphans([pod(labels, timedelta(hours=2))], active, NOW, GRACE) == []


def test_young_pods_and_foreign_pods_are_never_reaped() -> None:
    young = pod(operator_labels("d", "t", RUN_ID), GRACE - timedelta(seconds=1), "young")
    foreign = pod({"app": "clickhouse", "dag_id": "d"}, timedelta(days=3), "clickhouse")
    assert reaper.orphans([young, foreign], set(), NOW, GRACE) == []


@pytest.mark.parametrize("minutes", ["0", "-1", "soon"])
def test_bad_grace_is_refused(minutes: str) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--namespace", JOBS_NAMESPACE, "--grace-minutes", minutes],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--grace-minutes" in result.stderr
