"""The production-shaped scenario (issue #13): the chart installed the way a platform team installs it
into its own cluster, with charts/airflow-platform/ci/production-on-kind-values.yaml (the counterpart of
values-production.yaml), and the same assertions as the kind scenario.

- chart from the authenticated OCI registry (`helm install oci://...`), images pulled by the nodes from
  it with the one credential of `images.pullCredentials`: control plane, worker pods and job pods;
- node pools selected by cloud-style node-group labels (node-pools/pools.yaml `kind.providerLabels`);
- an external PostgreSQL in its own namespace, named by a Secret (the chart runs none);
- FAB logins: a Viewer is refused a trigger (403), an Op may trigger; an Ingress with TLS in front.

It runs in its own `make e2e` lane (tests/conftest.py E2E_LANES), beside the kind release's tests: its own
release, namespaces and external database, the nodes and the registry shared.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client as k8s
from kubernetes import utils as k8s_utils
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from scripts import config, platform_api, registry
from scripts.common import run, wait_until
from scripts.images import image_tag
from tests.facts import image_ref

from .conftest import PodPlacement, PodRecorder, SyncRun, port_forward, registry_pull_secrets
from .demo_clickhouse import DemoClickHouse, expected_copy
from .test_sync_dag import EXPECTED_POOL as SYNC_TASK_POOLS

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not config.registry_mode(), reason="the cluster was made without PLATFORM_REGISTRY=1"),
]

VALUES_FILE = config.CHART / "ci" / "production-on-kind-values.yaml"
VALUES = yaml.safe_load(VALUES_FILE.read_text())
RELEASE = "prod"
NAMESPACE = "prod-airflow"
WORKER_NAMESPACE = VALUES["namespaces"]["workers"]["name"]
NAMESPACE_OF_POOL = {pool: ns["name"] for ns in VALUES["namespaces"]["workloads"] for pool in ns["pools"]}
TASK_POD_NAMESPACES = (WORKER_NAMESPACE, *dict.fromkeys(NAMESPACE_OF_POOL.values()))
POOL_LABELS = {name: pool["labels"] for name, pool in VALUES["nodePools"]["definitions"].items()}
INGRESS = VALUES["airflow"]["apiServer"]["ingress"]
DB_NAMESPACE = "e2e-external-db"
DB_SECRET = VALUES["externalDatabase"]["secretName"]
# The images this release runs (no bundled Postgres, no git server): pulled from the registry.
RELEASE_IMAGES = ("airflow", "clickhouse-tools", "clickhouse-server", "test-servers")
SYNC_DAG, POOL_DAG = "clickhouse_db_sync", "node_pool_examples"


# --- external database ------------------------------------------------------------------------------


POSTGRES_MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: postgres}
spec:
  selector: {matchLabels: {app: postgres}}
  template:
    metadata: {labels: {app: postgres}}
    spec:
      securityContext:
        runAsNonRoot: true
        runAsUser: 999
        runAsGroup: 999
        fsGroup: 999
        seccompProfile: {type: RuntimeDefault}
      nodeSelector: NODE_SELECTOR
      imagePullSecrets: [{name: e2e-registry-pull}]  # conftest.registry_pull_secrets
      tolerations: [{key: airflow-platform.io/pool, operator: Exists, effect: NoSchedule}]
      containers:
        - name: postgres
          image: IMAGE
          env:
            - {name: POSTGRES_USER, value: airflow}
            - {name: POSTGRES_DB, value: airflow}
            - {name: POSTGRES_PASSWORD_FILE, value: /etc/postgres-secret/password}
            - {name: PGDATA, value: /var/lib/postgresql/data/pgdata}
          ports: [{name: postgres, containerPort: 5432}]
          readinessProbe:
            exec: {command: [pg_isready, --host, 127.0.0.1]}
            periodSeconds: 3
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
          volumeMounts:
            - {name: data, mountPath: /var/lib/postgresql/data}
            - {name: secret, mountPath: /etc/postgres-secret}
            - {name: run, mountPath: /var/run/postgresql}
            - {name: tmp, mountPath: /tmp}
      volumes:
        - {name: data, emptyDir: {}}
        - {name: run, emptyDir: {}}
        - {name: tmp, emptyDir: {}}
        - {name: secret, secret: {secretName: postgres}}
---
apiVersion: v1
kind: Service
metadata: {name: postgres}
spec:
  selector: {app: postgres}
  ports: [{name: postgres, port: 5432, targetPort: postgres}]
"""


def _postgres_manifests(tag: str) -> list[dict[str, Any]]:
    """The platform's Postgres image as someone else's database: its own namespace, no chart involved
    (pulled from the local registry, as the kind release pulls it, with a pull Secret of its own)."""
    deployment, service = yaml.safe_load_all(POSTGRES_MANIFESTS)
    pod = deployment["spec"]["template"]["spec"]
    pod["nodeSelector"] = POOL_LABELS["general"]
    pod["containers"][0]["image"] = image_ref("postgres", tag)
    return [deployment, service]


def _namespace(core: k8s.CoreV1Api, name: str) -> None:
    try:
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    except ApiException as error:
        if error.status != 409:
            raise


def _secret(core: k8s.CoreV1Api, namespace: str, secret: k8s.V1Secret) -> None:
    try:
        core.create_namespaced_secret(namespace, secret)
    except ApiException as error:
        if error.status != 409:
            raise
        core.replace_namespaced_secret(secret.metadata.name, namespace, secret)


@pytest.fixture(scope="module")
def external_database(kube: k8s.ApiClient, core: k8s.CoreV1Api) -> Iterator[str]:
    """A running external Postgres; its SQLAlchemy URL."""
    password = secrets.token_urlsafe(24)
    _namespace(core, DB_NAMESPACE)
    _secret(core, DB_NAMESPACE, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="postgres"), string_data={"password": password}
    ))  # fmt: skip
    registry_pull_secrets(core, DB_NAMESPACE)
    for manifest in _postgres_manifests(image_tag()):
        k8s_utils.create_from_dict(kube, manifest, namespace=DB_NAMESPACE)
    apps = k8s.AppsV1Api(kube)
    wait_until(
        lambda: apps.read_namespaced_deployment("postgres", DB_NAMESPACE).status.ready_replicas,
        "the external Postgres to be ready", 300,
    )  # fmt: skip
    yield f"postgresql+psycopg2://airflow:{password}@postgres.{DB_NAMESPACE}.svc.cluster.local:5432/airflow"
    core.delete_namespace(DB_NAMESPACE)


# --- install from the registry ----------------------------------------------------------------------


def _self_signed_tls(host: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as workdir:
        key, cert = Path(workdir) / "tls.key", Path(workdir) / "tls.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={host}",
             "-addext", f"subjectAltName=DNS:{host}", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        return {"tls.crt": cert.read_text(), "tls.key": key.read_text()}


@pytest.fixture(scope="module")
def installed(core: k8s.CoreV1Api, external_database: str) -> Iterator[str]:
    """The release installed from oci://; yields the chart reference it came from."""
    registry.up()
    registry.login()
    tag = image_tag()
    registry.push_images(tag, only=[image for image in config.images() if image.name in RELEASE_IMAGES])
    chart = registry.push_chart()
    _namespace(core, NAMESPACE)
    _secret(core, NAMESPACE, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name=DB_SECRET), string_data={"connection": external_database}
    ))  # fmt: skip
    _secret(core, NAMESPACE, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name=INGRESS["tls"]["secretName"]), type="kubernetes.io/tls",
        string_data=_self_signed_tls(INGRESS["hosts"][0]),
    ))  # fmt: skip
    user = registry.credentials()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as credentials:
        # The password in a values file, not on the command line (where `ps` shows it).
        yaml.safe_dump({"images": {"pullCredentials": user}}, credentials)
        credentials.flush()
        run(
            "helm", "upgrade", "--install", RELEASE, chart, "--version", config.chart_metadata()["version"],
            "--namespace", NAMESPACE, "--create-namespace",
            "--ca-file", str(registry.CA_CERT), "--registry-config", str(registry.HELM_REGISTRY_CONFIG),
            "--values", str(VALUES_FILE), "--values", credentials.name,
            "--set", f"images.registry={config.REGISTRY_HOST}", "--set", f"images.tag={tag}",
            "--wait", "--timeout", "20m",
            env=registry.client_env(),
        )  # fmt: skip
    yield chart
    run("helm", "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "5m", check=False)
    core.delete_namespace(NAMESPACE)


@pytest.fixture(scope="module")
def base_url(installed: str, core: k8s.CoreV1Api) -> Iterator[str]:
    """The api-server Service through `kubectl port-forward` (no ingress controller on kind)."""
    service = core.read_namespaced_service(f"{RELEASE}-api-server", NAMESPACE)
    port = next(p.port for p in service.spec.ports if p.name == "api")
    health = "/api/v2/monitor/health"
    with port_forward(NAMESPACE, f"service/{RELEASE}-api-server", port, health, budget=180) as url:
        yield url


# --- FAB users ----------------------------------------------------------------------------------------


def _admin_password(core: k8s.CoreV1Api) -> str:
    secret = core.read_namespaced_secret(f"{RELEASE}-admin", NAMESPACE)
    return base64.b64decode(secret.data["password"]).decode()


def _create_user(core: k8s.CoreV1Api, role: str) -> tuple[str, str]:
    """A FAB user of `role`, made with Airflow's own CLI in the api-server pod."""
    username, password = f"e2e-{role.lower()}", secrets.token_urlsafe(16)
    pod = core.list_namespaced_pod(
        NAMESPACE,
        label_selector=f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=api-server",
    ).items[0]
    output = stream(
        core.connect_get_namespaced_pod_exec, pod.metadata.name, NAMESPACE,
        command=["airflow", "users", "create", "--role", role, "--username", username,
                 f"--password={password}", "--email", f"{username}@example.test",
                 "--firstname", role, "--lastname", "E2E"],
        stderr=True, stdin=False, stdout=True, tty=False,
    )  # fmt: skip
    assert "created" in output.lower() or "already exist" in output.lower(), output[-2000:]
    return username, password


class Session:
    """The REST API as one FAB user (bearer token from the auth manager's /auth/token)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base = base_url
        token = platform_api.access_token(base_url, password, user=username)
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        return requests.request(
            method, f"{self.base}/api/v2{path}", json=body, headers=self.headers, timeout=30
        )

    def unpause_and_trigger(self, dag_id: str) -> requests.Response:
        unpaused = self.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        if not unpaused.ok:
            return unpaused
        return self.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})

    def finished_state(self, dag_id: str, run_id: str) -> str:
        def finished() -> str | None:
            state = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            return state if state in platform_api.FINISHED_STATES else None

        return str(wait_until(finished, f"{dag_id} {run_id} to finish", 1200, 5))


@pytest.fixture(scope="module")
def admin(base_url: str, core: k8s.CoreV1Api) -> Session:
    return Session(base_url, platform_api.ADMIN_USER, _admin_password(core))


def _wait_for_dags(session: Session) -> None:
    def parsed() -> bool:
        dags = session.call("GET", "/dags?limit=100").json().get("dags", [])
        return {SYNC_DAG, POOL_DAG} <= {dag["dag_id"] for dag in dags}

    wait_until(parsed, "the platform DAGs to be parsed", 300, 5)


# --- runs ---------------------------------------------------------------------------------------------


def _run_recorded(core: k8s.CoreV1Api, session: Session, dag_id: str) -> SyncRun:
    """One run of `dag_id` triggered as `session`'s user, with every pod placement recorded."""
    with PodRecorder(core, TASK_POD_NAMESPACES) as recorder:
        response = session.unpause_and_trigger(dag_id)
        assert response.ok, f"{response.status_code} {response.text[:500]}"
        run_id = response.json()["dag_run_id"]
        state = session.finished_state(dag_id, run_id)
    return SyncRun(dag_id, run_id, state, recorder.placements_of_run(dag_id, run_id))


@pytest.fixture(scope="module")
def pool_of_node(core: k8s.CoreV1Api) -> dict[str, str]:
    """Node name -> pool, by the cloud-style labels of the scenario's pool definitions."""
    return {
        node.metadata.name: pool
        for node in core.list_node().items
        for pool, labels in POOL_LABELS.items()
        if labels.items() <= (node.metadata.labels or {}).items()
    }


def _where(placements: list[PodPlacement], pool_of_node: dict[str, str]) -> set[tuple[str, str, str | None]]:
    return {(p.labels["task_id"], p.namespace, pool_of_node.get(p.node)) for p in placements}


def test_the_nodes_carry_the_provider_labels(pool_of_node: dict[str, str]) -> None:
    assert sorted(pool_of_node.values()) == sorted(POOL_LABELS), pool_of_node


def test_installed_from_the_registry_with_one_pull_credential(installed: str, core: k8s.CoreV1Api) -> None:
    assert installed.startswith(f"oci://{config.REGISTRY_HOST}/")
    pods = core.list_namespaced_pod(NAMESPACE).items
    images = {container.image for pod in pods for container in pod.spec.containers}
    assert images and all(image.startswith(f"{config.REGISTRY_HOST}/") for image in images), images
    pull_secrets = {tuple(s.name for s in pod.spec.image_pull_secrets or []) for pod in pods}
    assert pull_secrets == {(f"{RELEASE}-image-pull",)}
    for namespace in (NAMESPACE, *TASK_POD_NAMESPACES):
        core.read_namespaced_secret(f"{RELEASE}-image-pull", namespace)  # in every namespace


def test_the_metadata_database_is_the_external_one(installed: str, core: k8s.CoreV1Api) -> None:
    bundled = core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/component=postgres")
    assert bundled.items == []
    database_pod = core.list_namespaced_pod(DB_NAMESPACE, label_selector="app=postgres").items[0]
    users = stream(
        core.connect_get_namespaced_pod_exec, database_pod.metadata.name, DB_NAMESPACE,
        command=["psql", "--host", "/var/run/postgresql", "--username", "airflow", "--dbname", "airflow",
                 "--tuples-only", "--command", "SELECT count(*) FROM ab_user"],
        stderr=True, stdin=False, stdout=True, tty=False,
    )  # fmt: skip
    assert int(users.strip()) >= 1, users  # FAB's users table, with the admin the migration Job made


def test_ingress_routes_the_host_to_the_api_server(installed: str, kube: k8s.ApiClient) -> None:
    ingress = k8s.NetworkingV1Api(kube).read_namespaced_ingress(f"{RELEASE}-api-server", NAMESPACE)
    (rule,) = ingress.spec.rules
    assert rule.host == INGRESS["hosts"][0]
    backend = rule.http.paths[0].backend.service
    assert (backend.name, backend.port.name) == (f"{RELEASE}-api-server", "api")
    assert ingress.spec.tls[0].secret_name == INGRESS["tls"]["secretName"]
    assert ingress.spec.ingress_class_name == INGRESS["className"]


def test_a_viewer_cannot_trigger_and_an_op_can(
    base_url: str, admin: Session, core: k8s.CoreV1Api, pool_of_node: dict[str, str]
) -> None:
    _wait_for_dags(admin)
    viewer = Session(base_url, *_create_user(core, "Viewer"))
    assert viewer.call("GET", f"/dags/{POOL_DAG}").status_code == 200  # may look
    assert viewer.call("POST", f"/dags/{POOL_DAG}/dagRuns", {"logical_date": None}).status_code == 403
    assert viewer.call("PATCH", f"/dags/{POOL_DAG}", {"is_paused": False}).status_code == 403
    op = Session(base_url, *_create_user(core, "Op"))
    run = _run_recorded(core, op, POOL_DAG)
    assert run.state == "success"
    job_pods = [p for p in run.placements if p.namespace != WORKER_NAMESPACE]
    assert _where(job_pods, pool_of_node) == {
        (f"on_{pool}_pool", NAMESPACE_OF_POOL[pool], pool) for pool in POOL_LABELS
    }


@pytest.fixture(scope="module")
def sync_run(admin: Session, core: k8s.CoreV1Api) -> SyncRun:
    _wait_for_dags(admin)
    return _run_recorded(core, admin, SYNC_DAG)


def test_sync_dag_places_every_pod_and_copies_the_data(
    sync_run: SyncRun, core: k8s.CoreV1Api, pool_of_node: dict[str, str]
) -> None:
    assert sync_run.state == "success"
    workers = [p for p in sync_run.placements if p.namespace == WORKER_NAMESPACE]
    assert {pool_of_node.get(p.node) for p in workers} == {VALUES["nodePools"]["airflow"]}
    job_pods = [p for p in sync_run.placements if p.namespace != WORKER_NAMESPACE]
    assert _where(job_pods, pool_of_node) == {
        (task, NAMESPACE_OF_POOL[pool], pool) for task, pool in SYNC_TASK_POOLS.items()
    }
    demo = DemoClickHouse(core, RELEASE, NAMESPACE, VALUES["namespaces"]["workloads"][0]["name"])
    expected, skipped = expected_copy(demo.snapshot("source"))
    assert skipped
    assert demo.snapshot("destination") == expected


def test_sync_task_log_comes_from_the_object_store(sync_run: SyncRun, admin: Session) -> None:
    """migrate_data's worker and job pods are gone; its log (with the tool's summary) is served."""
    task = f"/dags/{SYNC_DAG}/dagRuns/{sync_run.run_id}/taskInstances/migrate_data"
    try_number = admin.call("GET", task).json()["try_number"]
    response = admin.call("GET", f"{task}/logs/{try_number}?full_content=true")
    assert response.ok, response.text[:500]
    assert "[summary]" in response.text, response.text[-2000:]
