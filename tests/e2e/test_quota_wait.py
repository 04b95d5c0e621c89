"""A full namespace quota makes tasks wait, not fail (issue #13): with the worker namespace's pod quota
at zero the API server refuses every worker pod ("exceeded quota"); the KubernetesExecutor retries the
publication (task_publish_max_retries: -1) and the task runs as soon as the quota has room again."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
import yaml
from kubernetes import client as k8s

from tests.chart.rendering import helm
from tests.facts import NAMESPACE, RELEASE, WORKER_NAMESPACE

from .bundle_repo import HELLO_DAG, REFRESH_BUDGET, Api, Repository, wait_until

pytestmark = pytest.mark.cluster

QUOTA = f"{RELEASE}-quota"
REFUSALS = 3  # publications the API server must refuse before the quota gets room again
# the DAG parsed, the run queued, three publications (the executor retries within a loop), kind under load
REFUSALS_BUDGET_S = 240


def chart_pod_quota() -> str:
    """The worker namespace's pod quota as the release installed it (`helm get manifest`): the value to
    give back, even if an interrupted run of this test left the live quota at zero."""
    manifest = helm("get", "manifest", RELEASE, "--namespace", NAMESPACE).stdout
    quota = next(
        doc
        for doc in yaml.safe_load_all(manifest)
        if doc and doc["kind"] == "ResourceQuota" and doc["metadata"]["namespace"] == WORKER_NAMESPACE
    )
    return str(quota["spec"]["hard"]["pods"])


@pytest.fixture
def full_worker_quota(core: k8s.CoreV1Api) -> Iterator[Callable[[], None]]:
    """Sets the worker namespace's pod quota to zero; yields the function that gives the chart's value
    back (also called at teardown)."""
    original = chart_pod_quota()
    assert original != "0", "the chart's worker pod quota is zero: nothing could ever run"

    def set_pods(value: str) -> None:
        core.patch_namespaced_resource_quota(QUOTA, WORKER_NAMESPACE, {"spec": {"hard": {"pods": value}}})

    set_pods("0")
    try:
        yield lambda: set_pods(original)
    finally:
        set_pods(original)


def refused_publications(core: k8s.CoreV1Api, dag_id: str) -> int:
    """How many times the scheduler was refused a worker pod of `dag_id` for the quota: the highest try
    of the executor's "[Try N of -1] Kube ApiException ... exceeded quota" warnings in its log."""
    tries = [0]
    for pod in core.list_namespaced_pod(
        NAMESPACE, label_selector="app.kubernetes.io/component=scheduler"
    ).items:
        # Raw bytes: with preloading, this client version returns the repr of the log's bytes, one line.
        log = core.read_namespaced_pod_log(
            pod.metadata.name, NAMESPACE, container="scheduler", since_seconds=600, _preload_content=False
        ).data.decode(errors="replace")
        tries += [
            int(match.group(1))
            for line in log.splitlines()
            if f"dag_id='{dag_id}'" in line and "exceeded quota" in line
            if (match := re.search(r"\[Try (\d+) of -1\]", line))
        ]
    return max(tries)


def test_task_waits_for_quota_then_runs(
    api: Api,
    repository: Repository,
    core: k8s.CoreV1Api,
    full_worker_quota: Callable[[], None],
) -> None:
    dag_id = f"e2e_quota_{int(time.time())}"
    repository.push({f"{dag_id}.py": HELLO_DAG.format(dag_id=dag_id)}, f"add {dag_id}")
    wait_until(lambda: api.exists(dag_id), f"{dag_id} parsed from git", REFRESH_BUDGET)
    run_id = api.trigger(dag_id)
    wait_until(
        lambda: refused_publications(core, dag_id) >= REFUSALS,
        f"{REFUSALS} worker pod publications of {dag_id} refused for the quota",
        REFUSALS_BUDGET_S,
    )
    assert api.run(dag_id, run_id)["state"] in {"queued", "running"}
    assert api.task_state(dag_id, run_id, "hello") not in {"failed", "upstream_failed", "success"}
    assert core.list_namespaced_pod(WORKER_NAMESPACE, label_selector=f"dag_id={dag_id}").items == []

    full_worker_quota()  # room again: the retried publication now succeeds
    run = api.finished(dag_id, run_id)
    assert run["state"] == "success"
    assert api.xcom(dag_id, run_id, "hello") == "hello from git"
