"""The job pod start latency callback pod_settings adds (airflow_platform_pools.metrics): what it
computes from a pod, the tags, how it reaches Airflow's OTel metrics, and that it never fails a task."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from airflow.providers.cncf.kubernetes.callbacks import KubernetesPodOperatorCallback
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk._shared.observability.metrics import stats as stats_module
from airflow.sdk._shared.observability.metrics.otel_logger import SafeOtelLogger
from airflow_platform_pools import PresetsError, pod_settings
from airflow_platform_pools import metrics as pod_metrics
from airflow_platform_pools.metrics import JobPodStartLatency, pod_start_tags, start_latency
from kubernetes.client import models as k8s
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from tests.facts import JOBS_NAMESPACE

CREATED = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def status(name: str, state: k8s.V1ContainerState | None) -> k8s.V1ContainerStatus:
    return k8s.V1ContainerStatus(
        name=name, image="job:1", image_id="", ready=False, restart_count=0, state=state
    )


def at(after: float | None) -> datetime | None:
    return None if after is None else CREATED + timedelta(seconds=after)


def running(name: str, after: float) -> k8s.V1ContainerStatus:
    return status(name, k8s.V1ContainerState(running=k8s.V1ContainerStateRunning(started_at=at(after))))


def terminated(name: str, after: float | None) -> k8s.V1ContainerStatus:
    finished = k8s.V1ContainerStateTerminated(exit_code=0, started_at=at(after))
    return status(name, k8s.V1ContainerState(terminated=finished))


def waiting(name: str) -> k8s.V1ContainerStatus:
    return status(name, k8s.V1ContainerState(waiting=k8s.V1ContainerStateWaiting(reason="ContainerCreating")))


def job_pod(
    statuses: list[k8s.V1ContainerStatus] | None,
    pool: str | None = "general",
    created: datetime | str | None = CREATED,
    with_status: bool = True,
) -> k8s.V1Pod:
    """The pod as KubernetesPodOperator reads it back from the API, labelled by pod_settings."""
    labels = pod_settings(pool)["labels"] if pool else {"team": "data"}
    metadata = k8s.V1ObjectMeta(
        name="job-abc", namespace=JOBS_NAMESPACE, labels=labels, creation_timestamp=created
    )
    status = k8s.V1PodStatus(phase="Running", container_statuses=statuses) if with_status else None
    return k8s.V1Pod(metadata=metadata, status=status)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([running("base", 7)], timedelta(seconds=7)),
        # the first container to start counts (an xcom sidecar, a second container)
        ([running("base", 9), running("airflow-xcom-sidecar", 4)], timedelta(seconds=4)),
        # a short job that had finished when the operator looked keeps its start in the terminated state
        ([terminated("base", 3)], timedelta(seconds=3)),
        ([waiting("sidecar"), running("base", 5)], timedelta(seconds=5)),
        # clock skew between the API server and the kubelet on a fast start: no negative latency
        ([running("base", -1)], timedelta(0)),
    ],
    ids=["running", "earliest-container", "terminated", "one-waiting", "clock-skew"],
)
def test_latency_from_creation_to_the_first_container_start(
    statuses: list[k8s.V1ContainerStatus], expected: timedelta
) -> None:
    assert start_latency(job_pod(statuses)) == expected


@pytest.mark.parametrize(
    "pod_kwargs",
    [
        {"statuses": None},
        {"statuses": []},
        {"statuses": [waiting("base")]},
        {"statuses": [terminated("base", None)]},  # failed before starting (e.g. CreateContainerError)
        {"statuses": [status("base", None)]},
        {"statuses": [running("base", 3)], "with_status": False},
        {"statuses": [running("base", 3)], "created": None},
    ],
    ids=["no-statuses", "empty", "waiting", "never-started", "no-state", "no-pod-status", "no-created"],
)
def test_no_latency_without_a_started_container(pod_kwargs: dict[str, Any]) -> None:
    assert start_latency(job_pod(**pod_kwargs)) is None


def test_rfc3339_strings_as_in_a_pod_dict() -> None:
    pod = job_pod([running("base", 2)], created="2025-01-01T12:00:00Z")
    pod.status.container_statuses[0].state.running.started_at = "2025-01-01T12:00:02Z"
    assert start_latency(pod) == timedelta(seconds=2)


@pytest.mark.parametrize("pool", ["general", "ssd"])
def test_tags_are_the_pool_label_and_the_namespace(pool: str) -> None:
    assert pod_start_tags(job_pod([running("base", 1)], pool=pool)) == {
        "pool": pool,
        "namespace": JOBS_NAMESPACE,
    }


def test_a_pod_without_the_pool_label_is_tagged_unknown() -> None:
    assert pod_start_tags(job_pod([running("base", 1)], pool=None))["pool"] == "unknown"


@pytest.fixture
def otel_metrics() -> Iterator[InMemoryMetricReader]:
    """Airflow's Stats with its OTel logger (as the task runner initializes it), read in memory."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    saved = (stats_module._factory, stats_module._backend, stats_module._export_legacy_names)
    stats_module.initialize(factory=lambda: SafeOtelLogger(provider, "airflow"), export_legacy_names=True)
    yield reader
    stats_module._factory, stats_module._backend, stats_module._export_legacy_names = saved
    provider.shutdown()


def histogram_points(reader: InMemoryMetricReader) -> dict[str, tuple[str, list[HistogramDataPoint]]]:
    """OTel metric name -> (unit, data points) of what Airflow's logger recorded."""
    data = reader.get_metrics_data()
    return {
        metric.name: (metric.unit, list(metric.data.data_points))
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def test_on_pod_starting_records_an_otel_histogram_in_ms_with_pool_and_namespace(
    otel_metrics: InMemoryMetricReader,
) -> None:
    JobPodStartLatency.on_pod_starting(
        pod=job_pod([running("base", 7)], pool="ssd"), client=None, mode="sync", operator=None, context={}
    )
    JobPodStartLatency.on_pod_starting(
        pod=job_pod([running("base", 2)], pool="ssd"), client=None, mode="sync", operator=None, context={}
    )
    unit, points = histogram_points(otel_metrics)["airflow.job_pod.start_latency"]
    assert unit == "ms"  # Prometheus's OTLP translation adds the suffix: ..._milliseconds
    assert [(dict(p.attributes), p.count, p.sum) for p in points] == [
        ({"pool": "ssd", "namespace": JOBS_NAMESPACE}, 2, 9000.0)
    ]


def test_a_pod_without_a_started_container_records_nothing(otel_metrics: InMemoryMetricReader) -> None:
    JobPodStartLatency.on_pod_starting(
        pod=job_pod([waiting("base")]), client=None, mode="sync", operator=None
    )
    assert "airflow.job_pod.start_latency" not in histogram_points(otel_metrics)


def operator(deferrable: bool, **kwargs: Any) -> KubernetesPodOperator:
    return KubernetesPodOperator(
        task_id="job", image="job:1", **pod_settings("general", deferrable=deferrable, **kwargs)
    )


@pytest.mark.parametrize("deferrable", [False, True])
def test_recorded_once_per_pod_in_either_mode(otel_metrics: InMemoryMetricReader, deferrable: bool) -> None:
    """KubernetesPodOperator calls on_pod_starting only when it waits for the start itself (not deferrable);
    a deferrable one, resumed after the pod finished, calls only on_pod_completion."""
    task = operator(deferrable)
    pod = job_pod([terminated("base", 6)])
    if not deferrable:
        for callback in task.callbacks:
            callback.on_pod_starting(pod=pod, client=None, mode="sync", operator=task, context={})
    for callback in task.callbacks:
        callback.on_pod_completion(pod=pod, client=None, mode="sync", operator=task, context={})
    _, points = histogram_points(otel_metrics)["airflow.job_pod.start_latency"]
    assert [(p.count, p.sum) for p in points] == [(1, 6000.0)]


def test_kubernetes_pod_operator_calls_it_with_the_running_pod(otel_metrics: InMemoryMetricReader) -> None:
    """The provider's own execute path (sync) with the Kubernetes calls stubbed: the pod it reads back once
    the pod has started is what gets measured."""
    task = operator(False, do_xcom_push=False, get_logs=False)
    started = job_pod([running("base", 11)])
    task.pod_request_obj = started  # the manifest: building it needs a whole task context
    context: Any = {"ti": mock.MagicMock()}
    with (
        mock.patch.object(KubernetesPodOperator, "get_or_create_pod", return_value=started),
        mock.patch.object(KubernetesPodOperator, "find_pod", return_value=started),
        mock.patch.object(KubernetesPodOperator, "await_pod_start"),
        mock.patch.object(KubernetesPodOperator, "await_pod_completion"),
        mock.patch.object(KubernetesPodOperator, "post_complete_action"),
        mock.patch.object(KubernetesPodOperator, "pod_manager"),
        mock.patch.object(KubernetesPodOperator, "client"),
    ):
        task.execute_sync(context)
    _, points = histogram_points(otel_metrics)["airflow.job_pod.start_latency"]
    assert [(dict(p.attributes)["pool"], p.count, p.sum) for p in points] == [("general", 1, 11000.0)]


def test_a_failure_in_the_callback_never_fails_the_task(caplog: pytest.LogCaptureFixture) -> None:
    pod = job_pod([running("base", 1)])
    with (
        caplog.at_level(logging.WARNING, logger=pod_metrics.__name__),
        mock.patch.object(pod_metrics.Stats, "timing", side_effect=OSError("exporter down")),
    ):
        JobPodStartLatency.on_pod_starting(pod=pod, client=None, mode="sync", operator=None, context={})
    with mock.patch.object(pod_metrics, "pool_label_key", side_effect=PresetsError("no presets")):
        JobPodStartLatency.on_pod_starting(pod=pod, client=None, mode="sync", operator=None, context={})
    JobPodStartLatency.on_pod_starting(pod=None, client=None, mode="sync", operator=None, context={})  # type: ignore[arg-type]
    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert messages == [
        "job pod start latency not recorded: OSError: exporter down",
        "job pod start latency not recorded: PresetsError: no presets",
    ]


class AuthorCallback(KubernetesPodOperatorCallback):
    pass


class OtherCallback(KubernetesPodOperatorCallback):
    pass


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, [JobPodStartLatency]),
        (AuthorCallback, [JobPodStartLatency, AuthorCallback]),
        ([AuthorCallback, OtherCallback], [JobPodStartLatency, AuthorCallback, OtherCallback]),
        ((AuthorCallback,), [JobPodStartLatency, AuthorCallback]),
        ([AuthorCallback, JobPodStartLatency], [JobPodStartLatency, AuthorCallback]),
    ],
    ids=["none", "one-class", "list", "tuple", "platform-one-given-too"],
)
def test_dag_author_callbacks_are_kept(given: Any, expected: list[type]) -> None:
    settings = pod_settings("general") if given is None else pod_settings("general", callbacks=given)
    assert settings["callbacks"] == expected
    assert operator(False, **({} if given is None else {"callbacks": given})).callbacks == expected
