"""The chart as installed by `make up` on the kind cluster: `helm test` passes, every platform pod is
Ready and placed on its pool, the namespaces carry what the chart rendered."""

from __future__ import annotations

import pytest

from tests.chart.rendering import HELM, helm
from tests.facts import AIRFLOW_POOL, NAMESPACE, PLATFORM_NAMESPACES, POOL_LABEL, RELEASE, SERVICES_POOL

pytestmark = pytest.mark.cluster


def test_helm_test_hook_passes() -> None:
    result = helm("test", RELEASE, "--namespace", NAMESPACE, "--timeout", "5m", check=False)
    assert result.returncode == 0, f"{HELM} test failed:\n{result.stdout}\n{result.stderr}"


def test_platform_pods_are_ready_on_their_pools(core) -> None:
    nodes = {node.metadata.name: node.metadata.labels.get(POOL_LABEL) for node in core.list_node().items}
    selector = f"app.kubernetes.io/instance={RELEASE}"
    pods = [
        p for ns in PLATFORM_NAMESPACES for p in core.list_namespaced_pod(ns, label_selector=selector).items
    ]
    # Pods of Jobs (migrate, bootstrap, the housekeeping CronJobs) run to completion: one that is just
    # finishing is not Ready without anything being wrong.
    long_running = [
        p for p in pods
        if p.status.phase not in {"Succeeded"} and "helm-test" not in p.metadata.name
        and not any(owner.kind == "Job" for owner in p.metadata.owner_references or [])
    ]  # fmt: skip
    assert long_running, "no platform pods found: is the release installed (make up)?"
    for pod in long_running:
        ready = {c.type: c.status for c in pod.status.conditions or []}.get("Ready")
        assert ready == "True", f"{pod.metadata.namespace}/{pod.metadata.name} is not Ready"
        assert nodes[pod.spec.node_name] in {AIRFLOW_POOL, SERVICES_POOL}, pod.metadata.name


def test_live_namespaces_enforce_restricted(core) -> None:
    for namespace in PLATFORM_NAMESPACES[1:]:
        labels = core.read_namespace(namespace).metadata.labels
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", namespace
