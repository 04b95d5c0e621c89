"""metrics.serviceMonitor on the kind cluster: a Prometheus in another namespace federates Airflow's
series from the release's Prometheus (metrics.testPrometheus, the relay) the way prometheus-operator
would scrape it from the ServiceMonitor.

No prometheus-operator runs here. The module applies the real ServiceMonitor CRD (the one
tests/chart validates against: scripts/prometheus_operator.py) unless it exists, upgrades the release
with its own values plus metrics.serviceMonitor.enabled and networkPolicies.metricsScraper.from
admitting the namespace e2e-scraper, and starts there a Prometheus (the relay's own image) whose one
scrape job is what the operator generates from the ServiceMonitor read back from the cluster (path,
params, honor_labels, interval, timeout: tests/ops/service_monitor.py), aimed at the Service's DNS name
and named port. Afterwards the release gets its former values and description back (so `make up` still
sees its fingerprint), and the namespace and a CRD this module created are deleted.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from scripts import config, platform_api, prometheus_operator
from tests.facts import AIRFLOW_POOL, NAMESPACE, POOL_LABEL, RELEASE
from tests.ops.prometheus_server import Prometheus
from tests.ops.service_monitor import scrape_job

from .bundle_repo import wait_until
from .conftest import namespace_gone, port_forward, registry_pull_secrets

pytestmark = pytest.mark.cluster

SCRAPER_NAMESPACE = "e2e-scraper"
SCRAPER_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": SCRAPER_NAMESPACE}}}
RELAY = f"{RELEASE}-prometheus"
CRD = "servicemonitors.monitoring.coreos.com"
GROUP, VERSION, PLURAL = "monitoring.coreos.com", "v1", "servicemonitors"
SCRAPER_LABELS = {"app.kubernetes.io/name": "e2e-scraper"}


def _run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """A command with the pinned tools first on PATH and the cluster's kubeconfig; fails with its output."""
    result = subprocess.run(list(args), capture_output=True, text=True, env=config.tool_env(), **kwargs)
    if result.returncode:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def _helm_upgrade(*args: str, description: str) -> None:
    _run(
        "helm", "upgrade", RELEASE, str(config.CHART), "--namespace", NAMESPACE,
        "--description", description, "--wait", "--timeout", "15m", *args,
    )  # fmt: skip


@pytest.fixture(scope="module")
def service_monitor_crd(kube: k8s.ApiClient) -> Iterator[None]:
    """The real ServiceMonitor CRD in the cluster (applied, and deleted afterwards, unless it was there)."""
    extensions = k8s.ApiextensionsV1Api(kube)
    try:
        extensions.read_custom_resource_definition(CRD)
        created = False
    except ApiException as error:
        if error.status != 404:
            raise
        _run("kubectl", "apply", "--server-side", "-f", str(prometheus_operator.crd_file(PLURAL)))
        created = True
    _run("kubectl", "wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=60s")
    try:
        yield
    finally:
        if created:
            _run("kubectl", "delete", f"crd/{CRD}", "--wait=true", "--timeout=120s")


@pytest.fixture(scope="module")
def monitored_release(service_monitor_crd: None) -> Iterator[None]:
    """The release upgraded with the ServiceMonitor on and e2e-scraper admitted; restored afterwards."""
    supplied = _run("helm", "get", "values", RELEASE, "--namespace", NAMESPACE, "-o", "json").stdout
    values = json.loads(supplied) or {}  # every -f and --set of the release, merged
    description = platform_api.deployed_description() or "restored by tests/e2e/test_service_monitor.py"
    assert values.get("metrics", {}).get("testPrometheus", {}).get("enabled"), (
        "the release runs no metrics.testPrometheus (the relay the ServiceMonitor scrapes): install it "
        "with values-kind.yaml (make up)"
    )
    with tempfile.TemporaryDirectory(prefix="e2e-service-monitor-") as workdir:
        original = Path(workdir) / "values.json"
        original.write_text(json.dumps(values))
        try:
            # The release's own values plus the two settings, over this chart's defaults. (Not
            # --reuse-values: it takes the defaults of the chart the release was installed from,
            # which may predate metrics.serviceMonitor.)
            _helm_upgrade(
                "--reset-values", "--values", str(original),
                "--set", "metrics.serviceMonitor.enabled=true",
                "--set-json", f"networkPolicies.metricsScraper.from={json.dumps([SCRAPER_PEER])}",
                description="tests/e2e/test_service_monitor.py: ServiceMonitor on",
            )  # fmt: skip
            yield
        finally:  # exactly the values and description the release had
            _helm_upgrade("--reset-values", "--values", str(original), description=description)


def _live_service_monitor(kube: k8s.ApiClient) -> dict[str, Any]:
    return k8s.CustomObjectsApi(kube).get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, RELAY)


SCRAPER_DELETED = f"namespace {SCRAPER_NAMESPACE} deleted"


def _scraper_pod(image: str, pull_secrets: list[k8s.V1LocalObjectReference]) -> k8s.V1Pod:
    restricted = k8s.V1SecurityContext(
        run_as_non_root=True, run_as_user=10004, run_as_group=10004, allow_privilege_escalation=False,
        read_only_root_filesystem=True, capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )  # fmt: skip
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=f"scraper-{uuid.uuid4().hex[:8]}", labels=SCRAPER_LABELS),
        spec=k8s.V1PodSpec(
            restart_policy="Never",
            automount_service_account_token=False,
            enable_service_links=False,
            security_context=k8s.V1PodSecurityContext(fs_group=10004),
            tolerations=[
                k8s.V1Toleration(key=POOL_LABEL, operator="Equal", value=AIRFLOW_POOL, effect="NoSchedule")
            ],
            node_selector={POOL_LABEL: AIRFLOW_POOL},
            image_pull_secrets=pull_secrets,
            containers=[
                k8s.V1Container(
                    name="prometheus",
                    image=image,
                    image_pull_policy="IfNotPresent",
                    command=["/usr/local/bin/prometheus"],
                    args=[
                        "--config.file=/etc/prometheus/prometheus.yml",
                        "--storage.tsdb.path=/prometheus",
                        "--web.listen-address=:9090",
                    ],
                    ports=[k8s.V1ContainerPort(name="http", container_port=9090)],
                    readiness_probe=k8s.V1Probe(
                        http_get=k8s.V1HTTPGetAction(path="/-/ready", port="http"), period_seconds=2
                    ),
                    security_context=restricted,
                    resources=k8s.V1ResourceRequirements(
                        requests={"cpu": "50m", "memory": "128Mi"}, limits={"cpu": "500m", "memory": "512Mi"}
                    ),
                    volume_mounts=[
                        k8s.V1VolumeMount(name="config", mount_path="/etc/prometheus", read_only=True),
                        k8s.V1VolumeMount(name="tsdb", mount_path="/prometheus"),
                    ],
                )
            ],
            volumes=[
                k8s.V1Volume(name="config", config_map=k8s.V1ConfigMapVolumeSource(name="scraper")),
                k8s.V1Volume(name="tsdb", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="256Mi")),
            ],
        ),
    )


@pytest.fixture(scope="module")
def scrape_config(kube: k8s.ApiClient, monitored_release: None) -> dict[str, Any]:
    """The scrape job of the live ServiceMonitor, aimed at the Service's DNS name and named port."""
    monitor = _live_service_monitor(kube)
    (endpoint,) = monitor["spec"]["endpoints"]
    service = k8s.CoreV1Api(kube).read_namespaced_service(RELAY, NAMESPACE)
    (port,) = [p.port for p in service.spec.ports if p.name == endpoint["port"]]
    target = f"{RELAY}.{NAMESPACE}.svc.{config.installed_values()['clusterDomain']}:{port}"
    return {"scrape_configs": [scrape_job(monitor, target)]}


@pytest.fixture(scope="module")
def scraper(kube: k8s.ApiClient, scrape_config: dict[str, Any]) -> Iterator[Prometheus]:
    """The scraper Prometheus in e2e-scraper, read through `kubectl port-forward`."""
    core = k8s.CoreV1Api(kube)
    relay = k8s.AppsV1Api(kube).read_namespaced_deployment(RELAY, NAMESPACE)
    image = relay.spec.template.spec.containers[0].image  # the test-servers image the release runs
    if not namespace_gone(core, SCRAPER_NAMESPACE):  # left by an interrupted run
        core.delete_namespace(SCRAPER_NAMESPACE)
        wait_until(lambda: namespace_gone(core, SCRAPER_NAMESPACE), SCRAPER_DELETED, 180)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=SCRAPER_NAMESPACE)))
    try:
        config_map = k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name="scraper"), data={"prometheus.yml": yaml.safe_dump(scrape_config)}
        )
        core.create_namespaced_config_map(SCRAPER_NAMESPACE, config_map)
        pull_secrets = registry_pull_secrets(core, SCRAPER_NAMESPACE)  # the relay's image, from the registry
        pod = core.create_namespaced_pod(SCRAPER_NAMESPACE, _scraper_pod(image, pull_secrets)).metadata.name

        def ready() -> bool:
            status = core.read_namespaced_pod(pod, SCRAPER_NAMESPACE).status
            assert status.phase not in {"Failed", "Succeeded"}, f"scraper pod ended: {status}"
            return any(c.ready for c in status.container_statuses or [])

        wait_until(ready, "the scraper Prometheus ready", 180)
        with port_forward(SCRAPER_NAMESPACE, f"pod/{pod}", 9090, "/-/ready") as url:
            yield Prometheus(url)
    finally:
        core.delete_namespace(SCRAPER_NAMESPACE)
        wait_until(lambda: namespace_gone(core, SCRAPER_NAMESPACE), SCRAPER_DELETED, 180)


def test_the_service_monitor_selects_the_relay_service(kube: k8s.ApiClient, monitored_release: None) -> None:
    monitor = _live_service_monitor(kube)
    service = k8s.CoreV1Api(kube).read_namespaced_service(RELAY, NAMESPACE)
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert all(service.metadata.labels.get(key) == value for key, value in selector.items())
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert [p.name for p in service.spec.ports if p.name == endpoint["port"]] == [endpoint["port"]]
    assert (endpoint["path"], endpoint["honorLabels"]) == ("/federate", True)


def test_the_relay_admits_the_scraper_namespace(kube: k8s.ApiClient, monitored_release: None) -> None:
    policy = k8s.NetworkingV1Api(kube).read_namespaced_network_policy(f"{RELAY}-ingress", NAMESPACE)
    rules = [kube.sanitize_for_serialization(rule) for rule in policy.spec.ingress]
    assert {"ports": [{"port": 9090, "protocol": "TCP"}], "from": [SCRAPER_PEER]} in rules


def test_federated_airflow_series_reach_the_scraper(scraper: Prometheus, scrape_config: dict) -> None:
    (job,) = scrape_config["scrape_configs"]
    up = f'up{{job="{job["job_name"]}"}}'
    # The first scrape comes within one interval (30 s by default) of the scraper's start.
    wait_until(lambda: scraper.query(up), f"{up} in the scraper", 120)
    deadline = time.monotonic() + 120
    while (result := scraper.query(up)) and result[0]["value"][1] != "1" and time.monotonic() < deadline:
        time.sleep(5)
    assert result and result[0]["value"][1] == "1", f"the scrape of {job['static_configs']} fails: {result}"
    heartbeat = "airflow_scheduler_heartbeat_total"
    wait_until(lambda: scraper.query(heartbeat), f"{heartbeat} federated to the scraper", 120)
    found = scraper.query('count by (job, instance) ({__name__=~"airflow_.+"})')
    (target,) = job["static_configs"][0]["targets"]
    # honor_labels: each series keeps the relay's job and instance (the Airflow pod that pushed it),
    # not the scraper's own for the target.
    assert all(item["metric"].get("job") != job["job_name"] for item in found), found[:5]
    assert all(item["metric"].get("instance") != target for item in found), found[:5]
    instances = {item["metric"].get("instance", "") for item in found}
    assert any(name.startswith(f"{RELEASE}-scheduler") for name in instances), sorted(instances)
