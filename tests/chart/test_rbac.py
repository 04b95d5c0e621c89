"""Least-privilege RBAC: exact rules and bindings per service account, namespace-scoped only."""

from __future__ import annotations

import pytest

from tests.facts import WORKER_NAMESPACE, WORKLOAD_NAMESPACES

from .rendering import NAMESPACE, RELEASE, Manifest, find, of_kind

WORKERS = WORKER_NAMESPACE
LAUNCH = ["create", "get", "list", "watch", "patch", "delete"]


def rules_of(manifests: list[Manifest], service_account: str, sa_namespace: str) -> dict[str, list[dict]]:
    """Namespace -> rules granted to one service account (through RoleBindings; install hooks aside)."""
    granted: dict[str, list[dict]] = {}
    for binding in of_kind(manifests, "RoleBinding"):
        if "helm.sh/hook" in binding["metadata"].get("annotations", {}):
            continue
        subjects = {(s["kind"], s["name"], s["namespace"]) for s in binding["subjects"]}
        if ("ServiceAccount", service_account, sa_namespace) in subjects:
            namespace = binding["metadata"]["namespace"]
            assert binding["roleRef"]["kind"] == "Role"
            role = find(manifests, "Role", binding["roleRef"]["name"], namespace)
            granted.setdefault(namespace, []).extend(role["rules"])
    return granted


def rule(resource: str, verbs: list[str]) -> dict:
    return {"apiGroups": [""], "resources": [resource], "verbs": verbs}


def test_no_cluster_scoped_rbac_outside_the_namespace_hook(scenario_manifests: list[Manifest]) -> None:
    """Only the post-install hook that labels the release namespace is cluster-scoped (see test_hardening)."""
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        for manifest in of_kind(scenario_manifests, kind):
            assert manifest["metadata"]["name"] == f"{NAMESPACE}-{RELEASE}-namespace-hardening"
            assert "helm.sh/hook" in manifest["metadata"]["annotations"]


def test_scheduler_launches_pods_in_worker_namespace_only(manifests: list[Manifest]) -> None:
    assert rules_of(manifests, f"{RELEASE}-scheduler", NAMESPACE) == {WORKERS: [rule("pods", LAUNCH)]}


def test_api_server_reads_worker_pods_and_logs_only(manifests: list[Manifest]) -> None:
    assert rules_of(manifests, f"{RELEASE}-api-server", NAMESPACE) == {
        WORKERS: [rule("pods", ["get", "list"]), rule("pods/log", ["get"])]
    }


def test_worker_launches_job_pods_in_workload_namespaces(manifests: list[Manifest]) -> None:
    expected = [rule("pods", LAUNCH), rule("pods/log", ["get"]), rule("events", ["list", "watch"])]
    assert rules_of(manifests, f"{RELEASE}-worker", WORKERS) == {ns: expected for ns in WORKLOAD_NAMESPACES}


def test_triggerer_only_watches_job_pods_in_workload_namespaces(manifests: list[Manifest]) -> None:
    """Deferrable KubernetesPodOperator triggers watch the pod; they never create, patch or delete it."""
    expected = [
        rule("pods", ["get", "list", "watch"]),
        rule("pods/log", ["get"]),
        rule("events", ["list", "watch"]),
    ]
    assert rules_of(manifests, f"{RELEASE}-triggerer", NAMESPACE) == {
        ns: expected for ns in WORKLOAD_NAMESPACES
    }


@pytest.mark.parametrize("account", [f"{RELEASE}-dag-processor"])
def test_dag_processor_has_no_api_rights_and_no_token(manifests: list[Manifest], account: str) -> None:
    assert rules_of(manifests, account, NAMESPACE) == {}
    assert find(manifests, "ServiceAccount", account, NAMESPACE)["automountServiceAccountToken"] is False


@pytest.mark.parametrize("namespace", WORKLOAD_NAMESPACES)
def test_workload_account_has_no_rights_and_no_token(manifests: list[Manifest], namespace: str) -> None:
    account = find(manifests, "ServiceAccount", "airflow-workload", namespace)
    assert account["automountServiceAccountToken"] is False
    assert rules_of(manifests, "airflow-workload", namespace) == {}


def test_no_wildcards_and_no_secret_access(scenario_manifests: list[Manifest]) -> None:
    for role in of_kind(scenario_manifests, "Role"):
        for granted in role["rules"]:
            assert "*" not in granted["verbs"] + granted["resources"] + granted["apiGroups"]
            assert "secrets" not in granted["resources"], role["metadata"]["name"]


def test_pods_use_their_own_service_accounts(manifests: list[Manifest]) -> None:
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        spec = find(manifests, "Deployment", f"{RELEASE}-{component}")["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == f"{RELEASE}-{component}"
    assert (
        find(manifests, "Deployment", f"{RELEASE}-dag-processor")["spec"]["template"]["spec"][
            "automountServiceAccountToken"
        ]
        is False
    )
