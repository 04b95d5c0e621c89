"""metrics.serviceMonitor: a prometheus-operator ServiceMonitor that federates the chart's Prometheus.

The ServiceMonitor must select exactly the chart's Prometheus Service on the port name that Service
has, ask /federate for the configured series with the series' own labels kept, and pass the real
ServiceMonitor CRD (prometheus-operator's, from its Go module zip: scripts/prometheus_operator.py). The
Prometheus pod's NetworkPolicy admits networkPolicies.metricsScraper.from only while it is enabled.
Refused values are in test_bad_values.py (class service-monitor); the install notes' warning in
test_hardening.py.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from scripts import prometheus_operator

from .rendering import CHART, NAMESPACE, RELEASE, Manifest, find, helm, of_kind, render, rendered

PROMETHEUS = f"{RELEASE}-prometheus"
ON = (
    "--set", "metrics.enabled=true",
    "--set", "metrics.testPrometheus.enabled=true",
    "--set", "metrics.serviceMonitor.enabled=true",
)  # fmt: skip
SCRAPER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}
SCRAPER_ARGS = ("--set-json", f"networkPolicies.metricsScraper.from={json.dumps([SCRAPER])}")
# Values that change every field the template writes.
VARIANTS = {
    "defaults": (),
    "everything-set": (
        "--set", "metrics.serviceMonitor.interval=1m30s",
        "--set", "metrics.serviceMonitor.scrapeTimeout=45s",
        "--set-json", 'metrics.serviceMonitor.labels={"release": "kube-prometheus-stack", "team": "data"}',
        "--set", "metrics.serviceMonitor.namespace=monitoring",
        "--set-json", 'metrics.serviceMonitor.matchSeries=["{__name__=~\\"airflow_.+\\"}", "target_info"]',
    ),
    "no-interval": ("--set", "metrics.serviceMonitor.interval="),
}  # fmt: skip


def service_monitor(manifests: list[Manifest]) -> Manifest:
    (monitor,) = of_kind(manifests, "ServiceMonitor")
    return monitor


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.fixture(scope="module")
def crd_schema() -> dict[str, Any]:
    try:
        return prometheus_operator.openapi_schema()
    except RuntimeError as error:  # no Go module proxy: the check cannot run, and must not pass
        pytest.fail(f"the ServiceMonitor CRD is not available: {error}")


def pruned_fields(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the API server would drop silently (a structural schema prunes what it does not declare)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    if isinstance(value, dict):
        properties, extra = schema.get("properties"), schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                found += pruned_fields(item, properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += pruned_fields(item, extra, f"{path}.{key}")
            elif properties is not None:
                found.append(f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += pruned_fields(item, schema["items"], f"{path}[{index}]")
    return found


@pytest.mark.parametrize("values_file", ["values.yaml", "values-kind.yaml", "values-production.yaml"])
def test_off_unless_asked_for(values_file: str) -> None:
    assert of_kind(rendered(values_file), "ServiceMonitor") == []


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_real_crd_accepts_it(variant: str, crd_schema: dict[str, Any]) -> None:
    monitor = service_monitor(render("values.yaml", *ON, *VARIANTS[variant]))
    errors = [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in jsonschema.Draft7Validator(crd_schema).iter_errors(monitor)
    ]
    assert errors == []
    assert pruned_fields(monitor, crd_schema) == []
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")


def test_the_crd_check_finds_what_kubernetes_would_refuse_or_drop(crd_schema: dict[str, Any]) -> None:
    monitor = service_monitor(render("values.yaml", *ON))
    broken = json.loads(json.dumps(monitor))
    endpoint = broken["spec"]["endpoints"][0]
    endpoint["interval"], endpoint["honorLabel"] = "30 s", True
    messages = [error.message for error in jsonschema.Draft7Validator(crd_schema).iter_errors(broken)]
    assert any("30 s" in message for message in messages), messages
    assert pruned_fields(broken, crd_schema) == [".spec.endpoints[0].honorLabel"]


def test_it_selects_exactly_the_prometheus_service_on_its_port() -> None:
    manifests = render("values.yaml", *ON)
    monitor = service_monitor(manifests)["spec"]
    service = find(manifests, "Service", PROMETHEUS, NAMESPACE)
    selector = monitor["selector"]["matchLabels"]
    assert set(monitor["selector"]) == {"matchLabels"}
    assert selects(selector, service["metadata"]["labels"])
    namespaces = monitor["namespaceSelector"]["matchNames"]
    assert namespaces == [NAMESPACE]
    selected = [
        s["metadata"]["name"] for s in of_kind(manifests, "Service")
        if s["metadata"]["namespace"] in namespaces and selects(selector, s["metadata"]["labels"])
    ]  # fmt: skip
    assert selected == [PROMETHEUS]
    (endpoint,) = monitor["endpoints"]
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    # The named Service port leads to the container port the NetworkPolicy opens to the scraper.
    deployment = find(manifests, "Deployment", PROMETHEUS, NAMESPACE)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (container_port,) = [p for p in container["ports"] if p["name"] == port["targetPort"]]
    assert container_port["containerPort"] == 9090
    assert selects(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])


def test_it_federates_the_prefix_series_with_their_own_labels() -> None:
    (endpoint,) = service_monitor(render("values.yaml", *ON))["spec"]["endpoints"]
    assert endpoint == {
        "port": "http",
        "scheme": "http",
        "path": "/federate",
        "honorLabels": True,
        "params": {"match[]": ['{__name__=~"airflow_.+"}']},
        "interval": "30s",
    }


def test_the_default_series_follow_the_metrics_prefix() -> None:
    manifests = render("values.yaml", *ON, "--set", "metrics.prefix=platform")
    (endpoint,) = service_monitor(manifests)["spec"]["endpoints"]
    assert endpoint["params"] == {"match[]": ['{__name__=~"platform_.+"}']}


def test_every_value_reaches_the_service_monitor() -> None:
    monitor = service_monitor(render("values.yaml", *ON, *VARIANTS["everything-set"]))
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}  # the Service stays put
    labels = monitor["metadata"]["labels"]
    assert labels["release"] == "kube-prometheus-stack" and labels["team"] == "data"
    assert labels["app.kubernetes.io/instance"] == RELEASE  # the chart's labels stay
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("1m30s", "45s")
    assert endpoint["params"] == {"match[]": ['{__name__=~"airflow_.+"}', "target_info"]}


def test_empty_durations_leave_them_to_the_prometheus() -> None:
    (endpoint,) = service_monitor(render("values.yaml", *ON, *VARIANTS["no-interval"]))["spec"]["endpoints"]
    assert "interval" not in endpoint and "scrapeTimeout" not in endpoint


def _prometheus_ingress(manifests: list[Manifest]) -> list[dict]:
    return find(manifests, "NetworkPolicy", f"{PROMETHEUS}-ingress", NAMESPACE)["spec"]["ingress"]


def _scraper_rules(manifests: list[Manifest]) -> list[dict]:
    return [rule for rule in _prometheus_ingress(manifests) if SCRAPER in rule["from"]]


def test_the_scraper_may_reach_prometheus_on_its_port() -> None:
    manifests = render("values.yaml", *ON, *SCRAPER_ARGS)
    assert _scraper_rules(manifests) == [{"ports": [{"port": 9090, "protocol": "TCP"}], "from": [SCRAPER]}]
    assert len(_prometheus_ingress(manifests)) == 2  # Airflow's pods keep their own rule


def test_the_scraper_is_not_admitted_without_the_service_monitor() -> None:
    manifests = render(
        "values.yaml", "--set", "metrics.enabled=true", "--set", "metrics.testPrometheus.enabled=true",
        *SCRAPER_ARGS,
    )  # fmt: skip
    assert _scraper_rules(manifests) == []
    assert len(_prometheus_ingress(manifests)) == 1


def test_without_scraper_peers_only_airflow_is_admitted() -> None:
    assert len(_prometheus_ingress(render("values.yaml", *ON))) == 1


def test_no_warning_once_the_scraper_is_named() -> None:
    result = helm(
        "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client", *ON, *SCRAPER_ARGS
    )
    assert "metricsScraper.from is empty" not in result.stdout
    assert "kind: ServiceMonitor" in result.stdout
