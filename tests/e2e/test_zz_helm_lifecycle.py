"""Helm lifecycle on the live cluster (runs last: it ends by uninstalling the release).

`helm upgrade` with a changed value keeps every generated secret; `helm uninstall` removes everything
the chart created, except what the documented keep policy names.
"""

from __future__ import annotations

import subprocess

import pytest
from kubernetes import client as k8s

from scripts import platform_api
from scripts.images import image_tag
from tests.facts import PLATFORM_NAMESPACES

from .conftest import SyncRun, task_log_text

pytestmark = pytest.mark.cluster

SELECTOR = f"app.kubernetes.io/instance={platform_api.RELEASE}"
NAMESPACES = PLATFORM_NAMESPACES


def _generated_secrets(core: k8s.CoreV1Api) -> dict[str, dict[str, str]]:
    secrets = core.list_namespaced_secret(platform_api.NAMESPACE, label_selector=SELECTOR).items
    return {secret.metadata.name: dict(secret.data or {}) for secret in secrets}


def test_upgrade_keeps_generated_secrets(core: k8s.CoreV1Api) -> None:
    before = _generated_secrets(core)
    assert platform_api.ADMIN_SECRET in before
    platform_api.helm_upgrade_install(image_tag(), ["--set", "airflow.config.core.parallelism=48"])
    assert _generated_secrets(core) == before
    assert platform_api.admin_password()  # still readable, and the same (compared above)


def test_finished_task_log_readable_after_upgrade(sync_run: SyncRun) -> None:
    """The upgrade above replaced every Airflow pod; the remote log store still serves the old run."""
    with platform_api.api_client() as api:
        text = task_log_text(api, sync_run.dag_id, sync_run.run_id, "migrate_data")
    assert "[summary]" in text, text[-2000:]


def _leftovers(kube: k8s.ApiClient) -> list[str]:
    core, apps, batch = k8s.CoreV1Api(kube), k8s.AppsV1Api(kube), k8s.BatchV1Api(kube)
    rbac, net = k8s.RbacAuthorizationV1Api(kube), k8s.NetworkingV1Api(kube)
    listers = {
        "pod": core.list_pod_for_all_namespaces, "service": core.list_service_for_all_namespaces,
        "configmap": core.list_config_map_for_all_namespaces, "secret": core.list_secret_for_all_namespaces,
        "serviceaccount": core.list_service_account_for_all_namespaces,
        "deployment": apps.list_deployment_for_all_namespaces,
        "statefulset": apps.list_stateful_set_for_all_namespaces, "job": batch.list_job_for_all_namespaces,
        "role": rbac.list_role_for_all_namespaces, "rolebinding": rbac.list_role_binding_for_all_namespaces,
        "networkpolicy": net.list_network_policy_for_all_namespaces,
        "resourcequota": core.list_resource_quota_for_all_namespaces,
        "limitrange": core.list_limit_range_for_all_namespaces,
    }  # fmt: skip
    return [
        f"{kind} {item.metadata.namespace}/{item.metadata.name}"
        for kind, lister in listers.items()
        for item in lister(label_selector=SELECTOR).items
        if item.metadata.deletion_timestamp is None
    ]


def test_uninstall_removes_everything(kube: k8s.ApiClient) -> None:
    subprocess.run(
        [
            "helm",
            "uninstall",
            platform_api.RELEASE,
            "--namespace",
            platform_api.NAMESPACE,
            "--wait",
            "--cascade",
            "foreground",
        ],
        check=True,
    )
    assert _leftovers(kube) == []
