"""Hardening on the live kind cluster (issue #14): what the API server and the pod network enforce.

- admission: pods the platform's launcher identities create in a workload namespace must run as
  airflow-workload, reference only the namespace's job Secrets and use no hostPath/host network/
  privileged container (server-side dry runs impersonating the worker account, and a real launcher
  pod whose log carries the admission message);
- egress: a job pod reaches neither 169.254.169.254, the Kubernetes API nor Postgres, while a
  launcher (worker namespace) reaches the Kubernetes API;
- RBAC: the triggerer may watch job pods but not create, patch or delete them;
- the default ServiceAccount of every chart-created namespace mounts no token.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.facts import JOBS_NAMESPACE, RELEASE, WORKER_NAMESPACE, WORKLOAD_NAMESPACES

from .test_network_policy import _probe_pod, connects
from .test_rbac import TRIGGERER, WORKER, can

pytestmark = pytest.mark.cluster

JOBS = JOBS_NAMESPACE
METADATA_ADDRESS = ("169.254.169.254", 80)
KUBERNETES_API = ("kubernetes.default.svc.cluster.local", 443)
POSTGRES = (f"{RELEASE}-postgres.airflow.svc.cluster.local", 5432)


@pytest.fixture(scope="module")
def as_worker(kube: k8s.ApiClient) -> k8s.CoreV1Api:
    """The CoreV1Api as the executor worker account (the identity KubernetesPodOperator runs as)."""
    impersonated = k8s.ApiClient(kube.configuration)
    impersonated.set_default_header("Impersonate-User", WORKER)
    impersonated.set_default_header("Impersonate-Group", "system:serviceaccounts")
    return k8s.CoreV1Api(impersonated)


def _job_pod(**changes) -> k8s.V1Pod:
    pod = _probe_pod(JOBS, "airflow-workload", ("localhost", 1))
    for field, value in changes.items():
        setattr(pod.spec, field, value)
    return pod


def _secret_env(name: str) -> list[k8s.V1EnvVar]:
    return [
        k8s.V1EnvVar(
            name="TOKEN",
            value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name=name, key="token")),
        )
    ]


def _refusal(api: k8s.CoreV1Api, pod: k8s.V1Pod) -> str:
    """The admission message of a server-side dry run that must be refused."""
    with pytest.raises(ApiException) as refused:
        api.create_namespaced_pod(JOBS, pod, dry_run="All")
    assert refused.value.status in (403, 422), refused.value.body
    return refused.value.body


def test_launcher_may_create_a_compliant_job_pod(as_worker: k8s.CoreV1Api) -> None:
    pod = _job_pod()
    pod.spec.containers[0].env = _secret_env("clickhouse-credentials")
    as_worker.create_namespaced_pod(JOBS, pod, dry_run="All")


def test_job_pod_with_a_foreign_secret_in_env_is_refused(
    as_worker: k8s.CoreV1Api, foreign_secret: str
) -> None:
    pod = _job_pod()
    pod.spec.containers[0].env = _secret_env(foreign_secret)
    message = _refusal(as_worker, pod)
    assert "Secrets usable by jobs" in message and foreign_secret in message


def test_job_pod_mounting_a_foreign_secret_is_refused(as_worker: k8s.CoreV1Api, foreign_secret: str) -> None:
    pod = _job_pod(
        volumes=[k8s.V1Volume(name="s", secret=k8s.V1SecretVolumeSource(secret_name=foreign_secret))]
    )
    assert "Secrets usable by jobs" in _refusal(as_worker, pod)


def test_job_pod_with_foreign_env_from_is_refused(as_worker: k8s.CoreV1Api, foreign_secret: str) -> None:
    pod = _job_pod()
    pod.spec.containers[0].env_from = [
        k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=foreign_secret))
    ]
    assert "Secrets usable by jobs" in _refusal(as_worker, pod)


@pytest.fixture
def existing_account(core: k8s.CoreV1Api, request: pytest.FixtureRequest) -> str:
    """A ServiceAccount that exists in the jobs namespace (one someone created there, or that a team
    bound rights to). A missing account would be refused earlier, by the ServiceAccount admission
    plugin, which would prove nothing about the policy."""
    name = request.param
    body = k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=name, labels={"e2e": "rogue-account"}))
    created = False
    try:
        core.create_namespaced_service_account(JOBS, body)
        created = True
    except ApiException as error:
        if error.status != 409:
            raise
    yield name
    if created:
        core.delete_namespaced_service_account(name, JOBS)


@pytest.mark.parametrize("existing_account", ["default", f"{RELEASE}-worker", "clickhouse"], indirect=True)
def test_job_pod_as_another_service_account_is_refused(
    as_worker: k8s.CoreV1Api, existing_account: str
) -> None:
    message = _refusal(as_worker, _job_pod(service_account_name=existing_account))
    assert "must run as the ServiceAccount airflow-workload" in message and existing_account in message


def test_job_pod_with_host_path_is_refused(as_worker: k8s.CoreV1Api) -> None:
    volume = k8s.V1Volume(name="root", host_path=k8s.V1HostPathVolumeSource(path="/"))
    assert "hostPath" in _refusal(as_worker, _job_pod(volumes=[volume]))


def test_job_pod_on_host_network_is_refused(as_worker: k8s.CoreV1Api) -> None:
    assert "host" in _refusal(as_worker, _job_pod(host_network=True))


def test_admission_message_reaches_the_launchers_log(core: k8s.CoreV1Api, foreign_secret: str) -> None:
    """A real launcher pod (worker account, in-cluster) asks for a job pod with a foreign Secret. The job
    pod is otherwise compliant (Pod Security `restricted` included), so the refusal is the policy's."""
    job = _job_pod()
    job.metadata = k8s.V1ObjectMeta(generate_name="e2e-foreign-")
    job.spec.containers[0].env = _secret_env(foreign_secret)
    pod = k8s.ApiClient().sanitize_for_serialization(job)
    script = (
        "import json\n"
        "from kubernetes import client, config\n"
        "config.load_incluster_config()\n"
        f"pod = json.loads({json.dumps(json.dumps(pod))})\n"
        "try:\n"
        f"    client.CoreV1Api().create_namespaced_pod('{JOBS}', pod, dry_run='All')\n"
        "    print('ADMITTED')\n"
        "except client.exceptions.ApiException as error:\n"
        "    print('REFUSED', error.status, error.body)\n"
    )
    launcher = _probe_pod(WORKER_NAMESPACE, f"{RELEASE}-worker", ("localhost", 1))
    launcher.metadata.name = f"e2e-launcher-{uuid.uuid4().hex[:8]}"
    launcher.spec.automount_service_account_token = True
    container = launcher.spec.containers[0]
    container.image = container.image.replace("clickhouse-tools", "airflow")
    container.command = ["python", "-c", script]
    container.resources = k8s.V1ResourceRequirements(
        requests={"cpu": "50m", "memory": "128Mi"}, limits={"cpu": "500m", "memory": "512Mi"}
    )
    core.create_namespaced_pod(WORKER_NAMESPACE, launcher)
    name = launcher.metadata.name
    try:
        for _ in range(180):
            if core.read_namespaced_pod(name, WORKER_NAMESPACE).status.phase in {"Succeeded", "Failed"}:
                break
            time.sleep(1)
        log = core.read_namespaced_pod_log(name, WORKER_NAMESPACE, _preload_content=False).data.decode()
    finally:
        core.delete_namespaced_pod(name, WORKER_NAMESPACE, grace_period_seconds=0)
    assert log.startswith("REFUSED"), log
    assert "Secrets usable by jobs" in log and foreign_secret in log


@pytest.mark.parametrize(
    "target",
    [METADATA_ADDRESS, KUBERNETES_API, POSTGRES],
    ids=["metadata-address", "kubernetes-api", "postgres"],
)
def test_job_pod_cannot_reach(core: k8s.CoreV1Api, target: tuple[str, int]) -> None:
    assert not connects(core, JOBS, "airflow-workload", target)


def test_launcher_namespace_reaches_the_kubernetes_api(core: k8s.CoreV1Api) -> None:
    """The contrast of test_job_pod_cannot_reach: the address is reachable where policy allows it."""
    assert connects(core, WORKER_NAMESPACE, f"{RELEASE}-worker", KUBERNETES_API)


@pytest.mark.parametrize("namespace", WORKLOAD_NAMESPACES)
def test_triggerer_auth_can_i_matrix(kube: k8s.ApiClient, namespace: str) -> None:
    verbs = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
    allowed = {verb: can(kube, TRIGGERER, verb, "pods", "", namespace) for verb in verbs}
    assert allowed == {
        "get": True, "list": True, "watch": True,
        "create": False, "update": False, "patch": False, "delete": False, "deletecollection": False,
    }  # fmt: skip
    assert can(kube, TRIGGERER, "get", "pods", "log", namespace)
    assert not can(kube, TRIGGERER, "create", "pods", "exec", namespace)


@pytest.mark.parametrize("namespace", (WORKER_NAMESPACE, *WORKLOAD_NAMESPACES))
def test_default_service_account_mounts_no_token(core: k8s.CoreV1Api, namespace: str) -> None:
    assert core.read_namespaced_service_account("default", namespace).automount_service_account_token is False


def test_release_namespace_enforces_pod_security(core: k8s.CoreV1Api) -> None:
    labels = core.read_namespace("airflow").metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
