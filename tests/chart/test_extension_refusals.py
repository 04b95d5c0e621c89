"""What the Airflow components' extension points (extraContainers, extraInitContainers, extraVolumes,
extraVolumeMounts, extraEnvFrom) may not do, refused at `helm template` naming the values key.

Before, each case rendered: a sidecar asking for privileges was refused only by Pod Security
admission at pod creation, and not at all where the namespace is unlabelled
(namespaces.release.podSecurityLabels=false, namespaces.create=false); names clashing with the
chart's were refused by the API server at install or silently shadowed the chart's mounts; an
envFrom prefix set options the chart owns.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.facts import NAMESPACE, WORKER_NAMESPACE

from .rendering import Manifest, render, render_error
from .test_extension_points import COMPONENTS, RESTRICTED, pod

LISTS = ("extraContainers", "extraInitContainers")
UNLABELLED = ("--set", "namespaces.release.podSecurityLabels=false", "--set", "namespaces.create=false")


def _json(key: str, value: object) -> list[str]:
    return ["--set-json", f"{key}={json.dumps(value)}"]


def _container(name: str = "sidecar", **fields: Any) -> dict[str, Any]:
    context = {**RESTRICTED, **fields.pop("securityContext", {})}
    return {"name": name, "image": "registry.example.com/proxy:1", "securityContext": context, **fields}


# (case, the one thing the container asks for, the values key under the container the error names)
PRIVILEGES = [
    ("privileged", _container(securityContext={"privileged": True}), "securityContext.privileged"),
    (
        "capability-net-admin",
        _container(securityContext={"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}),
        "securityContext.capabilities.add",
    ),
    (
        "capability-chown",  # baseline allows it, restricted does not
        _container(securityContext={"capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}),
        "securityContext.capabilities.add",
    ),
    (
        "privilege-escalation",
        _container(securityContext={"allowPrivilegeEscalation": True}),
        "securityContext.allowPrivilegeEscalation",
    ),
    ("root-uid", _container(securityContext={"runAsUser": 0}), "securityContext.runAsUser"),
    ("run-as-root", _container(securityContext={"runAsNonRoot": False}), "securityContext.runAsNonRoot"),
    (
        "seccomp-unconfined",
        _container(securityContext={"seccompProfile": {"type": "Unconfined"}}),
        "securityContext.seccompProfile.type",
    ),
    (
        "selinux-super-privileged",
        _container(securityContext={"seLinuxOptions": {"type": "spc_t"}}),
        "securityContext.seLinuxOptions.type",
    ),
    ("host-port", _container(ports=[{"containerPort": 80, "hostPort": 80}]), "ports[0].hostPort"),
    # what Pod Security `restricted` also refuses: a container that does not drop its privileges
    (
        "no-security-context",
        {"name": "sidecar", "image": "busybox"},
        "securityContext.allowPrivilegeEscalation",
    ),
]


@pytest.mark.parametrize("component", list(COMPONENTS))
@pytest.mark.parametrize("container_list", LISTS)
@pytest.mark.parametrize(("container", "field"), [pytest.param(c, f, id=case) for case, c, f in PRIVILEGES])
def test_extra_containers_asking_for_privileges_are_refused(
    component: str, container_list: str, container: dict[str, Any], field: str
) -> None:
    key = f"airflow.{component}.{container_list}"
    error = render_error(*_json(key, [container]))
    assert f"{key}[0].{field}" in error, error


@pytest.mark.parametrize("component", ["apiServer", "workers"])
def test_privileges_are_refused_where_no_namespace_label_would_refuse_them(component: str) -> None:
    key = f"airflow.{component}.extraContainers"
    error = render_error(*UNLABELLED, *_json(key, [_container(securityContext={"privileged": True})]))
    assert f"{key}[0].securityContext.privileged" in error, error


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_host_path_extra_volumes_are_refused(component: str) -> None:
    key = f"airflow.{component}.extraVolumes"
    volume = {"name": "node-data", "hostPath": {"path": "/data/team"}}
    error = render_error(*_json(key, [volume]))
    assert f"{key}[0].hostPath" in error, error


def test_restricted_sidecar_renders_in_every_component() -> None:
    arguments = [
        arg
        for component in COMPONENTS
        for container_list in LISTS
        for arg in _json(
            f"airflow.{component}.{container_list}", [_container(f"extra-{container_list.lower()}")]
        )
    ]
    manifests = render("values.yaml", *arguments)
    for component in COMPONENTS:
        _, spec = pod(manifests, component)
        assert spec["containers"][-1]["name"] == "extra-extracontainers", component
        assert spec["initContainers"][-1]["name"] == "extra-extrainitcontainers", component


def test_a_privileged_namespace_level_lets_sidecars_ask() -> None:
    """namespaces.podSecurityLevel=privileged is the operator's explicit choice (warned in NOTES)."""
    privileged = _container(
        securityContext={"privileged": True}, ports=[{"containerPort": 80, "hostPort": 80}]
    )
    manifests = render(
        "values.yaml",
        "--set",
        "namespaces.podSecurityLevel=privileged",
        *_json("airflow.scheduler.extraContainers", [privileged]),
        *_json("airflow.scheduler.extraVolumes", [{"name": "node-data", "hostPath": {"path": "/data/team"}}]),
    )
    _, spec = pod(manifests, "scheduler")
    assert spec["containers"][-1]["securityContext"]["privileged"] is True


def test_baseline_lets_sidecars_run_as_root_but_not_privileged() -> None:
    baseline = ("--set", "namespaces.podSecurityLevel=baseline")
    root = _container(securityContext={"runAsUser": 0, "runAsNonRoot": False})
    render("values.yaml", *baseline, *_json("airflow.triggerer.extraContainers", [root]))
    error = render_error(
        *baseline,
        *_json("airflow.triggerer.extraContainers", [_container(securityContext={"privileged": True})]),
    )
    assert "airflow.triggerer.extraContainers[0].securityContext.privileged" in error, error
    assert "baseline" in error, error


# --- Names: containers, volumes and mount paths taken by the chart or given twice -------------------

# (case, helm arguments, the values key the error names)
DUPLICATES: list[tuple[str, list[str], str]] = [
    (
        "api-server-main-container",
        _json("airflow.apiServer.extraContainers", [_container("api-server")]),
        "airflow.apiServer.extraContainers[0].name",
    ),
    (
        "workers-main-container",
        _json("airflow.workers.extraContainers", [_container("base")]),
        "airflow.workers.extraContainers[0].name",
    ),
    (
        "migrate-main-container",
        _json("airflow.migrateDatabase.extraInitContainers", [_container("migrate-database")]),
        "airflow.migrateDatabase.extraInitContainers[0].name",
    ),
    (
        "scheduler-wait-for-migrations",
        _json("airflow.scheduler.extraInitContainers", [_container("wait-for-migrations")]),
        "airflow.scheduler.extraInitContainers[0].name",
    ),
    (
        "api-server-auth-init",
        _json("airflow.apiServer.extraInitContainers", [_container("write-auth-passwords")]),
        "airflow.apiServer.extraInitContainers[0].name",
    ),
    (
        "two-sidecars",
        _json("airflow.dagProcessor.extraContainers", [_container("proxy"), _container("proxy")]),
        "airflow.dagProcessor.extraContainers[1].name",
    ),
    (
        "init-and-sidecar",
        [
            *_json("airflow.triggerer.extraInitContainers", [_container("proxy")]),
            *_json("airflow.triggerer.extraContainers", [_container("proxy")]),
        ],
        "airflow.triggerer.extraContainers[0].name",
    ),
    (
        "volume-tmp",
        _json("airflow.scheduler.extraVolumes", [{"name": "tmp", "emptyDir": {}}]),
        "airflow.scheduler.extraVolumes[0].name",
    ),
    (
        "volume-config-workers",
        _json("airflow.workers.extraVolumes", [{"name": "config", "emptyDir": {}}]),
        "airflow.workers.extraVolumes[0].name",
    ),
    (
        "volume-pod-template",
        _json("airflow.scheduler.extraVolumes", [{"name": "pod-template", "emptyDir": {}}]),
        "airflow.scheduler.extraVolumes[0].name",
    ),
    (
        "volume-logs-migrate",
        _json("airflow.migrateDatabase.extraVolumes", [{"name": "logs", "emptyDir": {}}]),
        "airflow.migrateDatabase.extraVolumes[0].name",
    ),
    (
        "volume-twice",
        _json(
            "airflow.triggerer.extraVolumes", [{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}]
        ),
        "airflow.triggerer.extraVolumes[1].name",
    ),
    (
        "mount-tmp",
        _json("airflow.triggerer.extraVolumeMounts", [{"name": "scratch", "mountPath": "/tmp"}]),
        "airflow.triggerer.extraVolumeMounts[0].mountPath",
    ),
    (
        "mount-logs-trailing-slash",
        _json("airflow.workers.extraVolumeMounts", [{"name": "scratch", "mountPath": "/opt/airflow/logs/"}]),
        "airflow.workers.extraVolumeMounts[0].mountPath",
    ),
    (
        "mount-config-file",
        _json(
            "airflow.migrateDatabase.extraVolumeMounts",
            [{"name": "c", "mountPath": "/opt/airflow/airflow.cfg"}],
        ),
        "airflow.migrateDatabase.extraVolumeMounts[0].mountPath",
    ),
    (
        "mount-pod-templates",
        _json(
            "airflow.scheduler.extraVolumeMounts", [{"name": "c", "mountPath": "/opt/airflow/pod_templates"}]
        ),
        "airflow.scheduler.extraVolumeMounts[0].mountPath",
    ),
    (
        "mount-twice",
        _json(
            "airflow.apiServer.extraVolumeMounts",
            [{"name": "a", "mountPath": "/etc/corp"}, {"name": "b", "mountPath": "/etc/corp"}],
        ),
        "airflow.apiServer.extraVolumeMounts[1].mountPath",
    ),
]


@pytest.mark.parametrize(("arguments", "key"), [pytest.param(a, k, id=i) for i, a, k in DUPLICATES])
def test_names_taken_by_the_chart_or_given_twice_are_refused(arguments: list[str], key: str) -> None:
    error = render_error(*arguments)
    assert key in error, error


def test_nested_mounts_and_names_of_other_components_render() -> None:
    """The api-server's `auth` volume is its own: the scheduler may name one so; /tmp/x is not /tmp."""
    manifests = render(
        "values.yaml",
        *_json("airflow.scheduler.extraVolumes", [{"name": "auth", "emptyDir": {}}]),
        *_json("airflow.scheduler.extraVolumeMounts", [{"name": "auth", "mountPath": "/tmp/auth"}]),
        *_json("airflow.workers.extraContainers", [_container("scheduler")]),
    )
    _, spec = pod(manifests, "scheduler")
    assert {"name": "auth", "mountPath": "/tmp/auth"} in spec["containers"][0]["volumeMounts"]


# --- extraEnvFrom -------------------------------------------------------------------------------------

ENV_FROM_PREFIXES = [
    ("airflow-options", "scheduler", "AIRFLOW__"),
    ("core-section", "workers", "AIRFLOW__CORE__"),
    ("lower-case", "apiServer", "airflow__core__"),
    ("completes-to-options", "triggerer", "AIRFLOW_"),  # + key _CORE__EXECUTOR
    ("one-letter", "dagProcessor", "A"),
    ("completes-to-airflow-config", "migrateDatabase", "AIRFLOW_CONF"),
]


@pytest.mark.parametrize(("component", "prefix"), [pytest.param(c, p, id=i) for i, c, p in ENV_FROM_PREFIXES])
@pytest.mark.parametrize("reference", ["configMapRef", "secretRef"])
def test_env_from_prefix_that_reaches_reserved_names_is_refused(
    component: str, prefix: str, reference: str
) -> None:
    key = f"airflow.{component}.extraEnvFrom"
    error = render_error(*_json(key, [{reference: {"name": "team-env"}, "prefix": prefix}]))
    assert f"{key}[0].prefix" in error, error


ENV_FROM_SHAPES = [
    ("secret-name-underscore", [{"secretRef": {"name": "team_env"}}], "/0/secretRef/name"),
    ("config-map-name-upper", [{"configMapRef": {"name": "TeamEnv"}}], "/0/configMapRef/name"),
    ("name-empty-label", [{"configMapRef": {"name": "team..env"}}], "/0/configMapRef/name"),
    ("name-newline", [{"secretRef": {"name": "team\nenv"}}], "/0/secretRef/name"),
    ("name-missing", [{"secretRef": {"optional": True}}], "/0/secretRef"),
    ("both-sources", [{"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}], "/0"),
    ("no-source", [{"prefix": "TEAM_"}], "/0"),
    ("unknown-field", [{"secretRef": {"name": "a"}, "sufix": "X"}], "/0"),
    ("prefix-space", [{"secretRef": {"name": "a"}, "prefix": "TEAM X"}], "/0/prefix"),
]


@pytest.mark.parametrize(("sources", "pointer"), [pytest.param(s, p, id=i) for i, s, p in ENV_FROM_SHAPES])
def test_env_from_sources_kubernetes_would_refuse_are_refused(sources: list, pointer: str) -> None:
    error = render_error(*_json("airflow.triggerer.extraEnvFrom", sources))
    assert f"/airflow/triggerer/extraEnvFrom{pointer}" in error, error


def test_env_from_without_prefix_or_with_a_safe_one_renders() -> None:
    sources = [
        {"configMapRef": {"name": "corp-proxy"}},
        {"secretRef": {"name": "warehouse.connections", "optional": True}, "prefix": "AIRFLOW_CONN_"},
        {"configMapRef": {"name": "team-vars"}, "prefix": "AIRFLOW_VAR_"},
    ]
    manifests: list[Manifest] = render("values.yaml", *_json("airflow.workers.extraEnvFrom", sources))
    _, spec = pod(manifests, "workers")
    assert spec["containers"][0]["envFrom"] == sources


def test_release_and_worker_namespaces_are_named_in_the_reason() -> None:
    for component, namespace in (("scheduler", NAMESPACE), ("workers", WORKER_NAMESPACE)):
        error = render_error(
            *_json(f"airflow.{component}.extraContainers", [_container(securityContext={"privileged": True})])
        )
        assert f"namespace {namespace}" in error and "namespaces.podSecurityLevel" in error, error
