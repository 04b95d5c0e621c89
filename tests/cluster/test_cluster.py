"""The kind cluster really has the node pools, storage, DNS, image loading and NetworkPolicy."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.utils import create_from_dict

from scripts import cluster
from tests.cluster.conftest import (
    affinity_for,
    exec_in,
    pod_manifest,
    tolerations_for,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.cluster

SLEEP = ["sleep", "3600"]
# Every pool taint tolerated: only resources or affinity decide where such a pod lands.
TOLERATE_ALL = [{"operator": "Exists", "effect": "NoSchedule"}]


def pod_log(core: client.CoreV1Api, namespace: str, name: str) -> str:
    # the raw response: this client version returns the repr of bytes when it decodes the log itself
    response = core.read_namespaced_pod_log(name, namespace, _preload_content=False)
    return response.data.decode().strip()


def create(core: client.CoreV1Api, namespace: str, manifest: dict) -> None:
    create_from_dict(core.api_client, manifest, namespace=namespace)


def test_each_pool_has_one_node_with_exactly_its_labels_and_taints(core, pools, nodes_by_pool):
    nodes = core.list_node().items
    assert len(nodes) == 1 + len(pools), "one control plane plus one worker per pool"
    for name, pool in pools.items():
        matching = [n for n in nodes if pool["labels"].items() <= (n.metadata.labels or {}).items()]
        assert len(matching) == 1, f"pool {name}: nodes {[n.metadata.name for n in matching]}"
        node = matching[0]
        platform_labels = {
            k: v
            for k, v in node.metadata.labels.items()
            if not k.endswith("kubernetes.io/hostname")
            and not k.startswith(("kubernetes.io/", "beta.kubernetes.io/", "node-role."))
        }
        # the pool's labels plus the cloud-style labels the kind config adds (scripts/cluster.py)
        assert platform_labels == cluster.worker_node(pool)["labels"]
        taints = {(t.key, t.value, t.effect) for t in node.spec.taints or []}
        assert taints == {(t["key"], t["value"], t["effect"]) for t in pool["taints"]}


@pytest.mark.parametrize("pool_name", ["general", "gpu", "ssd"])
def test_pod_with_pool_tolerations_and_affinity_runs_on_that_pool(
    core, pools, nodes_by_pool, namespace, test_image, pool_name
):
    pool = pools[pool_name]
    manifest = pod_manifest(
        "placed", test_image, ["true"], tolerations=tolerations_for(pool), affinity=affinity_for(pool)
    )
    create(core, namespace, manifest)
    pod = wait_phase(core, namespace, "placed", {"Succeeded"})
    assert pod.spec.node_name == nodes_by_pool[pool_name].metadata.name


def test_pod_without_tolerations_never_lands_on_a_tainted_pool(core, namespace, test_image):
    create(core, namespace, pod_manifest("untolerated", test_image, SLEEP))

    def unschedulable() -> bool:
        pod = core.read_namespaced_pod("untolerated", namespace)
        conditions = {c.type: c for c in pod.status.conditions or []}
        scheduled = conditions.get("PodScheduled")
        return scheduled is not None and scheduled.status == "False" and scheduled.reason == "Unschedulable"

    wait_for(unschedulable, "the scheduler to reject the pod")
    pod = core.read_namespaced_pod("untolerated", namespace)
    assert pod.spec.node_name is None
    assert "untolerated taint" in next(c.message for c in pod.status.conditions if c.type == "PodScheduled")


def test_pod_requesting_a_gpu_lands_on_the_gpu_node(core, nodes_by_pool, namespace, test_image):
    gpu = {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
    manifest = pod_manifest(
        "gpu", test_image, ["true"], tolerations=TOLERATE_ALL, container={"resources": gpu}
    )
    create(core, namespace, manifest)
    pod = wait_phase(core, namespace, "gpu", {"Succeeded"})
    assert pod.spec.node_name == nodes_by_pool["gpu"].metadata.name


def test_pvc_binds_and_a_pod_writes_to_it(core, pools, namespace, test_image):
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}},
    }
    create(core, namespace, claim)
    general = pools["general"]
    writer = pod_manifest(
        "writer",
        test_image,
        ["sh", "-c", "echo persisted > /data/file && cat /data/file"],
        tolerations=tolerations_for(general),
        affinity=affinity_for(general),
        container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    )
    create(core, namespace, writer)
    wait_phase(core, namespace, "writer", {"Succeeded"})
    assert pod_log(core, namespace, "writer") == "persisted"
    pvc = core.read_namespaced_persistent_volume_claim("data", namespace)
    assert pvc.status.phase == "Bound"
    assert pvc.spec.storage_class_name == "standard"


def serve(core, namespace: str, name: str, pool: dict, image: str) -> str:
    """A pod answering 'hello from <name>' on TCP 8080; returns its IP."""
    manifest = pod_manifest(
        name,
        image,
        ["socat", "TCP-LISTEN:8080,fork,reuseaddr", f"SYSTEM:echo hello from {name}"],
        labels={"app": name},
        tolerations=tolerations_for(pool),
        affinity=affinity_for(pool),
        container={"ports": [{"containerPort": 8080, "name": "hello"}]},
    )
    create(core, namespace, manifest)
    return wait_phase(core, namespace, name, {"Running"}).status.pod_ip


def client_pod(core, namespace: str, name: str, pool: dict, image: str, labels: dict | None = None) -> None:
    manifest = pod_manifest(
        name,
        image,
        SLEEP,
        labels=labels or {"app": name},
        tolerations=tolerations_for(pool),
        affinity=affinity_for(pool),
    )
    create(core, namespace, manifest)
    wait_phase(core, namespace, name, {"Running"})


def fetch(core, namespace: str, pod: str, host: str, port: int = 8080) -> str | None:
    """What the server at host:port says to pod, or None when the connection fails."""
    command = ["timeout", "4", "bash", "-c", f"cat < /dev/tcp/{host}/{port}"]
    code, output = exec_in(core, namespace, pod, command)
    return output.strip() if code == 0 else None


def test_service_name_resolves_and_answers_from_a_pod(core, pools, namespace, test_image):
    serve(core, namespace, "server", pools["ssd"], test_image)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "hello"},
        "spec": {"selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    create(core, namespace, service)
    client_pod(core, namespace, "client", pools["general"], test_image)
    fqdn = f"hello.{namespace}.svc.cluster.local"
    code, output = exec_in(core, namespace, "client", ["getent", "hosts", fqdn])
    assert code == 0, output
    cluster_ip = core.read_namespaced_service("hello", namespace).spec.cluster_ip
    assert output.split()[0] == cluster_ip
    # by its short name, through the search path and the service's cluster IP
    answer = wait_for(lambda: fetch(core, namespace, "client", "hello", port=80), "the service to answer")
    assert answer.strip() == "hello from server"


def test_locally_built_image_loaded_with_kind_runs(core, pools, namespace, test_image):
    general = pools["general"]
    manifest = pod_manifest(
        "loaded",
        test_image,
        ["cat", "/cluster-test-marker"],
        tolerations=tolerations_for(general),
        affinity=affinity_for(general),
        container={"imagePullPolicy": "Never"},
    )
    create(core, namespace, manifest)
    wait_phase(core, namespace, "loaded", {"Succeeded"})
    assert pod_log(core, namespace, "loaded") == "loaded-by-kind"


def network_policy(name: str, ingress: list[dict]) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {
            "podSelector": {"matchLabels": {"app": "server"}},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def test_network_policy_denying_ingress_blocks_traffic_between_pods(core, pools, namespace, test_image):
    server_ip = serve(core, namespace, "server", pools["general"], test_image)
    # one client on the server's node, one on another node: both paths must be filtered
    client_pod(core, namespace, "same-node", pools["general"], test_image)
    client_pod(
        core,
        namespace,
        "other-node",
        pools["ssd"],
        test_image,
        labels={"app": "other-node", "role": "allowed"},
    )
    clients = ["same-node", "other-node"]
    for pod in clients:
        assert (
            wait_for(lambda pod=pod: fetch(core, namespace, pod, server_ip), "reachability")
            == "hello from server"
        )

    create(core, namespace, network_policy("deny-ingress", []))
    for pod in clients:
        wait_for(lambda pod=pod: fetch(core, namespace, pod, server_ip) is None, f"{pod} to be blocked", 60)

    # a second policy allowing one labelled client opens the way for that client only
    allow = network_policy(
        "allow-role",
        [{"from": [{"podSelector": {"matchLabels": {"role": "allowed"}}}], "ports": [{"port": "hello"}]}],
    )
    create(core, namespace, allow)
    wait_for(lambda: fetch(core, namespace, "other-node", server_ip), "the allowed client to get through", 60)
    assert fetch(core, namespace, "same-node", server_ip) is None
