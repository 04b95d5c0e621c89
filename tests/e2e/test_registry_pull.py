"""The kind nodes pull the platform's images from the local OCI registry (issue #13, registry mode:
`make e2e` creates the cluster with PLATFORM_REGISTRY=1). containerd sends localhost:5001/... to the
registry container over TLS verified with the local CA (hosts.toml); the credential comes from the
pod's imagePullSecret, so a pod without it is refused by the registry."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from scripts import config, images, registry
from scripts.common import run
from scripts.images import image_tag

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not config.registry_mode(), reason="the cluster was made without PLATFORM_REGISTRY=1"),
]

NAMESPACE = "e2e-registry"
PULL_SECRET = "registry-pull"


@pytest.fixture(scope="module")
def pushed_image() -> str:
    """A probe image pushed to the running registry with the generated credential: clickhouse-tools (a
    platform image) plus a label, so that it has an image ID of its own.

    Why not clickhouse-tools itself: the kubelet (KubeletEnsureSecretPulledImages, on by default since
    Kubernetes 1.35) remembers the image IDs it pulled with a credential and from then on makes every
    pod on that node using the same image ID pull it again. Pulling the platform's own image here left
    the job pods of the rest of the suite (which run `kind load`ed images with no credential) in
    ErrImagePull on that node."""
    registry.up()
    registry.login()
    tools = [image for image in config.images() if image.name == "clickhouse-tools"]
    tag = image_tag()
    if not images.image_exists(tools[0].ref(tag)):
        images.build(tools, tag)
    target = f"{config.REGISTRY_HOST}/{config.repository_prefix()}/registry-pull-probe:{tag}"
    dockerfile = f"FROM {tools[0].ref(tag)}\nLABEL airflow-platform.io/purpose=registry-pull-test\n"
    run("docker", "build", "--quiet", "--tag", target, "-", input=dockerfile, capture=True)
    assert images.image_id(target) != images.image_id(tools[0].ref(tag)), "the probe needs its own image ID"
    run("docker", "push", target, capture=True, env=registry.client_env())
    return target


@pytest.fixture(scope="module")
def namespace(core: k8s.CoreV1Api) -> Iterator[str]:
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=NAMESPACE)))
    core.create_namespaced_secret(
        NAMESPACE,
        k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name=PULL_SECRET),
            type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": registry.docker_config_json()},
        ),
    )
    yield NAMESPACE
    core.delete_namespace(NAMESPACE)


def _pod(image: str, pull_secrets: list[str]) -> k8s.V1Pod:
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=f"pull-{uuid.uuid4().hex[:8]}"),
        spec=k8s.V1PodSpec(
            restart_policy="Never",
            image_pull_secrets=[k8s.V1LocalObjectReference(name=name) for name in pull_secrets],
            tolerations=[k8s.V1Toleration(operator="Exists")],
            containers=[
                k8s.V1Container(
                    name="c", image=image, image_pull_policy="Always",  # a real pull, never the node's copy
                    command=["python", "-c", "print('pulled from the registry')"],
                )
            ],
        ),
    )  # fmt: skip


def _outcome(core: k8s.CoreV1Api, pod: k8s.V1Pod, timeout_s: float = 180) -> str:
    """'Succeeded', or the waiting reason of a pull that failed (ErrImagePull/ImagePullBackOff)."""
    name = core.create_namespaced_pod(NAMESPACE, pod).metadata.name
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = core.read_namespaced_pod(name, NAMESPACE).status
        if status.phase in {"Succeeded", "Failed"}:
            return status.phase
        for container in status.container_statuses or []:
            waiting = container.state.waiting
            if waiting and waiting.reason in {"ErrImagePull", "ImagePullBackOff"}:
                return f"{waiting.reason}: {waiting.message}"
        time.sleep(2)
    raise TimeoutError(f"pod {name}: neither pulled nor refused after {timeout_s:.0f} s")


def test_node_pulls_with_the_pull_secret(core: k8s.CoreV1Api, pushed_image: str, namespace: str) -> None:
    assert _outcome(core, _pod(pushed_image, [PULL_SECRET])) == "Succeeded"


def test_node_without_the_pull_secret_is_refused(
    core: k8s.CoreV1Api, pushed_image: str, namespace: str
) -> None:
    outcome = _outcome(core, _pod(pushed_image, []))
    assert outcome.startswith(("ErrImagePull", "ImagePullBackOff")), outcome
    assert "authorization failed" in outcome or "basic auth" in outcome or "401" in outcome, outcome
