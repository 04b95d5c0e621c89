"""Lifecycle of the local kind cluster: `up` (idempotent) and `down`.

The kind config is generated from node-pools/pools.yaml: one control plane plus one worker per
pool, labelled and tainted (NoSchedule) as the pool says. `kind.extendedResources` of a pool (the
simulated nvidia.com/gpu) is advertised by patching the node status, as Kubernetes documents for
extended resources without a device plugin: nothing backs it, it only makes GPU scheduling testable.

Registry mode (PLATFORM_REGISTRY=1, scripts/config.py): the nodes pull the platform's images from the
local OCI registry (scripts/registry.py) instead of having them loaded: containerd reads registry host
directories (`config_path`), and every node mounts .cache/registry/certs.d there, whose hosts.toml
sends REGISTRY_HOST/... to the registry container over TLS verified with the local CA (kind's
local-registry pattern). Credentials come from the pods' imagePullSecrets, not from the nodes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import yaml

from scripts import config, registry
from scripts.common import Logger, docker_answers, run, wait_until

NODE_IMAGE_FILE = config.CACHE / "node-image" / "current-image"
# What the cluster was made from (node image + kind config), kept inside the control-plane node so a
# cluster made by another checkout, an older pools.yaml or another node image is not silently reused.
CONFIG_DIGEST_FILE = "/kind/airflow-platform-config.sha256"
READY_TIMEOUT_S = 300
DNS_NAME = "kubernetes.default.svc.cluster.local"
log = Logger("cluster")


def kubectl(*args: str, capture: bool = True, check: bool = True) -> str:
    return run("kubectl", "--context", config.KUBE_CONTEXT, *args, capture=capture, check=check)


def load_pools() -> dict:
    return config.node_pools()["pools"]


def worker_node(pool: dict) -> dict:
    taints = [{**taint, "effect": taint.get("effect", "NoSchedule")} for taint in pool.get("taints", [])]
    join_patch = {"kind": "JoinConfiguration", "nodeRegistration": {"taints": taints}}
    return {
        "role": "worker",
        "labels": {**pool["labels"], **(pool.get("kind") or {}).get("providerLabels", {})},
        "kubeadmConfigPatches": [yaml.safe_dump(join_patch)],
    }


# containerd 2 (config version 3, ours and kind's): read registry hosts from the mounted directory.
REGISTRY_CONTAINERD_PATCH = """[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = "/etc/containerd/certs.d"
"""


def kind_config(pools: dict, registry_certs_d: Path | None = None) -> dict:
    """The kind config; with `registry_certs_d` (registry mode) every node mounts it for containerd."""
    # Kubernetes 1.35 refuses cgroup v1 hosts unless told otherwise; such hosts are still common.
    kubelet_patch = {"kind": "KubeletConfiguration", "failCgroupV1": False}
    nodes = [{"role": "control-plane"}, *(worker_node(pool) for pool in pools.values())]
    cluster = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": config.CLUSTER_NAME,
        "kubeadmConfigPatches": [yaml.safe_dump(kubelet_patch)],
        "nodes": nodes,
    }
    if registry_certs_d is not None:
        cluster["containerdConfigPatches"] = [REGISTRY_CONTAINERD_PATCH]
        mount = {"hostPath": str(registry_certs_d), "containerPath": registry.NODE_CERTS_D, "readOnly": True}
        for node in nodes:
            node["extraMounts"] = [*node.get("extraMounts", []), mount]
    return cluster


def registry_certs_d() -> Path | None:
    """In registry mode, the nodes' containerd host directory (CA and hosts.toml made if missing)."""
    return registry.ensure_node_files() if config.registry_mode() else None


def cluster_exists() -> bool:
    return config.CLUSTER_NAME in run("kind", "get", "clusters", capture=True).split()


# Every node runs systemd, the kubelet and kube-proxy, each holding inotify instances of the host
# user; the kernel default of 128 instances runs out at about one 4-node cluster ("too many open
# files" in kube-proxy, nodes that never become Ready). Values from kind's known-issues page.
INOTIFY_MINIMUMS = {"fs/inotify/max_user_instances": 512, "fs/inotify/max_user_watches": 524288}


def ensure_inotify_limits() -> None:
    for key, minimum in INOTIFY_MINIMUMS.items():
        path = Path("/proc/sys") / key
        current = int(path.read_text())
        if current >= minimum:
            continue
        if os.geteuid() != 0:
            log(f"WARNING: {key.replace('/', '.')}={current} < {minimum}; nodes may not become Ready")
            continue
        log(f"raising {key.replace('/', '.')} from {current} to {minimum} (kind needs more than the default)")
        path.write_text(str(minimum))


def stopped_nodes() -> list[str]:
    """Node containers of the cluster that are not running (the host or dockerd restarted)."""
    nodes = run("kind", "get", "nodes", "--name", config.CLUSTER_NAME, capture=True).split()
    return [
        node
        for node in nodes
        if run("docker", "inspect", "-f", "{{.State.Running}}", node, capture=True).strip() != "true"
    ]


API_PROBE_S = 60


def api_answers() -> bool:
    probe = ("get", "--raw", "/readyz", "--request-timeout=10s")
    return kubectl(*probe, check=False).strip() == "ok"


def nodes_without_registry_mount() -> list[str]:
    """Node containers that do not mount the registry's host directory (made without registry mode)."""
    nodes = run("kind", "get", "nodes", "--name", config.CLUSTER_NAME, capture=True).split()
    destinations = "{{range .Mounts}}{{.Destination}} {{end}}"
    return [
        node
        for node in nodes
        if registry.NODE_CERTS_D
        not in run("docker", "inspect", "-f", destinations, node, capture=True).split()
    ]


def config_digest(image: str, kind_yaml: str) -> str:
    return hashlib.sha256(f"{image}\n{kind_yaml}".encode()).hexdigest()


def control_plane_node() -> str:
    return f"{config.CLUSTER_NAME}-control-plane"


def stored_digest() -> str:
    """The digest recorded at creation ("" for a cluster made before digests or by hand)."""
    result = subprocess.run(
        ["docker", "exec", control_plane_node(), "cat", CONFIG_DIGEST_FILE],
        capture_output=True,
        text=True,
        env=config.tool_env(),
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def record_digest(digest: str) -> None:
    subprocess.run(
        ["docker", "exec", "-i", control_plane_node(), "sh", "-c", f"cat > {CONFIG_DIGEST_FILE}"],
        input=digest,
        text=True,
        check=True,
        env=config.tool_env(),
    )


def reuse_problem(expected_digest: str) -> str | None:
    """Why the existing cluster cannot be reused, or None when it can."""
    stopped = stopped_nodes()
    if stopped:
        return f"has stopped nodes ({', '.join(stopped)})"
    if config.registry_mode():
        unmounted = nodes_without_registry_mount()
        if unmounted:
            return (
                f"was made without PLATFORM_REGISTRY=1 ({', '.join(unmounted)} lack {registry.NODE_CERTS_D})"
            )
    found = stored_digest()
    if found != expected_digest:
        made_from = f"config digest {found[:12]}" if found else "no recorded config"
        return (
            f"was made from another node image or kind config ({made_from}, this checkout's is "
            f"{expected_digest[:12]}: node-pools/pools.yaml, registry mode or the checkout changed)"
        )
    export_kubeconfig()
    try:
        wait_until(api_answers, "the existing cluster's API server to answer /readyz", API_PROBE_S)
    except TimeoutError:
        return f"its API server does not answer /readyz within {API_PROBE_S} s"
    return None


def create_cluster(pools: dict) -> None:
    ensure_inotify_limits()
    if not NODE_IMAGE_FILE.exists():
        raise RuntimeError("no node image built yet: run `make node-image` first")
    image = NODE_IMAGE_FILE.read_text().strip()
    certs_d = registry_certs_d()
    kind_yaml = yaml.safe_dump(kind_config(pools, certs_d), sort_keys=False)
    digest = config_digest(image, kind_yaml)
    if cluster_exists():
        problem = reuse_problem(digest)
        if not problem:
            log(f"cluster {config.CLUSTER_NAME} exists and answers: reusing it")
            return
        # kind cannot resume a multi-node cluster reliably (node IPs change after a dockerd or host
        # restart, the API server then answers EOF): start over rather than fail later.
        log(f"cluster {config.CLUSTER_NAME} exists but {problem}: recreating it")
        down()
    kind_file = config.CACHE / f"kind-{config.CLUSTER_NAME}.yaml"
    if certs_d is not None:
        log(
            f"registry mode: nodes pull {config.REGISTRY_HOST}/... from {config.REGISTRY_CONTAINER} "
            f"({certs_d})"
        )
    kind_file.write_text(kind_yaml)
    log(f"creating {config.CLUSTER_NAME} from {image} (config {kind_file.relative_to(config.ROOT)})")
    run(
        "kind",
        "create",
        "cluster",
        "--name",
        config.CLUSTER_NAME,
        "--image",
        image,
        "--config",
        str(kind_file),
        "--kubeconfig",
        str(config.KUBECONFIG),
        "--wait",
        f"{READY_TIMEOUT_S}s",
    )
    record_digest(digest)


def export_kubeconfig() -> None:
    config.KUBECONFIG.parent.mkdir(parents=True, exist_ok=True)
    run("kind", "export", "kubeconfig", "--name", config.CLUSTER_NAME, "--kubeconfig", str(config.KUBECONFIG))


def nodes_by_pool(pools: dict) -> dict[str, str]:
    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    found = {}
    for pool_name, pool in pools.items():
        for node in nodes:
            if pool["labels"].items() <= node["metadata"].get("labels", {}).items():
                found[pool_name] = node["metadata"]["name"]
    return found


def advertise_extended_resources(pools: dict) -> None:
    nodes = nodes_by_pool(pools)
    for pool_name, pool in pools.items():
        resources = (pool.get("kind") or {}).get("extendedResources") or {}
        if not resources:
            continue
        node = nodes[pool_name]
        log(f"advertising simulated {resources} on {node} (pool {pool_name})")
        patch = {"status": {"capacity": resources}}
        kubectl("patch", "node", node, "--subresource=status", "--type=merge", "-p", json.dumps(patch))
        wait_until(
            lambda node=node, resources=resources: allocatable_has(node, resources),
            f"{node} allocatable {resources}",
            READY_TIMEOUT_S,
        )


def allocatable_has(node: str, resources: dict[str, str]) -> bool:
    allocatable = json.loads(kubectl("get", "node", node, "-o", "json"))["status"].get("allocatable", {})
    return all(allocatable.get(name) == value for name, value in resources.items())


def wait_ready() -> None:
    kubectl("wait", "--for=condition=Ready", "nodes", "--all", f"--timeout={READY_TIMEOUT_S}s", capture=False)
    kubectl(
        "-n",
        "kube-system",
        "rollout",
        "status",
        "deployment/coredns",
        f"--timeout={READY_TIMEOUT_S}s",
        capture=False,
    )


def check_dns() -> None:
    """Resolves the API service name from a pod: proves CNI, kube-proxy and CoreDNS together."""
    image = helper_image()
    overrides = {
        "spec": {
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}],
            "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
        }
    }
    name = "dns-check"
    kubectl("delete", "pod", name, "--ignore-not-found", "--wait=true")

    def resolves() -> bool:
        try:
            kubectl(
                "run",
                name,
                "--rm",
                "-i",
                "--quiet",
                "--restart=Never",
                f"--image={image}",
                "--image-pull-policy=IfNotPresent",
                f"--overrides={json.dumps(overrides)}",
                "--pod-running-timeout=2m",
                "--",
                "sh",
                "-c",
                # getent in our helper image, nslookup in kind's busybox-based one (official node image)
                f"getent hosts {DNS_NAME} || nslookup {DNS_NAME}",
            )
        except subprocess.CalledProcessError:  # kubectl run exits with the pod's exit code
            kubectl("delete", "pod", name, "--ignore-not-found", "--wait=true")
            return False
        return True

    wait_until(resolves, "CoreDNS to answer from a pod", READY_TIMEOUT_S)
    log("CoreDNS answers from a pod")


def helper_image() -> str:
    """A shell image every node has: local-path-provisioner's helper."""
    provisioner_config = json.loads(
        kubectl("-n", "local-path-storage", "get", "configmap", "local-path-config", "-o", "json")
    )
    return yaml.safe_load(provisioner_config["data"]["helperPod.yaml"])["spec"]["containers"][0]["image"]


def up() -> None:
    pools = load_pools()
    with log.phase("create"):
        create_cluster(pools)
    export_kubeconfig()
    with log.phase("wait for nodes and CoreDNS"):
        wait_ready()
    with log.phase("extended resources"):
        advertise_extended_resources(pools)
    with log.phase("DNS from a pod"):
        check_dns()
    log(f"cluster {config.CLUSTER_NAME} ready; KUBECONFIG={config.KUBECONFIG}")


def down() -> None:
    # Without a running engine there are no node containers, so no cluster to delete (a clean
    # machine's `.ci/run` deletes any leftover cluster before `make e2e` starts the engine).
    if not docker_answers():
        log(f"docker engine not running: no cluster {config.CLUSTER_NAME} to delete")
        return
    if cluster_exists():
        run(
            "kind", "delete", "cluster", "--name", config.CLUSTER_NAME, "--kubeconfig", str(config.KUBECONFIG)
        )
    else:
        log(f"no cluster {config.CLUSTER_NAME}")


def print_config() -> None:
    print(yaml.safe_dump(kind_config(load_pools(), registry_certs_d()), sort_keys=False))
