"""Node pools in values (issue #13): redefine, add or drop pools; the DAG helper keeps working."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.facts import GPU_JOBS_NAMESPACE, JOBS_NAMESPACE

from .rendering import (
    CHART,
    NAMESPACE,
    POOLS,
    RELEASE,
    Manifest,
    find,
    pod_specs,
    presets,
    render,
    render_error,
    rendered,
)

GKE_POOL = "cloud.google.com/gke-nodepool"
CONTROL_PLANE = ("api-server", "scheduler", "dag-processor", "triggerer")


def definitions(pools: dict[str, Any]) -> tuple[str, str]:
    return "--set-json", f"nodePools.definitions={json.dumps(pools)}"


def required_terms(spec: dict[str, Any]) -> list[dict[str, Any]]:
    affinity = spec.get("affinity", {}).get("nodeAffinity", {})
    return affinity.get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", [])


def deployment_spec(manifests: list[Manifest], component: str) -> dict[str, Any]:
    return find(manifests, "Deployment", f"{RELEASE}-{component}", NAMESPACE)["spec"]["template"]["spec"]


def helper_settings(manifests: list[Manifest], pool: str, tmp_path: Path, monkeypatch) -> dict[str, Any]:
    """pod_settings() of the unchanged DAG helper reading the rendered presets."""
    helper = pytest.importorskip("airflow_platform_pools")
    path = tmp_path / "presets.json"
    path.write_text(json.dumps(presets(manifests)))
    monkeypatch.setenv("AIRFLOW_PLATFORM_PRESETS", str(path))
    helper._load.cache_clear()
    # a gpu pod must ask for a device (the helper refuses it otherwise)
    resources = {"limits": {"nvidia.com/gpu": "1"}} if pool == "gpu" else None
    try:
        return helper.pod_settings(pool, resources=resources)
    finally:
        helper._load.cache_clear()


def test_cloud_labels_replace_the_kind_labels(tmp_path: Path, monkeypatch) -> None:
    manifests = render("values.yaml", *definitions({"gpu": {"labels": {GKE_POOL: "gpu-a100"}}}))
    gpu = presets(manifests)["pools"]["gpu"]
    assert gpu["nodeLabels"] == {GKE_POOL: "gpu-a100"}  # no kind label left behind
    assert gpu["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": GKE_POOL, "operator": "In", "values": ["gpu-a100"]}]}
        ]
    }
    kind_taints = POOLS["pools"]["gpu"]["taints"]
    assert [t["key"] for t in gpu["tolerations"]] == [t["key"] for t in kind_taints]  # not overridden
    assert gpu["resources"] == POOLS["pools"]["gpu"]["defaultResources"]
    settings = helper_settings(manifests, "gpu", tmp_path, monkeypatch)
    assert settings["affinity"] == gpu["affinity"] and settings["namespace"] == GPU_JOBS_NAMESPACE


def test_raw_terms_and_tolerations(tmp_path: Path, monkeypatch) -> None:
    terms = [
        {
            "matchExpressions": [
                {
                    "key": "node.kubernetes.io/instance-type",
                    "operator": "In",
                    "values": ["i3.xlarge", "i3.2xlarge"],
                }
            ]
        },
        {"matchExpressions": [{"key": "disk", "operator": "Exists"}]},
    ]
    tolerations = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
    manifests = render(
        "values.yaml",
        *definitions(
            {
                "ssd": {
                    "nodeSelectorTerms": terms,
                    "tolerations": tolerations,
                    "defaultResources": {"requests": {"cpu": "2"}},
                }
            }
        ),
    )
    ssd = presets(manifests)["pools"]["ssd"]
    assert (
        ssd["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        == terms
    )
    assert ssd["tolerations"] == tolerations
    assert ssd["nodeLabels"] == {}
    assert ssd["resources"] == {"requests": {"cpu": "2"}}  # the field replaces the file's
    settings = helper_settings(manifests, "ssd", tmp_path, monkeypatch)
    assert [t.operator for t in settings["tolerations"]] == ["Exists"]


def test_added_pool_places_the_platform_and_reaches_dags(tmp_path: Path, monkeypatch) -> None:
    pool = {
        "highmem": {
            "labels": {GKE_POOL: "highmem"},
            "taints": [{"key": "workload", "value": "highmem", "effect": "NoSchedule"}],
            # Within the namespace's quota (32Gi of limits): the chart refuses defaults no pod could get.
            "defaultResources": {"requests": {"memory": "16Gi"}, "limits": {"memory": "32Gi"}},
            "extendedResources": {"hugepages-2Mi": "1Gi"},
        }
    }
    manifests = render(
        "values.yaml",
        *definitions(pool),
        "--set",
        "nodePools.airflow=highmem",
        "--set-json",
        'namespaces.workloads[0].pools=["general","ssd","highmem"]',
    )
    published = presets(manifests)["pools"]["highmem"]
    assert published["namespace"] == JOBS_NAMESPACE
    assert published["extendedResources"] == {"hugepages-2Mi": "1Gi"}
    for component in CONTROL_PLANE:
        spec = deployment_spec(manifests, component)
        assert spec["tolerations"] == [
            {"key": "workload", "operator": "Equal", "value": "highmem", "effect": "NoSchedule"}
        ], component
        assert (
            required_terms(spec)
            == published["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
                "nodeSelectorTerms"
            ]
        ), component
    assert helper_settings(manifests, "highmem", tmp_path, monkeypatch)["labels"] == {
        "airflow-platform.io/pool": "highmem"
    }


def test_pools_from_values_only() -> None:
    pools = {
        "default": {"labels": {GKE_POOL: "default-pool"}},
        "batch": {"taints": [{"key": "batch", "value": "true", "effect": "NoExecute"}]},
    }
    workloads = [
        {
            "name": "jobs",
            "pools": ["default", "batch"],
            "quota": {},
            "limitRange": {"default": {}, "defaultRequest": {}},
        }
    ]
    manifests = render(
        "values.yaml",
        "--set",
        "nodePools.includeFile=false",
        *definitions(pools),
        "--set",
        "nodePools.airflow=default",
        "--set",
        "nodePools.services=default",
        "--set-json",
        f"namespaces.workloads={json.dumps(workloads)}",
    )
    published = presets(manifests)["pools"]
    assert set(published) == {"default", "batch"}
    assert published["batch"]["affinity"] == {}  # no labels: any node that tolerates the taint
    assert published["batch"]["tolerations"][0]["effect"] == "NoExecute"


def test_no_pool_constraint_for_the_platform() -> None:
    manifests = render(
        "values-kind.yaml",
        "--set",
        "nodePools.airflow=",
        "--set",
        "nodePools.services=",
        "--set",
        "airflow.logs.mode=none",
    )
    for name, spec in pod_specs(manifests):
        assert "tolerations" not in spec and "affinity" not in spec, name
    assert set(presets(manifests)["pools"]) == set(POOLS["pools"])  # DAG pools unchanged


def workloads_with(pools: list[str]) -> list[dict[str, Any]]:
    return [
        {"name": "jobs", "pools": pools, "quota": {}, "limitRange": {"default": {}, "defaultRequest": {}}}
    ]


INVALID = [
    (
        "unknown-airflow-pool",
        ["--set", "nodePools.airflow=blue"],
        'nodePools.airflow: unknown node pool "blue"',
    ),
    (
        "unknown-services-pool",
        ["--set", "nodePools.services=fast"],
        'nodePools.services: unknown node pool "fast"',
    ),
    (
        "unknown-namespace-pool",
        ["--set-json", f"namespaces.workloads={json.dumps(workloads_with(['general', 'tpu']))}"],
        'namespaces.workloads[0].pools[1]: unknown node pool "tpu"',
    ),
    (
        "airflow-pool-dropped-with-file",
        ["--set", "nodePools.includeFile=false", *definitions({"general": {"labels": {"a": "b"}}})],
        "namespaces.workloads[0].pools[1]",
    ),
    (
        "no-pools-at-all",
        ["--set", "nodePools.includeFile=false"],
        "nodePools.definitions: no node pool defined",
    ),
    (
        "added-pool-without-namespace",
        [*definitions({"tpu": {"labels": {"a": "b"}}})],
        'node pool "tpu" is not listed',
    ),
    ("pool-name-pattern", [*definitions({"GPU_1": {}})], "invalid propertyName 'GPU_1'"),
    ("unknown-pool-field", [*definitions({"gpu": {"label": {"a": "b"}}})], "label"),
    (
        "taint-effect-enum",
        [*definitions({"gpu": {"taints": [{"key": "a", "effect": "Never"}]}})],
        "/nodePools/definitions/gpu/taints/0/effect",
    ),
    (
        "label-value-pattern",
        [*definitions({"gpu": {"labels": {"a": "not a label"}}})],
        "/nodePools/definitions/gpu/labels/a",
    ),
    ("resource-section", [*definitions({"gpu": {"defaultResources": {"request": {}}}})], "request"),
    (
        "empty-terms",
        [*definitions({"gpu": {"nodeSelectorTerms": []}})],
        "/nodePools/definitions/gpu/nodeSelectorTerms",
    ),
    ("include-file-type", ["--set-string", "nodePools.includeFile=yes"], "/nodePools/includeFile"),
    (
        "hostpath-logs-need-a-pool",
        ["-f", str(CHART / "values-kind.yaml"), "--set", "nodePools.airflow="],
        "airflow.logs.mode: hostPath needs nodePools.airflow",
    ),
]


@pytest.mark.parametrize(("arguments", "message"), [pytest.param(a, m, id=i) for i, a, m in INVALID])
def test_invalid_pool_values_name_the_key(arguments: list[str], message: str) -> None:
    error = render_error(*arguments)
    assert message in error, error


def _matches(term: dict[str, Any], labels: dict[str, str]) -> bool:
    """A NodeSelectorTerm (matchExpressions with In/Exists, as the chart renders them) against labels."""
    for expression in term.get("matchExpressions", []):
        value = labels.get(expression["key"])
        if expression["operator"] == "Exists" and value is None:
            return False
        if expression["operator"] == "In" and value not in expression["values"]:
            return False
    return True


def _tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    return any(
        t.get("key") == taint["key"]
        and t.get("effect", taint["effect"]) == taint["effect"]
        and (t.get("operator") == "Exists" or t.get("value") == taint.get("value"))
        for t in tolerations
    )


def test_production_scenario_on_kind_selects_the_kind_nodes_by_provider_labels() -> None:
    """ci/production-on-kind-values.yaml (the e2e's production-shaped release) places each pool on the
    kind node made for it, by the provider labels only, and tolerates every taint of that node."""
    from scripts import cluster

    nodes = {}
    for pool, node in zip(POOLS["pools"], cluster.kind_config(POOLS["pools"])["nodes"][1:], strict=True):
        patch = yaml.safe_load(node["kubeadmConfigPatches"][0])
        nodes[pool] = (node["labels"], patch["nodeRegistration"]["taints"])
    scenario = presets(rendered("ci/production-on-kind-values.yaml"))["pools"]
    assert set(scenario) == set(nodes)
    for pool, settings in scenario.items():
        assert POOLS["poolLabelKey"] not in settings["nodeLabels"], "must not rely on the platform's label"
        (term,) = required_terms(settings)
        assert {other for other, (labels, _) in nodes.items() if _matches(term, labels)} == {pool}
        taints = nodes[pool][1]
        assert all(_tolerates(settings["tolerations"], taint) for taint in taints), (pool, taints)
