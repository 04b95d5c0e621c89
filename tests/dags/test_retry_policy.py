"""Which failed pods are retried. Eviction cannot be caused without a cluster: the pod objects are the
Kubernetes API's own models, shaped like what the API returns for each case."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow_platform_pools.operators import PlatformPodOperator, is_retryable
from kubernetes.client import models as k8s

MIGRATE_RETRY = {3}


def _pod(exit_code: int | None = None, reason: str | None = None, phase: str = "Failed") -> k8s.V1Pod:
    state = k8s.V1ContainerState(
        terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code) if exit_code is not None else None
    )
    status = k8s.V1ContainerStatus(
        name="base", image="i", image_id="", ready=False, restart_count=0, state=state
    )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="p", namespace="ns"),
        status=k8s.V1PodStatus(phase=phase, reason=reason, container_statuses=[status]),
    )


@pytest.mark.parametrize("exit_code", [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 137])
def test_deterministic_exit_codes_are_not_retried(exit_code: int) -> None:
    assert not is_retryable(_pod(exit_code), "base", MIGRATE_RETRY)


def test_unreachable_is_retried() -> None:
    assert is_retryable(_pod(3), "base", MIGRATE_RETRY)


@pytest.mark.parametrize("reason", ["Evicted", "Preempting", "NodeShutdown", "Terminated", "NodeLost"])
def test_infrastructure_failures_are_retried_whatever_the_exit_code(reason: str) -> None:
    assert is_retryable(_pod(137, reason), "base", MIGRATE_RETRY)
    assert is_retryable(_pod(None, reason), "base", MIGRATE_RETRY)


def test_a_pod_that_never_ran_is_retried_but_a_deadline_is_not() -> None:
    assert is_retryable(_pod(None, phase="Pending"), "base", MIGRATE_RETRY)
    assert not is_retryable(_pod(None, "DeadlineExceeded"), "base", MIGRATE_RETRY)


class _Failing(PlatformPodOperator):
    """cleanup() of the parent raises what the provider raises for a failed pod (no API calls here)."""

    def process_pod_deletion(self, *args: object, **kwargs: object) -> None:
        pass

    def patch_already_checked(self, *args: object, **kwargs: object) -> None:
        pass

    def is_istio_enabled(self, *args: object) -> bool:
        return False


@pytest.mark.parametrize(("exit_code", "expected"), [(6, AirflowFailException), (3, AirflowException)])
def test_cleanup_turns_refusals_into_failures_without_retry(exit_code: int, expected: type) -> None:
    operator = _Failing(task_id="t", image="i", retry_exit_codes=MIGRATE_RETRY, log_events_on_failure=False)
    pod = _pod(exit_code)
    with pytest.raises(AirflowException) as raised:
        operator.cleanup(pod, pod)
    assert type(raised.value) is expected
