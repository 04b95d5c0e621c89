"""The servers the chart can run in place of the user's own (image images.testServers): the object
store of kind's remote task logs (airflow.logs.testObjectStore) and the Prometheus of its metrics
(metrics.testPrometheus).

Each must be off unless asked for, be wired in without any endpoint or key written by hand, keep its
keys in Secrets (the same in both namespaces that use them), be reachable only by Airflow, and refuse
values that would leave it unusable.
"""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from tests.facts import WORKER_NAMESPACE, WORKLOAD_NAMESPACES

from .rendering import NAMESPACE, RELEASE, Manifest, env_of, find, of_kind, render, render_error, rendered
from .test_ops import S3_COMPATIBLE, airflow_containers, remote_logs_connection

STORE = f"{RELEASE}-object-store"
COMPONENT = "app.kubernetes.io/component"
ON = (
    "--set", "airflow.logs.remote.enabled=true",
    "--set", "airflow.logs.remote.bucket=task-logs",
    "--set", "airflow.logs.testObjectStore.enabled=true",
)  # fmt: skip


def store_objects(manifests: list[Manifest]) -> list[str]:
    return [
        f"{item['kind']} {item['metadata'].get('namespace')}/{item['metadata']['name']}"
        for item in manifests
        if item["metadata"]["name"].startswith(STORE)
    ]


@pytest.mark.parametrize("values_file", ["values.yaml", "values-production.yaml"])
def test_off_unless_asked_for(values_file: str) -> None:
    assert store_objects(rendered(values_file)) == []


def test_kind_sends_the_remote_logs_to_it() -> None:
    manifests = rendered("values-kind.yaml")
    find(manifests, "Deployment", STORE, NAMESPACE)
    for namespace in (NAMESPACE, WORKER_NAMESPACE):
        assert remote_logs_connection(manifests, namespace)["extra"] == {
            "region_name": "us-east-1",
            "endpoint_url": f"http://{STORE}.{NAMESPACE}.svc.cluster.local:7070",
            "config_kwargs": {"s3": {"addressing_style": "path"}},
        }


def test_every_airflow_container_gets_the_store_keys_from_its_secret() -> None:
    manifests = render("values.yaml", *ON)
    containers = airflow_containers(manifests)
    assert containers
    for name, container in containers.items():
        env = env_of(container)
        for variable, key in (
            ("AWS_ACCESS_KEY_ID", "access-key-id"),
            ("AWS_SECRET_ACCESS_KEY", "secret-access-key"),
        ):
            assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": STORE, "key": key}, name


def test_keys_are_generated_once_and_identical_in_both_namespaces() -> None:
    manifests = render("values.yaml", *ON)
    control_plane = find(manifests, "Secret", STORE, NAMESPACE)["data"]
    workers = find(manifests, "Secret", STORE, WORKER_NAMESPACE)["data"]
    assert control_plane == workers
    assert set(control_plane) == {"access-key-id", "secret-access-key"}
    assert len(base64.b64decode(control_plane["secret-access-key"])) >= 32
    # job pods never get the log store's keys
    assert {
        m["metadata"]["namespace"] for m in of_kind(manifests, "Secret") if m["metadata"]["name"] == STORE
    } == {
        NAMESPACE,
        WORKER_NAMESPACE,
    }


def test_a_given_endpoint_and_secret_win_over_the_store() -> None:
    manifests = render("values.yaml", *ON, *S3_COMPATIBLE)
    assert remote_logs_connection(manifests)["extra"]["endpoint_url"] == "http://s3.storage.svc:8333"
    for name, container in airflow_containers(manifests).items():
        assert env_of(container)["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "logs-s3", name


def test_the_bucket_reaches_mkdir_as_one_argument_without_a_shell() -> None:
    deployment = find(render("values.yaml", *ON), "Deployment", STORE, NAMESPACE)
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert init["command"] == ["mkdir", "-p", "/data/buckets/task-logs", "/data/meta"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/usr/local/bin/versitygw"]  # exec form: no shell reads the values
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def _policy(manifests: list[Manifest], name: str, namespace: str) -> dict:
    return find(manifests, "NetworkPolicy", name, namespace)["spec"]


def test_only_airflow_reaches_the_store() -> None:
    manifests = render("values-kind.yaml")
    ingress = _policy(manifests, f"{STORE}-ingress", NAMESPACE)["ingress"]
    (namespaces,) = [
        peer["namespaceSelector"]["matchExpressions"][0]["values"] for peer in ingress[0]["from"]
    ]
    assert sorted(namespaces) == sorted([NAMESPACE, WORKER_NAMESPACE])


def _egress_to(manifests: list[Manifest], namespace: str, component: str) -> list[dict]:
    """The egress rules of `namespace` whose peers are the release's pods of `component`."""
    rules = _policy(manifests, f"{RELEASE}-egress", namespace)["egress"]
    return [
        rule for rule in rules
        for peer in rule.get("to", [])
        if peer.get("podSelector", {}).get("matchLabels", {}).get(COMPONENT) == component
    ]  # fmt: skip


def _egress_to_store(manifests: list[Manifest], namespace: str) -> list[dict]:
    return _egress_to(manifests, namespace, "object-store")


def test_worker_pods_may_upload_and_job_pods_may_not() -> None:
    manifests = render("values-kind.yaml")
    (rule,) = _egress_to_store(manifests, WORKER_NAMESPACE)
    assert rule["ports"] == [{"port": 7070, "protocol": "TCP"}]
    for namespace in WORKLOAD_NAMESPACES:
        assert _egress_to_store(manifests, namespace) == []
    without_store = render("values-kind.yaml", "--set", "airflow.logs.testObjectStore.enabled=false")
    assert _egress_to_store(without_store, WORKER_NAMESPACE) == []


def test_its_pod_runs_as_the_image_user_on_the_services_pool() -> None:
    (deployment,) = [
        d for d in of_kind(render("values.yaml", *ON), "Deployment") if d["metadata"]["name"] == STORE
    ]
    spec = deployment["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsUser"] == 10004
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False


STORE_KEY = "airflow.logs.testObjectStore"
INVALID = [
    pytest.param(
        ["--set", f"{STORE_KEY}.enabled=true"],
        "needs airflow.logs.remote.enabled",
        id="without-remote-logging",
    ),
    pytest.param(
        [*ON, "--set", "airflow.logs.remote.bucket="], "/airflow/logs/remote/bucket", id="without-bucket"
    ),
    pytest.param(
        [*ON, "--set", "airflow.logs.remote.bucket=../etc"], "/airflow/logs/remote/bucket", id="bucket-path"
    ),
    pytest.param(
        [*ON, "--set", f"{STORE_KEY}.size=2GB"], "/airflow/logs/testObjectStore/size", id="size-unit"
    ),
    pytest.param(
        [*ON, "--set", f"{STORE_KEY}.size=-1Gi"], "/airflow/logs/testObjectStore/size", id="size-negative"
    ),
    pytest.param(
        [*ON, "--set-string", f"{STORE_KEY}.storageClassName=fast\nkind: ClusterRoleBinding"],
        "/airflow/logs/testObjectStore/storageClassName",
        id="storage-class-injection",
    ),
    pytest.param(
        [*ON, "--set", f"{STORE_KEY}.resources.requests.memory=1Gi"],
        "airflow.logs.testObjectStore.resources",
        id="request-above-limit",
    ),
    pytest.param([*ON, "--set", f"{STORE_KEY}.replicas=2"], "replicas", id="unknown-key"),
]


@pytest.mark.parametrize(("args", "expected"), INVALID)
def test_invalid_store_values_are_rejected(args: list[str], expected: str) -> None:
    assert expected in render_error(*args)


# --- the test Prometheus ---------------------------------------------------------------------------

PROMETHEUS = f"{RELEASE}-prometheus"
PROMETHEUS_ON = ("--set", "metrics.enabled=true", "--set", "metrics.testPrometheus.enabled=true")
OTLP_ENV = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"


@pytest.mark.parametrize("values_file", ["values.yaml", "values-production.yaml"])
def test_prometheus_off_unless_asked_for(values_file: str) -> None:
    assert [m for m in rendered(values_file) if m["metadata"]["name"].startswith(PROMETHEUS)] == []


def test_every_airflow_container_pushes_to_the_test_prometheus() -> None:
    manifests = rendered("values-kind.yaml")
    find(manifests, "Deployment", PROMETHEUS, NAMESPACE)
    expected = f"http://{PROMETHEUS}.{NAMESPACE}.svc.cluster.local:9090/api/v1/otlp/v1/metrics"
    containers = airflow_containers(manifests)
    assert containers
    for name, container in containers.items():
        assert env_of(container)[OTLP_ENV]["value"] == expected, name


def test_a_given_otlp_endpoint_wins_over_the_test_prometheus() -> None:
    endpoint = "http://otel-collector.monitoring:4318/v1/metrics"
    manifests = render("values.yaml", *PROMETHEUS_ON, "--set", f"metrics.otlpEndpoint={endpoint}")
    for name, container in airflow_containers(manifests).items():
        assert env_of(container)[OTLP_ENV]["value"] == endpoint, name


def test_prometheus_receives_otlp_and_keeps_the_pod_name() -> None:
    manifests = render("values.yaml", *PROMETHEUS_ON, "--set", "metrics.testPrometheus.retention=12h")
    spec = find(manifests, "Deployment", PROMETHEUS, NAMESPACE)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["command"] == ["/usr/local/bin/prometheus"]
    assert "--web.enable-otlp-receiver" in container["args"]
    assert "--storage.tsdb.retention.time=12h" in container["args"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    config = yaml.safe_load(find(manifests, "ConfigMap", PROMETHEUS, NAMESPACE)["data"]["prometheus.yml"])
    assert config == {"otlp": {"promote_resource_attributes": ["k8s.pod.name"]}}


def test_only_airflow_pushes_to_prometheus() -> None:
    manifests = render("values-kind.yaml")
    ingress = _policy(manifests, f"{PROMETHEUS}-ingress", NAMESPACE)["ingress"]
    (namespaces,) = [
        peer["namespaceSelector"]["matchExpressions"][0]["values"] for peer in ingress[0]["from"]
    ]
    assert sorted(namespaces) == sorted([NAMESPACE, WORKER_NAMESPACE])
    to_prometheus = _egress_to(manifests, WORKER_NAMESPACE, "prometheus")
    assert [rule["ports"] for rule in to_prometheus] == [[{"port": 9090, "protocol": "TCP"}]]


PROMETHEUS_KEY = "metrics.testPrometheus"
INVALID_PROMETHEUS = [
    pytest.param(["--set", f"{PROMETHEUS_KEY}.enabled=true"], "needs metrics.enabled", id="without-metrics"),
    pytest.param(
        ["--set", "metrics.enabled=true"], "/metrics/otlpEndpoint", id="metrics-without-any-endpoint"
    ),
    pytest.param(
        [*PROMETHEUS_ON, "--set", f"{PROMETHEUS_KEY}.retention=2 days"], "retention", id="retention-space"
    ),
    pytest.param(
        [*PROMETHEUS_ON, "--set", f"{PROMETHEUS_KEY}.retention=0d"], "retention", id="retention-zero"
    ),
    pytest.param(
        [*PROMETHEUS_ON, "--set-string", f"{PROMETHEUS_KEY}.retention=2d\n- --web.enable-admin-api"],
        "retention",
        id="retention-argument-injection",
    ),
    pytest.param(
        [*PROMETHEUS_ON, "--set", f"{PROMETHEUS_KEY}.storageSizeLimit=1GB"],
        "storageSizeLimit",
        id="size-unit",
    ),
    pytest.param(
        [*PROMETHEUS_ON, "--set", f"{PROMETHEUS_KEY}.resources.requests.cpu=2"],
        "metrics.testPrometheus.resources",
        id="request-above-limit",
    ),
]


@pytest.mark.parametrize(("args", "expected"), INVALID_PROMETHEUS)
def test_invalid_prometheus_values_are_rejected(args: list[str], expected: str) -> None:
    assert expected in render_error(*args)


# --- the user's own OTLP receiver (metrics.receiverPeers) ---------------------------------------------

MONITORING = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}


def _receiver_rules(manifests: list[Manifest], namespace: str, peer: dict) -> list[dict]:
    rules = _policy(manifests, f"{RELEASE}-egress", namespace)["egress"]
    return [rule for rule in rules if peer in rule.get("to", [])]


@pytest.mark.parametrize(
    ("endpoint", "port"),
    [
        ("http://prometheus.monitoring.svc:9090/api/v1/otlp/v1/metrics", 9090),
        ("http://otel-collector.monitoring:4318/v1/metrics", 4318),
        ("https://otlp.example.com/v1/metrics", 443),
        ("http://otlp.example.com/v1/metrics", 80),
    ],
)
def test_worker_pods_may_push_to_the_named_receiver_on_the_endpoint_port(endpoint: str, port: int) -> None:
    manifests = render(
        "values.yaml", "--set", "metrics.enabled=true", "--set", f"metrics.otlpEndpoint={endpoint}",
        "--set-json", f"metrics.receiverPeers={json.dumps([MONITORING])}",
    )  # fmt: skip
    (rule,) = _receiver_rules(manifests, WORKER_NAMESPACE, MONITORING)
    assert rule == {"to": [MONITORING], "ports": [{"port": port, "protocol": "TCP"}]}
    for namespace in WORKLOAD_NAMESPACES:  # job pods push nothing: the callback runs in the worker pod
        assert _receiver_rules(manifests, namespace, MONITORING) == []


def test_no_receiver_rule_while_metrics_are_off() -> None:
    manifests = render("values.yaml", "--set-json", f"metrics.receiverPeers={json.dumps([MONITORING])}")
    assert _receiver_rules(manifests, WORKER_NAMESPACE, MONITORING) == []


RECEIVER_ON = ("--set", "metrics.enabled=true", "--set", "metrics.otlpEndpoint=http://otel:4318/v1/metrics")
INVALID_RECEIVER_PEERS = [
    pytest.param([{}], "receiverPeers", id="empty-peer-allows-everyone"),
    pytest.param([{"podSelector": {}}], "receiverPeers", id="empty-pod-selector"),
    pytest.param([{"ipBlock": {"cidr": "0.0.0.0/0"}}], "169.254.169.254", id="metadata-address"),
    pytest.param(
        [{"ipBlock": {"cidr": "169.254.0.0/16", "except": ["169.254.1.0/24"]}}],
        "169.254.169.254",
        id="except-misses-the-metadata-address",
    ),
    pytest.param([{"ipBlock": {"cidr": "10.0.0.0/33"}}], "receiverPeers", id="bad-cidr"),
    pytest.param([{"serviceSelector": {"app": "x"}}], "receiverPeers", id="unknown-field"),
]


@pytest.mark.parametrize("peers", [p.values[0] for p in INVALID_RECEIVER_PEERS],
                         ids=[p.id for p in INVALID_RECEIVER_PEERS])  # fmt: skip
def test_invalid_receiver_peers_are_rejected(peers: list[dict]) -> None:
    expected = next(p.values[1] for p in INVALID_RECEIVER_PEERS if p.values[0] == peers)
    assert expected in render_error(*RECEIVER_ON, "--set-json", f"metrics.receiverPeers={json.dumps(peers)}")


def test_an_excepted_metadata_address_is_accepted() -> None:
    peer = {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}
    manifests = render(
        "values.yaml", *RECEIVER_ON, "--set-json", f"metrics.receiverPeers={json.dumps([peer])}"
    )
    assert _receiver_rules(manifests, WORKER_NAMESPACE, peer)
