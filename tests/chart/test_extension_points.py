"""Per-component extension points (issue #13): the environment's values reach every pod it names."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.facts import WORKER_NAMESPACE

from .rendering import (
    NAMESPACE,
    RELEASE,
    Manifest,
    executor_pod_template,
    find,
    of_kind,
    pool_placement,
    render,
    render_error,
)

WORKERS = WORKER_NAMESPACE
# values key -> (component label, how to find its pod spec)
COMPONENTS = {
    "apiServer": "api-server",
    "scheduler": "scheduler",
    "dagProcessor": "dag-processor",
    "triggerer": "triggerer",
    "migrateDatabase": "migrate-database",
    "workers": "worker",
}
# What Pod Security `restricted` needs of a container beyond the pod's context (non-root, seccomp).
RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
EXTENSIONS = {
    "serviceAccount": {
        "annotations": {"iam.gke.io/gcp-service-account": "airflow@project.iam.gserviceaccount.com"}
    },
    "podAnnotations": {"example.com/team": "data", "app.kubernetes.io/component": "ignored"},
    "podLabels": {"team": "data", "app.kubernetes.io/component": "hijack"},
    "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
    "extraEnvFrom": [{"configMapRef": {"name": "corp-env"}}],
    "extraVolumes": [{"name": "corp-ca", "configMap": {"name": "corp-ca"}}],
    "extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/corp-ca", "readOnly": True}],
    "extraContainers": [
        {"name": "sidecar", "image": "registry.example.com/proxy:1", "securityContext": RESTRICTED}
    ],
    "extraInitContainers": [
        {"name": "prepare", "image": "registry.example.com/prepare:1", "securityContext": RESTRICTED}
    ],
    "nodeSelector": {"topology.kubernetes.io/zone": "europe-west1-b"},
    "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "arch", "operator": "In", "values": ["amd64"]}]}
                ]
            }
        },
        "podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "podAffinityTerm": {"topologyKey": "zone", "labelSelector": {"matchLabels": {"a": "b"}}},
                }
            ]
        },
    },
    "priorityClassName": "platform-critical",
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"team": "data"}},
        }
    ],
}


def with_extensions(component: str, extensions: dict[str, Any] = EXTENSIONS) -> list[str]:
    return [
        arg
        for key, value in extensions.items()
        for arg in ("--set-json", f"airflow.{component}.{key}={json.dumps(value)}")
    ]


def pod(manifests: list[Manifest], component: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod metadata, pod spec) of a component."""
    if component == "workers":
        template = executor_pod_template(manifests)
        return template["metadata"], template["spec"]
    if component == "migrateDatabase":
        job = next(
            j for j in of_kind(manifests, "Job") if j["metadata"]["name"].startswith(f"{RELEASE}-migrate-")
        )
        return job["spec"]["template"]["metadata"], job["spec"]["template"]["spec"]
    deployment = find(manifests, "Deployment", f"{RELEASE}-{COMPONENTS[component]}", NAMESPACE)
    return deployment["spec"]["template"]["metadata"], deployment["spec"]["template"]["spec"]


def service_account(manifests: list[Manifest], component: str) -> Manifest:
    namespace = WORKERS if component == "workers" else NAMESPACE
    return find(manifests, "ServiceAccount", f"{RELEASE}-{COMPONENTS[component]}", namespace)


@pytest.fixture(scope="module", params=list(COMPONENTS))
def extended(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    return request.param, render("values.yaml", *with_extensions(request.param))


def test_metadata_and_service_account(extended: tuple[str, list[Manifest]]) -> None:
    component, manifests = extended
    metadata, spec = pod(manifests, component)
    assert metadata["labels"]["team"] == "data"
    assert (
        metadata["labels"]["app.kubernetes.io/component"] == COMPONENTS[component]
    )  # the chart's label wins
    assert metadata["annotations"]["example.com/team"] == "data"
    assert spec["serviceAccountName"] == f"{RELEASE}-{COMPONENTS[component]}"
    assert (
        service_account(manifests, component)["metadata"]["annotations"]
        == EXTENSIONS["serviceAccount"]["annotations"]
    )


def test_containers_env_and_volumes(extended: tuple[str, list[Manifest]]) -> None:
    component, manifests = extended
    _, spec = pod(manifests, component)
    main = spec["containers"][0]
    assert main["name"] in {"base", "migrate-database", COMPONENTS[component]}
    assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in main["env"]
    assert main["envFrom"] == EXTENSIONS["extraEnvFrom"]
    assert EXTENSIONS["extraVolumeMounts"][0] in main["volumeMounts"]
    assert EXTENSIONS["extraVolumes"][0] in spec["volumes"]
    assert [c["name"] for c in spec["containers"]][1:] == ["sidecar"]
    assert spec["initContainers"][-1]["name"] == "prepare"
    assert {"AIRFLOW_HOME", "AIRFLOW__CORE__FERNET_KEY"} & {e["name"] for e in main["env"]}  # chart env kept


def test_scheduling_beyond_the_pool(extended: tuple[str, list[Manifest]]) -> None:
    component, manifests = extended
    _, spec = pod(manifests, component)
    pool_tolerations, pool_affinity = pool_placement("general")
    assert spec["tolerations"] == [*pool_tolerations, *EXTENSIONS["tolerations"]]
    assert spec["nodeSelector"] == EXTENSIONS["nodeSelector"]
    (term,) = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    pool_expressions = pool_affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ][0]["matchExpressions"]
    assert term["matchExpressions"] == [
        *pool_expressions,
        {"key": "arch", "operator": "In", "values": ["amd64"]},
    ]
    assert spec["affinity"]["podAffinity"] == EXTENSIONS["affinity"]["podAffinity"]
    assert spec["priorityClassName"] == "platform-critical"
    assert spec["topologySpreadConstraints"] == EXTENSIONS["topologySpreadConstraints"]


def test_each_component_keeps_its_own_settings() -> None:
    manifests = render("values.yaml", *with_extensions("scheduler", {"podLabels": {"only": "scheduler"}}))
    for component in COMPONENTS:
        metadata, _ = pod(manifests, component)
        assert ("only" in metadata["labels"]) is (component == "scheduler"), component


def test_node_terms_are_anded_with_every_pool_term() -> None:
    """Two pool terms (ORed) x two own terms: four terms, each requiring one of each."""
    pool_terms = [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": [v]}]} for v in ("a", "b")
    ]
    own_terms = [{"matchExpressions": [{"key": "zone", "operator": "In", "values": [v]}]} for v in ("x", "y")]
    own = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": own_terms}}
    }
    manifests = render(
        "values.yaml",
        "--set-json",
        f'nodePools.definitions={{"general":{{"nodeSelectorTerms":{json.dumps(pool_terms)}}}}}',
        "--set-json",
        f"airflow.scheduler.affinity={json.dumps(own)}",
    )
    _, spec = pod(manifests, "scheduler")
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    pairs = {(t["matchExpressions"][0]["values"][0], t["matchExpressions"][1]["values"][0]) for t in terms}
    assert pairs == {("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")}


def test_replicas_spread_over_nodes_by_default() -> None:
    manifests = render("values.yaml", "--set", "airflow.apiServer.replicas=2")
    _, spec = pod(manifests, "apiServer")
    (preferred,) = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    term = preferred["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api-server"
    _, single = pod(manifests, "scheduler")
    assert "podAntiAffinity" not in single["affinity"]


def test_own_anti_affinity_replaces_the_default() -> None:
    own = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "topology.kubernetes.io/zone", "labelSelector": {"matchLabels": {"x": "y"}}}
            ]
        }
    }
    manifests = render(
        "values.yaml",
        "--set",
        "airflow.scheduler.replicas=3",
        "--set-json",
        f"airflow.scheduler.affinity={json.dumps(own)}",
    )
    _, spec = pod(manifests, "scheduler")
    assert spec["affinity"]["podAntiAffinity"] == own["podAntiAffinity"]


def test_worker_pods_are_not_evicted_mid_task() -> None:
    metadata, spec = pod(render("values.yaml"), "workers")
    assert metadata["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert spec["terminationGracePeriodSeconds"] == 600
    metadata, spec = pod(
        render(
            "values.yaml",
            "--set",
            "airflow.workers.terminationGracePeriodSeconds=3600",
            "--set-json",
            'airflow.workers.podAnnotations={"a":"b"}',
        ),
        "workers",
    )
    assert spec["terminationGracePeriodSeconds"] == 3600
    assert metadata["annotations"] == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false", "a": "b"}


def test_pod_template_stays_valid_yaml_with_extensions() -> None:
    manifests = render("values.yaml", *with_extensions("workers"))
    config_map = find(manifests, "ConfigMap", f"{RELEASE}-pod-template", NAMESPACE)
    document = yaml.safe_load(config_map["data"]["pod_template_file.yaml"])
    assert document["kind"] == "Pod" and document["spec"]["containers"][0]["name"] == "base"


INVALID = [
    (
        "priority-class-pattern",
        ["--set", "airflow.scheduler.priorityClassName=Not Valid"],
        "/airflow/scheduler/priorityClassName",
    ),
    (
        "annotation-value-type",
        ["--set-json", 'airflow.apiServer.podAnnotations={"a":1}'],
        "/airflow/apiServer/podAnnotations/a",
    ),
    ("env-must-be-list", ["--set-json", 'airflow.workers.extraEnv={"A":"b"}'], "/airflow/workers/extraEnv"),
    ("sa-unknown-key", ["--set-json", 'airflow.triggerer.serviceAccount={"name":"x"}'], "name"),
    (
        "grace-period-minimum",
        ["--set", "airflow.workers.terminationGracePeriodSeconds=0"],
        "/airflow/workers/terminationGracePeriodSeconds",
    ),
    (
        "node-selector-value-type",
        ["--set-json", 'airflow.migrateDatabase.nodeSelector={"a":true}'],
        "/airflow/migrateDatabase/nodeSelector/a",
    ),
]


@pytest.mark.parametrize(("arguments", "key"), [pytest.param(a, k, id=i) for i, a, k in INVALID])
def test_invalid_extension_values_name_the_key(arguments: list[str], key: str) -> None:
    error = render_error(*arguments)
    assert key in error, error
