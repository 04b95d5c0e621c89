"""NetworkPolicies on the live cluster: task pods reach what they need and nothing more."""

from __future__ import annotations

import time
import uuid

import pytest
from kubernetes import client as k8s

from scripts.images import image_tag
from tests.facts import (
    AIRFLOW_POOL,
    CLICKHOUSE_NAMESPACE,
    JOBS_NAMESPACE,
    NAMESPACE,
    POOL_LABEL,
    RELEASE,
    WORKER_NAMESPACE,
    image_pull_secrets,
    image_ref,
)

pytestmark = pytest.mark.cluster

API_SERVER = (f"{RELEASE}-api-server.{NAMESPACE}.svc.cluster.local", 8080)
METADATA_DB = (f"{RELEASE}-postgres.{NAMESPACE}.svc.cluster.local", 5432)
CLICKHOUSE_SOURCE = (f"clickhouse-source.{CLICKHOUSE_NAMESPACE}.svc.cluster.local", 9000)
PROBE_SCRIPT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()\n"
    "    print('connected')\n"
    "except OSError as error:\n"
    "    print('refused', error)\n"
)


def _probe_pod(namespace: str, service_account: str, target: tuple[str, int]) -> k8s.V1Pod:
    restricted = k8s.V1SecurityContext(
        run_as_non_root=True, allow_privilege_escalation=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )  # fmt: skip
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=f"netpol-probe-{uuid.uuid4().hex[:8]}", labels={"e2e": "netpol"}),
        spec=k8s.V1PodSpec(
            restart_policy="Never",
            service_account_name=service_account,
            automount_service_account_token=False,
            tolerations=[
                k8s.V1Toleration(key=POOL_LABEL, operator="Equal", value=AIRFLOW_POOL, effect="NoSchedule")
            ],
            node_selector={POOL_LABEL: AIRFLOW_POOL},
            image_pull_secrets=[k8s.V1LocalObjectReference(name=name) for name in image_pull_secrets()],
            containers=[
                k8s.V1Container(
                    name="probe",
                    image=image_ref("clickhouse-tools", image_tag()),
                    image_pull_policy="IfNotPresent",
                    command=["python", "-c", PROBE_SCRIPT, target[0], str(target[1])],
                    security_context=restricted,
                    resources=k8s.V1ResourceRequirements(
                        requests={"cpu": "50m", "memory": "64Mi"}, limits={"cpu": "200m", "memory": "128Mi"}
                    ),
                )
            ],
        ),
    )


def connects(core: k8s.CoreV1Api, namespace: str, service_account: str, target: tuple[str, int]) -> bool:
    pod = core.create_namespaced_pod(namespace, _probe_pod(namespace, service_account, target))
    name = pod.metadata.name
    try:
        for _ in range(120):
            phase = core.read_namespaced_pod(name, namespace).status.phase
            if phase in {"Succeeded", "Failed"}:
                break
            time.sleep(1)
        # Raw bytes: the client's preloaded str of a pod log is the repr of bytes in this version.
        log = core.read_namespaced_pod_log(name, namespace, _preload_content=False).data.decode()
    finally:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    assert log.startswith(("connected", "refused")), log
    return log.startswith("connected")


def test_workload_pod_cannot_reach_metadata_database(core: k8s.CoreV1Api) -> None:
    assert not connects(core, JOBS_NAMESPACE, "airflow-workload", METADATA_DB)


def test_workload_pod_reaches_clickhouse_in_its_namespace(core: k8s.CoreV1Api) -> None:
    assert connects(core, CLICKHOUSE_NAMESPACE, "airflow-workload", CLICKHOUSE_SOURCE)


def test_worker_pod_reaches_execution_api(core: k8s.CoreV1Api) -> None:
    assert connects(core, WORKER_NAMESPACE, f"{RELEASE}-worker", API_SERVER)


def test_workload_pod_cannot_reach_api_server(core: k8s.CoreV1Api) -> None:
    assert not connects(core, JOBS_NAMESPACE, "airflow-workload", API_SERVER)
