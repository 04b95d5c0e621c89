"""Fixtures for the tests that need the kind cluster (`make test-cluster`, marker `cluster`)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client, config
from kubernetes.stream import stream

from scripts import cluster
from scripts import config as platform_config
from scripts.common import wait_until
from tests.facts import POOLS


@pytest.fixture(scope="session")
def pools() -> dict:
    return POOLS["pools"]


@pytest.fixture(scope="session")
def core() -> client.CoreV1Api:
    config.load_kube_config(config_file=str(platform_config.KUBECONFIG), context=platform_config.KUBE_CONTEXT)
    return client.CoreV1Api()


@pytest.fixture(scope="session")
def nodes_by_pool(core: client.CoreV1Api, pools: dict) -> dict[str, client.V1Node]:
    nodes = core.list_node().items
    return {
        name: node
        for name, pool in pools.items()
        for node in nodes
        if pool["labels"].items() <= (node.metadata.labels or {}).items()
    }


@pytest.fixture(scope="session")
def test_image() -> str:
    """A locally built image (a marker file on the shell image every node has), `kind load`ed."""
    base = cluster.helper_image()
    tag = f"airflow-platform/cluster-test:{uuid.uuid4().hex[:8]}"
    dockerfile = f"FROM {base}\nRUN echo loaded-by-kind > /cluster-test-marker\n"
    subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=dockerfile, text=True, check=True)
    subprocess.run(
        ["kind", "load", "docker-image", tag, "--name", platform_config.CLUSTER_NAME],
        check=True,
        env=platform_config.tool_env(),
    )
    yield tag
    subprocess.run(["docker", "rmi", tag], capture_output=True)


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    name = f"cluster-test-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name, grace_period_seconds=0)


def tolerations_for(pool: dict) -> list[dict]:
    return [{"operator": "Equal", **taint} for taint in pool.get("taints", [])]


def affinity_for(pool: dict) -> dict:
    expressions = [{"key": k, "operator": "In", "values": [v]} for k, v in pool["labels"].items()]
    terms = [{"matchExpressions": expressions}]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


def pod_manifest(name: str, image: str, command: list[str], **spec: object) -> dict:
    labels = spec.pop("labels", {"app": name})
    container = {"name": "main", "image": image, "imagePullPolicy": "IfNotPresent", "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [container],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            **spec,
        },
    }


def wait_for(check: Callable[[], object], what: str, timeout_s: float = 120) -> object:
    return wait_until(check, what, timeout_s, interval_s=1)


def wait_phase(core: client.CoreV1Api, namespace: str, name: str, phases: set[str]) -> client.V1Pod:
    def current() -> client.V1Pod | None:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in phases else None

    return wait_for(current, f"pod {namespace}/{name} in {phases}")


def exec_in(core: client.CoreV1Api, namespace: str, pod: str, command: list[str]) -> tuple[int, str]:
    """Runs command in the pod; returns (exit code, combined output)."""
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        command=command,
        stderr=True,
        stdout=True,
        stdin=False,
        tty=False,
        _preload_content=False,
    )
    resp.run_forever(timeout=60)
    output = resp.read_stdout() + resp.read_stderr()
    code = resp.returncode
    resp.close()
    return code, output
