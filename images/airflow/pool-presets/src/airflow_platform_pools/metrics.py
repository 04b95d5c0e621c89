"""Job pod start latency per node pool, recorded through Airflow's own metrics.

Airflow's metrics know DAGs and tasks, not the job pods a KubernetesPodOperator starts inside a task.
`JobPodStartLatency` is a KubernetesPodOperator callback (`pod_settings` adds it to every job pod) that
records, once per pod, the time from the pod's creation (API server) to the start of its first container
(kubelet), with the pod's node pool and namespace as tags: scheduling, node scale-up, image pull and
init containers all show up in it.

It goes through Airflow's `Stats`, so it follows the `[metrics]` settings of the task process (OTel,
StatsD or off). With OTel the timer is the histogram `<prefix>.job_pod.start_latency` in milliseconds,
which Prometheus's OTLP receiver stores as `airflow_job_pod_start_latency_milliseconds` (labels `pool`,
`namespace`). The task runner registers Airflow's flush of the OTel metrics to run when the task process
exits, so the value reaches the exporter even though the process ends long before the next periodic
export.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.cncf.kubernetes.callbacks import KubernetesPodOperatorCallback
from airflow.sdk.observability.stats import Stats
from kubernetes.client import models as k8s

from . import pool_label_key

log = logging.getLogger(__name__)

STAT = "job_pod.start_latency"
# The pod label naming the pool (pod_settings sets it and a DAG cannot override it); a pod without it
# was not placed through pod_settings.
UNKNOWN = "unknown"

__all__ = ["STAT", "JobPodStartLatency", "merge_callbacks", "pod_start_tags", "start_latency"]


def _timestamp(value: datetime | str | None) -> datetime | None:
    # The kubernetes client deserializes timestamps to datetimes; a pod rebuilt from a dict (a trigger
    # event, a test) may still carry the RFC 3339 string.
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


def _container_started_at(status: k8s.V1ContainerStatus) -> datetime | None:
    state = status.state
    if state is None:
        return None
    if state.running is not None and state.running.started_at is not None:
        return _timestamp(state.running.started_at)
    # A short job may have finished before the operator looked: its start is kept in the terminated state.
    if state.terminated is not None and state.terminated.started_at is not None:
        return _timestamp(state.terminated.started_at)
    return None


def start_latency(pod: k8s.V1Pod) -> timedelta | None:
    """Time from the pod's creation to its first container's start; None when no container started."""
    created = _timestamp(pod.metadata.creation_timestamp) if pod.metadata is not None else None
    statuses = (pod.status.container_statuses if pod.status is not None else None) or []
    starts = [started for status in statuses if (started := _container_started_at(status)) is not None]
    if created is None or not starts:
        return None
    # Both timestamps have one-second resolution and come from different clocks (API server, kubelet):
    # a negative difference is clock skew on a fast start, not a meaningful value.
    return max(min(starts) - created, timedelta(0))


def pod_start_tags(pod: k8s.V1Pod) -> dict[str, str]:
    metadata = pod.metadata or k8s.V1ObjectMeta()
    labels = metadata.labels or {}
    return {"pool": labels.get(pool_label_key()) or UNKNOWN, "namespace": metadata.namespace or UNKNOWN}


def record_start_latency(pod: k8s.V1Pod | None) -> None:
    """Record the pod's start latency; never raises (a metric must not fail the job's task)."""
    try:
        if pod is None:
            return
        latency = start_latency(pod)
        if latency is None:
            log.info("job pod start latency not recorded: no container of the pod has started")
            return
        Stats.timing(STAT, latency, tags=pod_start_tags(pod))
    # Any error: the task's outcome is the job's, never the metric's.
    except Exception as error:
        log.warning("job pod start latency not recorded: %s: %s", type(error).__name__, error)


class JobPodStartLatency(KubernetesPodOperatorCallback):
    """Records the job pod's start latency (see the module docstring), once per pod."""

    @staticmethod
    def on_pod_starting(*, pod: k8s.V1Pod, **kwargs: Any) -> None:
        record_start_latency(pod)

    @staticmethod
    def on_pod_completion(*, pod: k8s.V1Pod, operator: Any = None, **kwargs: Any) -> None:
        # A deferrable operator never calls on_pod_starting (the triggerer waits for the start); when it
        # resumes, the finished pod still has its containers' start times. Not deferrable: recorded already.
        if getattr(operator, "deferrable", False):
            record_start_latency(pod)


Callbacks = type[KubernetesPodOperatorCallback] | Iterable[type[KubernetesPodOperatorCallback]] | None


def merge_callbacks(platform: Callbacks, caller: Callbacks) -> list[type[KubernetesPodOperatorCallback]]:
    """The platform's callbacks, then the DAG author's (KubernetesPodOperator takes one class or a list)."""
    merged: list[type[KubernetesPodOperatorCallback]] = []
    for callbacks in (platform, caller):
        if callbacks is None:
            continue
        for callback in [callbacks] if isinstance(callbacks, type) else callbacks:
            if callback not in merged:  # an author who adds the platform's callback too: recorded once
                merged.append(callback)
    return merged
