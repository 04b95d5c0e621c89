"""A KubernetesPodOperator that retries only what can succeed on retry.

Airflow retries every failure the same way. For a job pod that is wrong twice: a refusal (bad input,
authentication, a safety check) fails the same way on every try, and a retry only delays the alert and
repeats side effects. `PlatformPodOperator` fails such a task at once (no retry) and keeps Airflow's
retries for the failures that are not the job's verdict: an exit code the job declares retryable (e.g.
"server unreachable"), or the pod being taken away from under the job (eviction, preemption, node loss).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import models as k8s

# Pod status reasons meaning the infrastructure, not the job, ended the pod.
INFRASTRUCTURE_REASONS = frozenset(
    {"Evicted", "Preempting", "Preempted", "Shutdown", "NodeShutdown", "Terminated", "NodeLost",
     "UnexpectedAdmissionError", "OutOfcpu", "OutOfmemory"}
)  # fmt: skip


def container_exit_code(pod: k8s.V1Pod | None, container: str) -> int | None:
    """Exit code of `container` in `pod`, or None when it never terminated (or the pod is unknown)."""
    statuses = (pod.status.container_statuses if pod is not None and pod.status else None) or []
    for status in statuses:
        if status.name == container and status.state and status.state.terminated:
            return int(status.state.terminated.exit_code)
    return None


def is_retryable(pod: k8s.V1Pod | None, container: str, retry_exit_codes: Collection[int]) -> bool:
    """Whether a failed pod's failure can succeed on retry (see the module docstring)."""
    reason = pod.status.reason if pod is not None and pod.status else None
    if reason in INFRASTRUCTURE_REASONS:
        return True
    exit_code = container_exit_code(pod, container)
    if exit_code is None:
        # The job never ran to an end (never scheduled, pod gone): its verdict is unknown, try again.
        return reason != "DeadlineExceeded"
    return exit_code in retry_exit_codes


class PlatformPodOperator(KubernetesPodOperator):
    """KubernetesPodOperator whose failures retry only for `retry_exit_codes` and infrastructure causes.

    Any other non-zero exit code of the base container fails the task without retry
    (AirflowFailException), whatever `retries` says. Works with `deferrable=True` too: both paths end in
    `cleanup`, which is where the pod's final state is known.
    """

    def __init__(self, *, retry_exit_codes: Collection[int] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retry_exit_codes = frozenset(int(code) for code in retry_exit_codes)

    def cleanup(self, pod: k8s.V1Pod, remote_pod: k8s.V1Pod, *args: Any, **kwargs: Any) -> None:
        try:
            super().cleanup(pod, remote_pod, *args, **kwargs)
        except AirflowFailException:
            raise
        except AirflowException as failure:
            if is_retryable(remote_pod, self.base_container_name, self.retry_exit_codes):
                raise
            exit_code = container_exit_code(remote_pod, self.base_container_name)
            raise AirflowFailException(
                f"{failure}\nexit code {exit_code} is a deterministic failure: not retried "
                f"(retryable: exit codes {sorted(self.retry_exit_codes) or 'none'} and pod eviction)"
            ) from failure
