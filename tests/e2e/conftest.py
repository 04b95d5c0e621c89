"""Fixtures for the end-to-end suite: the platform installed by `make up` on the kind cluster.

The suite drives the platform the way a user does: the Airflow REST API v2 through the official
client, Kubernetes through its Python client, Helm through its CLI.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import airflow_client.client as airflow_client
import pytest
import requests
from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from scripts import config, platform_api
from scripts.common import wait_until
from tests.clickhouse.servers import free_port
from tests.conftest import KIND_RELEASE_FINAL, KIND_RELEASE_SHARED, kind_release_use, relative_to_tests
from tests.facts import JOBS_NAMESPACE, NAMESPACE, POOL_LABEL, TASK_POD_NAMESPACES

from . import release_sharing
from .bundle_repo import BUNDLE, GIT_SECRET, GIT_SERVICE, Api, Repository

TIMINGS_FILE = config.TIMINGS_FILE


@pytest.fixture(scope="session")
def kube() -> k8s.ApiClient:
    k8s_config.load_kube_config(config_file=str(config.KUBECONFIG))
    return k8s.ApiClient()


@pytest.fixture(autouse=True, scope="module")
def kind_release_alone(request: pytest.FixtureRequest, testrun_uid: str) -> Iterator[None]:
    """An exclusive module holds the kind release alone for the whole module, its module-scoped fixtures
    included (an autouse fixture comes first in its scope: test_service_monitor's upgrade is one); the
    final module first waits for every sharer of the run (tests/conftest.py KIND_RELEASE_*,
    release_sharing.py)."""
    relative = relative_to_tests(request.path)
    if kind_release_use(relative) != "exclusive":
        yield
        return
    directory = release_sharing.run_directory(testrun_uid)
    if relative == KIND_RELEASE_FINAL:
        sharers = [
            item.nodeid
            for item in request.session.items
            if relative_to_tests(item.path) in KIND_RELEASE_SHARED
        ]
        release_sharing.wait_for_sharers(directory, sharers)
    with release_sharing.holding_release(directory, exclusive=True, what=relative):
        yield


@pytest.fixture(autouse=True)
def kind_release_shared(request: pytest.FixtureRequest, testrun_uid: str) -> Iterator[None]:
    """A sharer's test holds the kind release shared, then marks itself done for the final module."""
    if kind_release_use(relative_to_tests(request.path)) != "shared":
        yield
        return
    directory = release_sharing.run_directory(testrun_uid)
    try:
        with release_sharing.holding_release(directory, exclusive=False, what=request.node.nodeid):
            yield
    finally:
        release_sharing.mark_done(directory, request.node.nodeid)


@pytest.fixture(scope="session")
def core(kube: k8s.ApiClient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(kube)


@pytest.fixture(scope="session")
def node_pools(core: k8s.CoreV1Api) -> dict[str, str]:
    """Node name -> pool name, read from the pool label of node-pools/pools.yaml."""
    return {
        node.metadata.name: node.metadata.labels[POOL_LABEL]
        for node in core.list_node().items
        if POOL_LABEL in (node.metadata.labels or {})
    }


@pytest.fixture(scope="session")
def airflow_api() -> Iterator[object]:
    platform_api.wait_for_api_server()
    with platform_api.api_client() as api:
        yield api


@contextlib.contextmanager
def port_forward(
    namespace: str, target: str, port: int, ready_path: str, budget: float = 60
) -> Iterator[str]:
    """`kubectl port-forward` to `target` (`service/x`, `pod/x`) port `port`: yields the local base URL
    once GET `ready_path` answers 2xx, and stops the forward on exit.

    The e2e reads in-cluster servers this way because their NetworkPolicies admit only the platform's
    own pods, and a port-forward enters through the kubelet rather than the pod network."""
    local = free_port()
    process = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(config.KUBECONFIG), "-n", namespace, "port-forward",
         target, f"{local}:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=config.tool_env(),
    )  # fmt: skip
    url = f"http://127.0.0.1:{local}"

    def answers() -> bool:
        if process.poll() is not None:
            error = process.stderr.read() if process.stderr else ""
            raise RuntimeError(f"kubectl port-forward to {namespace}/{target} exited: {error}")
        try:
            return requests.get(f"{url}{ready_path}", timeout=5).ok
        except requests.ConnectionError:
            return False

    try:
        wait_until(answers, f"the port-forward to {namespace}/{target}", budget)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def label_selector(labels: dict[str, str]) -> str:
    """The equality-based label selector that matches `labels`."""
    return ",".join(f"{key}={value}" for key, value in labels.items())


def run_labels(dag_id: str, run_id: str) -> dict[str, str]:
    """The labels the KubernetesExecutor and the KubernetesPodOperator give every pod of a DAG run."""
    return {"dag_id": dag_id, "run_id": make_safe_label_value(run_id)}


@dataclass
class PodPlacement:
    namespace: str
    name: str
    node: str
    labels: dict[str, str]
    phase: str


class PodRecorder:
    """Watches task namespaces in a thread and remembers where every pod was scheduled."""

    def __init__(self, core: k8s.CoreV1Api, namespaces: tuple[str, ...] = TASK_POD_NAMESPACES) -> None:
        self._core = core
        self._stop = threading.Event()
        self.placements: dict[tuple[str, str], PodPlacement] = {}
        self._threads = [
            threading.Thread(target=self._watch, args=(namespace,), daemon=True) for namespace in namespaces
        ]

    def _watch(self, namespace: str) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            for event in stream.stream(
                self._core.list_namespaced_pod, namespace=namespace, timeout_seconds=5
            ):
                pod = event["object"]
                if pod.spec.node_name:
                    self.placements[(namespace, pod.metadata.name)] = PodPlacement(
                        namespace, pod.metadata.name, pod.spec.node_name,
                        dict(pod.metadata.labels or {}), pod.status.phase,
                    )  # fmt: skip
                if self._stop.is_set():
                    stream.stop()

    def placements_of_run(self, dag_id: str, run_id: str) -> list[PodPlacement]:
        """The pods of one DAG run. The watch also lists the pods that were there before (finished pods
        of earlier runs the executor has not deleted yet), which are not the run's."""
        labels = run_labels(dag_id, run_id).items()
        return [p for p in self.placements.values() if labels <= p.labels.items()]

    def __enter__(self) -> PodRecorder:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


@dataclass
class SyncRun:
    dag_id: str
    run_id: str
    state: str
    placements: list[PodPlacement]


@pytest.fixture(scope="session")
def sync_run(airflow_api: object, core: k8s.CoreV1Api) -> SyncRun:
    """One clickhouse_db_sync run triggered through the REST API, with every pod placement recorded."""
    dag_id = "clickhouse_db_sync"
    with PodRecorder(core) as recorder:
        run_id = platform_api.trigger_dag(airflow_api, dag_id)
        state = platform_api.wait_for_dag_run(airflow_api, dag_id, run_id)
    return SyncRun(dag_id, run_id, state, recorder.placements_of_run(dag_id, run_id))


def task_log_text(api: object, dag_id: str, run_id: str, task_id: str) -> str:
    """The full log of a task's last try, as the REST API serves it (remote store, worker or both)."""
    task_instances = airflow_client.TaskInstanceApi(api)
    instance = task_instances.get_task_instance(dag_id, run_id, task_id)
    log = task_instances.get_log_without_preload_content(
        dag_id, run_id, task_id, instance.try_number, full_content=True
    )
    return log.data.decode()


def record_timing(section: str, values: dict[str, object]) -> None:
    timings = json.loads(TIMINGS_FILE.read_text()) if TIMINGS_FILE.exists() else {}
    timings[section] = values
    TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
    TIMINGS_FILE.write_text(json.dumps(timings, indent=2, default=str) + "\n")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Prints the timings table (make up phases, task latencies, idle memory) after the e2e run."""
    ran_e2e = any(
        report.nodeid.startswith("tests/e2e/")
        for reports in terminalreporter.stats.values()
        for report in reports
        if hasattr(report, "nodeid")
    )
    if not ran_e2e or not TIMINGS_FILE.exists():
        return
    timings = json.loads(TIMINGS_FILE.read_text())
    terminalreporter.section("platform timings and figures (.cache/timings.json)")
    for section, values in timings.items():
        for key, value in values.items() if isinstance(values, dict) else [("", values)]:
            terminalreporter.write_line(f"{section + '.' + key:<55} {value:>10}")


# --- DAGs delivered through the e2e git bundle (tests/e2e/bundle_repo.py) ---------------------------


@pytest.fixture(scope="module")
def api() -> Api:
    return Api()


@pytest.fixture(scope="module")
def repository(core: k8s.CoreV1Api) -> Iterator[Repository]:
    data = core.read_namespaced_secret(GIT_SECRET, NAMESPACE).data
    user = "writer"  # the test git server's account that may push
    password = base64.b64decode(data["writer-password"]).decode()
    service = core.read_namespaced_service(GIT_SERVICE, NAMESPACE)
    node_port = next(port.node_port for port in service.spec.ports if port.node_port)
    address = platform_api.ui_url().split("//")[1].split(":")[0]
    url = f"http://{user}:{password}@{address}:{node_port}/{BUNDLE}.git"
    with tempfile.TemporaryDirectory(prefix="e2e-bundle-") as workdir:
        yield Repository(url, Path(workdir))


def namespace_gone(core: k8s.CoreV1Api, name: str) -> bool:
    """Whether namespace `name` is gone (not only terminating: a terminating one refuses new objects)."""
    try:
        core.read_namespace(name)
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def registry_pull_secrets(core: k8s.CoreV1Api, namespace: str) -> list[k8s.V1LocalObjectReference]:
    """In registry mode, a pull Secret with the local registry's credential in `namespace` (one the chart
    does not manage, so it has none), as imagePullSecrets for a test's pod there; none otherwise."""
    if not config.registry_mode():
        return []
    from scripts import registry

    secret = k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="e2e-registry-pull"), type="kubernetes.io/dockerconfigjson",
        string_data={".dockerconfigjson": registry.docker_config_json()},
    )  # fmt: skip
    try:
        core.create_namespaced_secret(namespace, secret)
    except ApiException as error:
        if error.status != 409:
            raise
    return [k8s.V1LocalObjectReference(name="e2e-registry-pull")]


FOREIGN_SECRET = "e2e-not-for-jobs"


@pytest.fixture(scope="module")
def foreign_secret(core: k8s.CoreV1Api):
    """A Secret in the jobs namespace that is not usable by jobs (like another team's credentials)."""
    body = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=FOREIGN_SECRET), string_data={"token": "x"})
    try:
        core.create_namespaced_secret(JOBS_NAMESPACE, body)
    except ApiException as error:
        if error.status != 409:
            raise
    yield FOREIGN_SECRET
    core.delete_namespaced_secret(FOREIGN_SECRET, JOBS_NAMESPACE)
