"""Ingress, Service exposure, [api] base_url, cluster domain and quota retries (issue #13)."""

from __future__ import annotations

import json

import pytest

from .rendering import NAMESPACE, RELEASE, airflow_cfg, find, of_kind, pod_specs, render, render_error

SERVICE = f"{RELEASE}-api-server"


def ingress(*hosts: str, tls: str = "", path: str = "/", base_url: str = "") -> list[str]:
    return [
        "--set",
        "airflow.apiServer.ingress.enabled=true",
        "--set-json",
        f"airflow.apiServer.ingress.hosts={json.dumps(list(hosts))}",
        "--set",
        f"airflow.apiServer.ingress.tls.secretName={tls}",
        "--set",
        f"airflow.apiServer.ingress.path={path}",
        "--set",
        "airflow.apiServer.ingress.className=nginx",
        "--set-json",
        'airflow.apiServer.ingress.annotations={"cert-manager.io/cluster-issuer":"corp"}',
        "--set",
        f"airflow.baseUrl={base_url}",
    ]


def test_ingress_routes_hosts_to_the_api_server() -> None:
    manifests = render("values.yaml", *ingress("airflow.example.com", "af.example.com", tls="airflow-tls"))
    spec = find(manifests, "Ingress", SERVICE, NAMESPACE)
    assert spec["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "corp"}
    assert spec["spec"]["ingressClassName"] == "nginx"
    assert spec["spec"]["tls"] == [
        {"secretName": "airflow-tls", "hosts": ["airflow.example.com", "af.example.com"]}
    ]
    assert [rule["host"] for rule in spec["spec"]["rules"]] == ["airflow.example.com", "af.example.com"]
    backend = spec["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": SERVICE, "port": {"name": "api"}}
    assert airflow_cfg(manifests)["api"]["base_url"] == "https://airflow.example.com"


def test_base_url_follows_plain_http_ingress_and_path() -> None:
    manifests = render("values.yaml", *ingress("airflow.example.com", path="/airflow/"))
    assert airflow_cfg(manifests)["api"]["base_url"] == "http://airflow.example.com/airflow"
    assert "tls" not in find(manifests, "Ingress", SERVICE, NAMESPACE)["spec"]


def test_explicit_base_url_on_an_ingress_host_is_kept() -> None:
    manifests = render(
        "values.yaml",
        *ingress("a.example.com", "b.example.com", tls="t", base_url="https://b.example.com/ui"),
    )
    assert airflow_cfg(manifests)["api"]["base_url"] == "https://b.example.com/ui"


def test_base_url_may_name_a_host_a_wildcard_serves() -> None:
    """hosts[0] = *.example.com made base_url http://*.example.com; a host under it was refused."""
    manifests = render("values.yaml", *ingress("*.example.com", base_url="http://airflow.example.com"))
    assert airflow_cfg(manifests)["api"]["base_url"] == "http://airflow.example.com"
    rules = find(manifests, "Ingress", SERVICE, NAMESPACE)["spec"]["rules"]
    assert [rule["host"] for rule in rules] == ["*.example.com"]
    later = render("values.yaml", *ingress("airflow.example.com", "*.example.com"))
    assert airflow_cfg(later)["api"]["base_url"] == "http://airflow.example.com"


def test_no_ingress_by_default() -> None:
    manifests = render("values.yaml")
    assert of_kind(manifests, "Ingress") == []
    assert "base_url" not in airflow_cfg(manifests).get("api", {})


def test_service_annotations_and_source_ranges() -> None:
    manifests = render(
        "values.yaml",
        "--set",
        "airflow.apiServer.service.type=LoadBalancer",
        "--set-json",
        'airflow.apiServer.service.annotations={"networking.gke.io/load-balancer-type":"Internal"}',
        "--set-json",
        'airflow.apiServer.service.loadBalancerSourceRanges=["10.0.0.0/8","2001:db8::/32"]',
    )
    service = find(manifests, "Service", SERVICE, NAMESPACE)
    assert service["metadata"]["annotations"] == {"networking.gke.io/load-balancer-type": "Internal"}
    assert service["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8", "2001:db8::/32"]


def test_cluster_domain_reaches_every_in_cluster_address() -> None:
    manifests = render("values.yaml", "--set", "clusterDomain=corp.internal")  # kind values name a git URL
    text = json.dumps(manifests)
    assert "cluster.local" not in text
    cfg = airflow_cfg(manifests)
    assert cfg["core"]["execution_api_server_url"] == (
        f"http://{SERVICE}.{NAMESPACE}.svc.corp.internal:8080/execution/"
    )
    database_urls = [
        variable["value"]
        for _, spec in pod_specs(manifests)
        for container in spec["containers"]
        for variable in container.get("env", [])
        if variable["name"] == "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
    ]
    assert database_urls and all(
        f"@{RELEASE}-postgres.{NAMESPACE}.svc.corp.internal:5432/" in u for u in database_urls
    )
    health = find(manifests, "Pod", f"{RELEASE}-health-test", NAMESPACE)
    assert health["spec"]["containers"][0]["command"][-1].startswith(
        f"http://{SERVICE}.{NAMESPACE}.svc.corp.internal:"
    )


def test_quota_refused_worker_pods_are_retried() -> None:
    assert airflow_cfg(render("values.yaml"))["kubernetes_executor"]["task_publish_max_retries"] == "-1"
    manifests = render("values.yaml", "--set", "airflow.workers.taskPublishMaxRetries=5")
    assert airflow_cfg(manifests)["kubernetes_executor"]["task_publish_max_retries"] == "5"


INVALID = [
    (
        "ingress-without-hosts",
        ["--set", "airflow.apiServer.ingress.enabled=true"],
        "/airflow/apiServer/ingress/hosts",
    ),
    ("ingress-host-pattern", ingress("not a host"), "/airflow/apiServer/ingress/hosts/0"),
    ("ingress-path-pattern", ingress("a.example.com", path="airflow"), "/airflow/apiServer/ingress/path"),
    (
        "base-url-foreign-host",
        ingress("a.example.com", base_url="http://b.example.com"),
        'airflow.baseUrl: host "b.example.com" is not one of airflow.apiServer.ingress.hosts',
    ),
    (
        "base-url-scheme-mismatch",
        ingress("a.example.com", tls="t", base_url="http://a.example.com"),
        'airflow.baseUrl: scheme "http" differs from the Ingress',
    ),
    (
        "tls-secret-pattern",
        ingress("a.example.com", tls="Bad_Secret"),
        "/airflow/apiServer/ingress/tls/secretName",
    ),
    (
        "source-ranges-need-a-load-balancer",
        ["--set-json", 'airflow.apiServer.service.loadBalancerSourceRanges=["10.0.0.0/8"]'],
        "airflow.apiServer.service.loadBalancerSourceRanges: only applies to type LoadBalancer",
    ),
    (
        "source-range-pattern",
        [
            "--set",
            "airflow.apiServer.service.type=LoadBalancer",
            "--set-json",
            'airflow.apiServer.service.loadBalancerSourceRanges=["everyone"]',
        ],
        "/airflow/apiServer/service/loadBalancerSourceRanges/0",
    ),
    (
        "wildcard-host-as-base-url",
        ingress("*.example.com", "airflow.example.com"),
        'airflow.apiServer.ingress.hosts[0]: "*.example.com" is a wildcard',
    ),
    (
        "base-url-two-labels-below-a-wildcard",
        ingress("*.example.com", base_url="http://a.b.example.com"),
        'airflow.baseUrl: host "a.b.example.com" is not one of',
    ),
    (
        "base-url-apex-of-a-wildcard",
        ingress("*.example.com", base_url="http://example.com"),
        'airflow.baseUrl: host "example.com" is not one of',
    ),
    ("ingress-host-ip", ingress("10.0.0.1"), "/airflow/apiServer/ingress/hosts/0"),
    (
        "base-url-with-credentials",
        ["--set", "airflow.baseUrl=https://admin:hunter2@airflow.example.com"],
        "/airflow/baseUrl",
    ),
    ("cluster-domain-pattern", ["--set", "clusterDomain=corp internal"], "/clusterDomain"),
    ("cluster-domain-leading-dot", ["--set", "clusterDomain=.local"], "/clusterDomain"),
    (
        "publish-retries-minimum",
        ["--set", "airflow.workers.taskPublishMaxRetries=-2"],
        "/airflow/workers/taskPublishMaxRetries",
    ),
]


@pytest.mark.parametrize(("arguments", "message"), [pytest.param(a, m, id=i) for i, a, m in INVALID])
def test_invalid_access_values_name_the_key(arguments: list[str], message: str) -> None:
    error = render_error(*arguments)
    assert message in error, error
