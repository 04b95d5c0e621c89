"""Orphaned job pods: deletes KubernetesPodOperator pods whose Airflow task is no longer active.

A job pod normally ends with its task: the worker deletes it (on_finish_action) or a retry reattaches to
it. When the worker pod itself dies mid-task (node lost, OOM, deleted) and no retry follows, nobody is
left to delete the job pod: it runs on, or stays completed, forever. This job (the orphan-reaper
CronJob) deletes every KubernetesPodOperator pod older than a grace period whose task instance is not in
an active state, matching the pod's labels the way the operator writes them (make_safe_label_value).
Usage: python reap_orphans.py --namespace NS [--namespace NS ...] [--grace-minutes N] [--dry-run]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# The operator's own marker label on the pods it launches.
KPO_LABEL = "kubernetes_pod_operator"
# Task states in which a job pod is (or may again be) in use: a retry reattaches to its pod.
ACTIVE_STATES = (
    "scheduled", "queued", "running", "restarting", "up_for_retry", "up_for_reschedule", "deferred",
)  # fmt: skip

TaskKey = tuple[str, str, str, str]  # dag_id, task_id, run_id, map_index ("" when not mapped)


@dataclass(frozen=True)
class JobPod:
    namespace: str
    name: str
    labels: dict[str, str]
    created: datetime

    def task_key(self) -> TaskKey:
        labels = self.labels
        return (labels.get("dag_id", ""), labels.get("task_id", ""), labels.get("run_id", ""),
                labels.get("map_index", ""))  # fmt: skip


def label_key(dag_id: str, task_id: str, run_id: str, map_index: int) -> TaskKey:
    """The labels KubernetesPodOperator puts on a pod of this task instance."""
    from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value

    return (
        make_safe_label_value(dag_id), make_safe_label_value(task_id), make_safe_label_value(run_id),
        str(map_index) if map_index is not None and map_index >= 0 else "",
    )  # fmt: skip


def active_task_keys() -> set[TaskKey]:
    """Label keys of every task instance in an active state (read from the metadata database)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(TaskInstance.dag_id, TaskInstance.task_id, TaskInstance.run_id, TaskInstance.map_index)
    with create_session() as session:
        rows = session.execute(query.where(TaskInstance.state.in_(ACTIVE_STATES))).all()
    return {label_key(*row) for row in rows}


def orphans(pods: Iterable[JobPod], active: set[TaskKey], now: datetime, grace: timedelta) -> list[JobPod]:
    """Operator pods older than grace whose task instance is not active. Other pods are never chosen."""
    return [
        pod for pod in pods
        if pod.labels.get(KPO_LABEL) == "True" and now - pod.created > grace and pod.task_key() not in active
    ]  # fmt: skip


def list_job_pods(core: Any, namespace: str) -> list[JobPod]:
    items = core.list_namespaced_pod(namespace, label_selector=f"{KPO_LABEL}=True").items
    return [
        JobPod(namespace, pod.metadata.name, dict(pod.metadata.labels or {}), pod.metadata.creation_timestamp)
        for pod in items
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", action="append", required=True, help="a workload namespace")
    parser.add_argument("--grace-minutes", type=int, default=30)
    parser.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    args = parser.parse_args(argv)
    if args.grace_minutes < 1:
        parser.error(f"--grace-minutes must be at least 1, got {args.grace_minutes}")
    from kubernetes import client, config

    config.load_incluster_config()
    core = client.CoreV1Api()
    pods = [pod for namespace in args.namespace for pod in list_job_pods(core, namespace)]
    # Pods first, then the database: a task that starts in between is seen as active, never reaped.
    active = active_task_keys()
    chosen = orphans(pods, active, datetime.now(UTC), timedelta(minutes=args.grace_minutes))
    print(
        f"[orphan-reaper] {len(pods)} job pods, {len(active)} active tasks, {len(chosen)} orphans", flush=True
    )
    for index, pod in enumerate(chosen, 1):
        key = "/".join(pod.task_key())
        print(f"[orphan-reaper] {index}/{len(chosen)} {pod.namespace}/{pod.name} (task {key})", flush=True)
        if not args.dry_run:
            try:
                core.delete_namespaced_pod(pod.name, pod.namespace)
            except client.ApiException as error:
                if error.status != 404:  # already gone is what we wanted
                    raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
