"""RBAC matrix on the live cluster, asked of the API server itself with SubjectAccessReviews:
what each service account must be able to do, and what it must not."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from tests.facts import GPU_JOBS_NAMESPACE, JOBS_NAMESPACE, NAMESPACE, RELEASE, WORKER_NAMESPACE

pytestmark = pytest.mark.cluster

AIRFLOW = NAMESPACE
WORKERS = WORKER_NAMESPACE
JOBS = JOBS_NAMESPACE
GPU_JOBS = GPU_JOBS_NAMESPACE
POD_LAUNCH_VERBS = ("create", "get", "list", "watch", "patch", "delete")


def account(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


SCHEDULER = account(AIRFLOW, f"{RELEASE}-scheduler")
API_SERVER = account(AIRFLOW, f"{RELEASE}-api-server")
TRIGGERER = account(AIRFLOW, f"{RELEASE}-triggerer")
WORKER = account(WORKERS, f"{RELEASE}-worker")
WORKLOAD = account(JOBS, "airflow-workload")

# (user, verb, resource, subresource, namespace)
ALLOWED = [
    *[(SCHEDULER, verb, "pods", "", WORKERS) for verb in POD_LAUNCH_VERBS],
    (API_SERVER, "get", "pods", "", WORKERS),
    (API_SERVER, "list", "pods", "", WORKERS),
    (API_SERVER, "get", "pods", "log", WORKERS),
    *[(WORKER, verb, "pods", "", ns) for ns in (JOBS, GPU_JOBS) for verb in POD_LAUNCH_VERBS],
    *[(WORKER, "get", "pods", "log", ns) for ns in (JOBS, GPU_JOBS)],
    *[(WORKER, verb, "events", "", ns) for ns in (JOBS, GPU_JOBS) for verb in ("list", "watch")],
    *[(TRIGGERER, verb, "pods", "", ns) for ns in (JOBS, GPU_JOBS) for verb in ("get", "list", "watch")],
    *[(TRIGGERER, "get", "pods", "log", ns) for ns in (JOBS, GPU_JOBS)],
]

DENIED = [
    (WORKER, "create", "pods", "", AIRFLOW),
    (WORKER, "create", "pods", "", WORKERS),
    (WORKER, "get", "secrets", "", AIRFLOW),
    (WORKER, "get", "secrets", "", JOBS),
    (WORKER, "create", "pods", "", "default"),
    (SCHEDULER, "create", "pods", "", JOBS),
    (SCHEDULER, "create", "pods", "", AIRFLOW),
    (SCHEDULER, "list", "secrets", "", WORKERS),
    (SCHEDULER, "create", "pods", "", "kube-system"),
    (API_SERVER, "create", "pods", "", WORKERS),
    (API_SERVER, "delete", "pods", "", WORKERS),
    (TRIGGERER, "create", "pods", "", AIRFLOW),
    *[(TRIGGERER, verb, "pods", "", ns) for ns in (JOBS, GPU_JOBS) for verb in ("create", "patch", "delete")],
    (WORKLOAD, "get", "pods", "", JOBS),
    (WORKLOAD, "list", "secrets", "", JOBS),
    (WORKLOAD, "create", "pods", "", JOBS),
    (WORKLOAD, "list", "configmaps", "", JOBS),
    *[(user, "list", "nodes", "", "") for user in (SCHEDULER, API_SERVER, WORKER, TRIGGERER, WORKLOAD)],
]


def can(kube: k8s.ApiClient, user: str, verb: str, resource: str, subresource: str, namespace: str) -> bool:
    review = k8s.V1SubjectAccessReview(
        spec=k8s.V1SubjectAccessReviewSpec(
            user=user,
            groups=["system:serviceaccounts", f"system:serviceaccounts:{user.split(':')[2]}"],
            resource_attributes=k8s.V1ResourceAttributes(
                verb=verb, resource=resource, subresource=subresource or None, namespace=namespace or None
            ),
        )
    )
    return bool(k8s.AuthorizationV1Api(kube).create_subject_access_review(review).status.allowed)


@pytest.mark.parametrize(("user", "verb", "resource", "subresource", "namespace"), ALLOWED)
def test_allowed(kube: k8s.ApiClient, user: str, verb: str, resource: str, subresource: str, namespace: str):
    assert can(kube, user, verb, resource, subresource, namespace)


@pytest.mark.parametrize(("user", "verb", "resource", "subresource", "namespace"), DENIED)
def test_denied(kube: k8s.ApiClient, user: str, verb: str, resource: str, subresource: str, namespace: str):
    assert not can(kube, user, verb, resource, subresource, namespace)


def test_workload_service_account_has_no_token(kube: k8s.ApiClient) -> None:
    for namespace in (JOBS, GPU_JOBS):
        service_account = k8s.CoreV1Api(kube).read_namespaced_service_account("airflow-workload", namespace)
        assert service_account.automount_service_account_token is False


def test_chart_creates_no_cluster_role(kube: k8s.ApiClient) -> None:
    rbac = k8s.RbacAuthorizationV1Api(kube)
    selector = f"app.kubernetes.io/instance={RELEASE}"
    assert rbac.list_cluster_role(label_selector=selector).items == []
    assert rbac.list_cluster_role_binding(label_selector=selector).items == []
