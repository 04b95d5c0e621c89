"""Fixtures for the tests that need the kind cluster (`make test-cluster`, marker `cluster`)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.stream import stream

ROOT = Path(__file__).resolve().parents[2]
POOLS_FILE = ROOT / "node-pools" / "pools.yaml"
CLUSTER_NAME = os.environ.get("CLUSTER_NAME", "airflow-platform")
KUBECONFIG = os.environ.get("KUBECONFIG", str(ROOT / ".cache" / "kubeconfig"))
TOOLS_PATH = f"{ROOT / '.tools/bin'}:{os.environ['PATH']}"


@pytest.fixture(scope="session")
def pools() -> dict:
    return yaml.safe_load(POOLS_FILE.read_text())["pools"]


@pytest.fixture(scope="session")
def core() -> client.CoreV1Api:
    config.load_kube_config(config_file=KUBECONFIG, context=f"kind-{CLUSTER_NAME}")
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
    base = helper_image()
    tag = f"airflow-platform/cluster-test:{uuid.uuid4().hex[:8]}"
    dockerfile = f"FROM {base}\nRUN echo loaded-by-kind > /cluster-test-marker\n"
    subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=dockerfile, text=True, check=True)
    subprocess.run(
        ["kind", "load", "docker-image", tag, "--name", CLUSTER_NAME],
        check=True,
        env={**os.environ, "PATH": TOOLS_PATH},
    )
    yield tag
    subprocess.run(["docker", "rmi", tag], capture_output=True)


def helper_image() -> str:
    """The shell image preloaded in every node (local-path-provisioner's helper)."""
    config.load_kube_config(config_file=KUBECONFIG, context=f"kind-{CLUSTER_NAME}")
    cm = client.CoreV1Api().read_namespaced_config_map("local-path-config", "local-path-storage")
    return yaml.safe_load(cm.data["helperPod.yaml"])["spec"]["containers"][0]["image"]


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
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(1)


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
