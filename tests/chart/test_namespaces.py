"""Namespaces with Pod Security Admission labels, quotas, limit ranges and NetworkPolicies."""

from __future__ import annotations

import pytest

from tests.facts import (
    CLICKHOUSE_NAMESPACE,
    GPU_JOBS_NAMESPACE,
    JOBS_NAMESPACE,
    TASK_POD_NAMESPACES,
    WORKER_NAMESPACE,
    WORKLOAD_NAMESPACES,
)

from .rendering import NAMESPACE, RELEASE, Manifest, find, of_kind, render

CREATED = TASK_POD_NAMESPACES


@pytest.mark.parametrize("namespace", CREATED)
def test_namespace_enforces_restricted_pod_security(manifests: list[Manifest], namespace: str) -> None:
    labels = find(manifests, "Namespace", namespace)["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_release_namespace_is_not_created_by_the_chart(manifests: list[Manifest]) -> None:
    assert {m["metadata"]["name"] for m in of_kind(manifests, "Namespace")} == set(CREATED)


def test_namespaces_create_false_keeps_the_objects_inside() -> None:
    manifests = render("values.yaml", "--set", "namespaces.create=false")
    assert of_kind(manifests, "Namespace") == []
    assert find(manifests, "ResourceQuota", f"{RELEASE}-quota", JOBS_NAMESPACE)


@pytest.mark.parametrize("namespace", CREATED)
def test_quota_and_limit_range(manifests: list[Manifest], namespace: str) -> None:
    hard = find(manifests, "ResourceQuota", f"{RELEASE}-quota", namespace)["spec"]["hard"]
    assert {"requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "pods"} <= set(hard)
    (limits,) = find(manifests, "LimitRange", f"{RELEASE}-limits", namespace)["spec"]["limits"]
    assert limits["type"] == "Container"
    assert set(limits["default"]) == set(limits["defaultRequest"]) == {"cpu", "memory"}


def test_gpu_namespace_quota_caps_gpus(manifests: list[Manifest]) -> None:
    hard = find(manifests, "ResourceQuota", f"{RELEASE}-quota", GPU_JOBS_NAMESPACE)["spec"]["hard"]
    assert "requests.nvidia.com/gpu" in hard


@pytest.mark.parametrize("namespace", (NAMESPACE, *CREATED))
def test_default_deny_ingress_everywhere(manifests: list[Manifest], namespace: str) -> None:
    policy = find(manifests, "NetworkPolicy", f"{RELEASE}-default-deny-ingress", namespace)
    assert policy["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}


def _policy(manifests: list[Manifest], name: str, namespace: str) -> dict:
    return find(manifests, "NetworkPolicy", f"{RELEASE}-{name}", namespace)["spec"]


def test_workers_reach_execution_api(manifests: list[Manifest]) -> None:
    spec = _policy(manifests, "api-server-ingress", NAMESPACE)
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api-server"
    (ingress,) = spec["ingress"]
    assert ingress["ports"] == [{"port": 8080, "protocol": "TCP"}]
    namespace_peer = ingress["from"][0]["namespaceSelector"]["matchExpressions"][0]
    assert namespace_peer["key"] == "kubernetes.io/metadata.name"
    assert set(namespace_peer["values"]) == {NAMESPACE, WORKER_NAMESPACE}
    # workload namespaces are not among the allowed namespaces
    assert not set(WORKLOAD_NAMESPACES) & set(namespace_peer["values"])


def test_only_airflow_components_reach_postgres(manifests: list[Manifest]) -> None:
    if not any(m["kind"] == "StatefulSet" for m in manifests):  # external database: nothing to allow
        assert not any(
            m["metadata"]["name"].endswith("postgres-ingress") for m in of_kind(manifests, "NetworkPolicy")
        )
        return
    (ingress,) = _policy(manifests, "postgres-ingress", NAMESPACE)["ingress"]
    assert ingress["ports"] == [{"port": 5432, "protocol": "TCP"}]
    (peer,) = ingress["from"]
    assert "namespaceSelector" not in peer  # same namespace only
    components = next(e for e in peer["podSelector"]["matchExpressions"] if e["key"].endswith("component"))
    assert set(components["values"]) == {
        "api-server",
        "scheduler",
        "dag-processor",
        "triggerer",
        "migrate-database",
        "airflow-bootstrap",
    }


def test_job_pods_reach_demo_clickhouse(kind_manifests: list[Manifest]) -> None:
    (ingress,) = _policy(kind_manifests, "clickhouse-ingress", CLICKHOUSE_NAMESPACE)["ingress"]
    assert {p["port"] for p in ingress["ports"]} == {9000, 8123}
    assert ingress["from"] == [{"podSelector": {}}]


def test_kind_node_port_clients_exclude_pod_network(kind_manifests: list[Manifest]) -> None:
    (ingress,) = _policy(kind_manifests, "api-server-ingress", NAMESPACE)["ingress"]
    ip_blocks = [peer["ipBlock"] for peer in ingress["from"] if "ipBlock" in peer]
    assert ip_blocks == [{"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16"]}]
