"""The installed release is up: every workload of the chart runs (checked with pytest-helm-charts)."""

from __future__ import annotations

import pykube
import pytest
from pytest_helm_charts.clusters import Cluster
from pytest_helm_charts.k8s.deployment import wait_for_deployments_to_run
from pytest_helm_charts.k8s.stateful_set import wait_for_stateful_sets_to_run

from tests.facts import CLICKHOUSE_NAMESPACE, NAMESPACE, RELEASE

pytestmark = pytest.mark.cluster

AIRFLOW_DEPLOYMENTS = [
    f"{RELEASE}-{name}" for name in ("api-server", "scheduler", "dag-processor", "triggerer")
]


def test_airflow_components_run(kube_cluster: Cluster) -> None:
    deployments = wait_for_deployments_to_run(kube_cluster.kube_client, AIRFLOW_DEPLOYMENTS, NAMESPACE, 300)
    assert sorted(d.name for d in deployments) == sorted(AIRFLOW_DEPLOYMENTS)


def test_bundled_postgres_runs(kube_cluster: Cluster) -> None:
    wait_for_stateful_sets_to_run(kube_cluster.kube_client, [f"{RELEASE}-postgres"], NAMESPACE, 300)


def test_demo_clickhouse_pair_runs_and_is_loaded(kube_cluster: Cluster) -> None:
    client = kube_cluster.kube_client
    wait_for_deployments_to_run(
        client, ["clickhouse-source", "clickhouse-destination"], CLICKHOUSE_NAMESPACE, 300
    )
    # The loader Job's name carries the Helm revision that created it. (pytest-helm-charts'
    # wait_for_jobs_to_complete reads only the first Job condition, which is SuccessCriteriaMet since
    # Kubernetes 1.31, so completion is checked here.)
    loaders = [
        job
        for job in pykube.Job.objects(client).filter(namespace=CLICKHOUSE_NAMESPACE)
        if job.name.startswith("clickhouse-demo-data-")
    ]
    assert loaders, "the demo data loader Job is missing"
    for job in loaders:
        conditions = {c["type"]: c["status"] for c in job.obj.get("status", {}).get("conditions", [])}
        assert conditions.get("Complete") == "True", f"{job.name}: {conditions}"
