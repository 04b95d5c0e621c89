"""The pool helper DAG authors use: merging their own settings, GPU safety, Airflow pools, offline presets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow_platform_pools import PresetsError, UnknownPoolError, pod_settings, pool_label_key
from airflow_platform_pools.testing import example_presets_path, restore_presets, use_presets
from kubernetes.client import models as k8s

from tests.chart.rendering import presets as chart_presets
from tests.chart.rendering import render
from tests.facts import GPU_JOBS_NAMESPACE, JOBS_NAMESPACE, NAMESPACE_OF_POOL

from . import example_presets
from .conftest import DAGS

GPU = {"limits": {"nvidia.com/gpu": "1"}}


def _pod(**kwargs: Any) -> k8s.V1Pod:
    operator = KubernetesPodOperator(task_id="job", image="team/job:1", **kwargs)
    return operator.build_pod_request_obj(dry_run=True)


@pytest.fixture
def custom_presets(presets: dict, tmp_path: Path) -> Iterator[Any]:
    """Use a modified copy of the chart's presets for one test."""
    previous: list[str | None] = []

    def use(document: dict) -> None:
        path = tmp_path / "presets.json"
        path.write_text(json.dumps(document))
        previous.append(use_presets(path))

    yield use
    if previous:
        restore_presets(previous[0])


def test_callers_add_labels_annotations_env_volumes_without_type_error(presets: dict) -> None:
    volume = k8s.V1Volume(name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource())
    mount = k8s.V1VolumeMount(name="scratch", mount_path="/scratch")
    env = [k8s.V1EnvVar(name="MODE", value="full")]
    pod = _pod(**pod_settings(
        "ssd", labels={"team": "data"}, annotations={"owner": "data@example.com"}, env_vars=env,
        volumes=[volume], volume_mounts=[mount], on_finish_action="keep_pod",
    ))  # fmt: skip
    container = pod.spec.containers[0]
    assert pod.metadata.labels["team"] == "data"
    assert pod.metadata.labels[presets["poolLabelKey"]] == "ssd"
    assert pod.metadata.annotations["owner"] == "data@example.com"
    assert [(e.name, e.value) for e in container.env] == [("MODE", "full")]
    assert [v.name for v in pod.spec.volumes] == ["scratch"]
    assert [m.mount_path for m in container.volume_mounts] == ["/scratch"]
    assert pod.metadata.namespace == NAMESPACE_OF_POOL["ssd"]
    # Placement is still the pool's.
    assert {t.key for t in pod.spec.tolerations} == {presets["poolLabelKey"]}


def test_the_pool_label_cannot_be_overridden(presets: dict) -> None:
    settings = pod_settings("general", labels={presets["poolLabelKey"]: "gpu"})
    assert settings["labels"][presets["poolLabelKey"]] == "general"


def test_on_finish_action_override_reaches_the_operator() -> None:
    operator = KubernetesPodOperator(
        task_id="x", image="i", **pod_settings("general", on_finish_action="keep_pod")
    )
    assert operator.on_finish_action.value == "keep_pod"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"namespace": "Team_Data"}, "pods of pool 'general' run in"),
        ({"namespace": "team-data"}, "pods of pool 'general' run in"),
        ({"namespace": "kube-system"}, "pods of pool 'general' run in"),
        ({"namespace": ""}, "pods of pool 'general' run in"),
        ({"on_finish_action": "delete"}, "use one of"),
    ],
)
def test_bad_overrides_are_clear_errors(override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pod_settings("general", **override)


@pytest.mark.parametrize("pool", sorted(NAMESPACE_OF_POOL))
def test_another_pools_namespace_is_refused_and_the_pools_own_is_accepted(pool: str) -> None:
    """A pod in another pool's namespace would run uncounted by that namespace's Airflow pool (or be
    refused by the worker's RBAC at run time): refused when the DAG is parsed, naming the pool."""
    resources = GPU if pool == "gpu" else None
    own = NAMESPACE_OF_POOL[pool]
    others = set(NAMESPACE_OF_POOL.values()) - {own}
    assert others, "the kind presets have pools in more than one namespace"
    for namespace in others:
        with pytest.raises(ValueError, match=rf"pods of pool '{pool}' run in '{own}'"):
            pod_settings(pool, namespace=namespace, resources=resources)
    assert pod_settings(pool, namespace=own, resources=resources)["namespace"] == own


def test_default_resources_can_be_removed_or_overridden(presets: dict) -> None:
    defaults = presets["pools"]["general"]["resources"]
    settings = pod_settings(
        "general", resources={"limits": {"cpu": None, "memory": "3Gi"}, "requests": {"cpu": "1"}}
    )
    resources = _pod(**settings).spec.containers[0].resources
    assert resources.limits == {"memory": "3Gi"}
    assert resources.requests == {**defaults["requests"], "cpu": "1"}
    removed = pod_settings("general", resources={"limits": {"cpu": None, "memory": None}})
    assert _pod(**removed).spec.containers[0].resources.limits is None


NO_GPU = [
    None, {}, {"limits": {"nvidia.com/gpu": "0"}}, {"limits": {"nvidia.com/gpu": None}},
    {"requests": {"nvidia.com/gpu": "1"}},
]  # fmt: skip


@pytest.mark.parametrize("resources", NO_GPU)
def test_gpu_pool_without_a_gpu_is_refused(resources: Any) -> None:
    with pytest.raises(ValueError, match=r"pool 'gpu' is for pods that use nvidia.com/gpu"):
        pod_settings("gpu", resources=resources)


def test_gpu_pool_with_a_gpu_gets_it() -> None:
    limits = _pod(**pod_settings("gpu", resources=GPU)).spec.containers[0].resources.limits
    assert limits["nvidia.com/gpu"] == "1"


def test_tasks_take_a_slot_of_their_namespaces_airflow_pool(presets: dict) -> None:
    for pool, definition in presets["pools"].items():
        settings = pod_settings(pool, resources=GPU if pool == "gpu" else None)
        assert settings["pool"] == definition["namespace"]
        assert KubernetesPodOperator(task_id="x", image="i", **settings).pool == definition["namespace"]
    assert set(presets["airflowPools"]) == {p["namespace"] for p in presets["pools"].values()}


def test_airflow_pools_mirror_the_namespace_quotas() -> None:
    document = chart_presets(render("values.yaml"))
    assert document["airflowPools"][JOBS_NAMESPACE]["slots"] == 50
    assert document["airflowPools"][GPU_JOBS_NAMESPACE]["slots"] == 20
    configured = chart_presets(
        render("values.yaml", "--set", f"presets.airflowPools.slots.{JOBS_NAMESPACE}=7")
    )
    assert configured["airflowPools"][JOBS_NAMESPACE]["slots"] == 7
    disabled = chart_presets(render("values.yaml", "--set", "presets.airflowPools.enabled=false"))
    assert disabled["airflowPools"] == {}
    assert all(pool["airflowPool"] == "" for pool in disabled["pools"].values())


def test_without_airflow_pools_the_helper_sets_none(presets: dict, custom_presets: Any) -> None:
    document = json.loads(json.dumps(presets))
    for pool in document["pools"].values():
        pool["airflowPool"] = ""
    custom_presets(document)
    assert "pool" not in pod_settings("general")


def test_label_key_comes_from_the_pool_definition(presets: dict, custom_presets: Any) -> None:
    custom_presets({**presets, "poolLabelKey": "example.com/node-pool"})
    assert pool_label_key() == "example.com/node-pool"
    assert pod_settings("general")["labels"] == {"example.com/node-pool": "general"}


def test_presets_without_label_key_are_refused(presets: dict, custom_presets: Any) -> None:
    custom_presets({key: value for key, value in presets.items() if key != "poolLabelKey"})
    with pytest.raises(PresetsError, match="poolLabelKey"):
        pod_settings("general")


def test_deferrable_through_the_helper() -> None:
    settings = pod_settings("ssd", deferrable=True, logging_interval=30)
    assert (settings["deferrable"], settings["logging_interval"]) == (True, 30)
    assert "deferrable" not in pod_settings("ssd")


def test_schedule_timeout_follows_the_charts_task_queued_timeout() -> None:
    for values, queued in (("values.yaml", 1800), ("values-kind.yaml", 600)):
        assert chart_presets(render(values))["podDefaults"]["scheduleTimeoutSeconds"] == queued
    own = chart_presets(render("values.yaml", "--set", "presets.scheduleTimeoutSeconds=120"))
    assert own["podDefaults"]["scheduleTimeoutSeconds"] == 120


def test_a_starting_job_pod_is_checked_as_often_as_the_chart_says() -> None:
    """The operator's own 5 s between start checks added up to 5 s to every task."""
    assert chart_presets(render("values.yaml"))["podDefaults"]["startupCheckIntervalSeconds"] == 1
    assert pod_settings("general")["startup_check_interval_seconds"] == 1
    assert pod_settings("general", startup_check_interval_seconds=3)["startup_check_interval_seconds"] == 3
    own = chart_presets(render("values.yaml", "--set", "presets.podDefaults.startupCheckIntervalSeconds=7"))
    assert own["podDefaults"]["startupCheckIntervalSeconds"] == 7


def test_presets_without_a_start_check_interval_keep_the_operators(
    presets: dict, custom_presets: Any
) -> None:
    """Presets of a chart from before the value: the operator's default, not an error."""
    defaults = {k: v for k, v in presets["podDefaults"].items() if k != "startupCheckIntervalSeconds"}
    custom_presets({**presets, "podDefaults": defaults})
    assert "startup_check_interval_seconds" not in pod_settings("general")


def test_shipped_example_presets_are_what_the_chart_publishes() -> None:
    """A DAG author's CI parses against the example: it must not drift from the chart."""
    shipped = json.loads(example_presets_path().read_text())
    assert shipped == example_presets.expected(), "run: .venv/bin/python -m tests.dags.example_presets"


def test_dags_parse_with_the_example_presets_and_no_cluster() -> None:
    previous = use_presets(example_presets_path())
    try:
        bag = DagBag(dag_folder=str(DAGS))
        assert bag.import_errors == {}
        assert "clickhouse_db_sync" in bag.dag_ids
    finally:
        restore_presets(previous)


pytest_plugins = ["airflow_platform_pools.testing"]


def test_the_shipped_pytest_fixture_sets_the_presets(platform_presets: Path) -> None:
    assert platform_presets == example_presets_path()
    assert pod_settings("general")["namespace"] == NAMESPACE_OF_POOL["general"]


def test_job_pods_pull_with_the_platform_credential_and_callers_add_theirs(custom_presets: Any) -> None:
    manifests = render(
        "values-kind.yaml",
        *("--set", "images.registry=registry.example.com", "--set", "images.pullSecrets[0]=corp-pull"),
        *("--set", "images.pullCredentials.username=u", "--set", "images.pullCredentials.password=p"),
    )
    custom_presets(chart_presets(manifests))
    pod = _pod(**pod_settings("general"))
    assert [s.name for s in pod.spec.image_pull_secrets] == ["corp-pull", "airflow-platform-image-pull"]
    extra = pod_settings("ssd", image_pull_secrets=[k8s.V1LocalObjectReference(name="team-pull")])
    assert [s.name for s in _pod(**extra).spec.image_pull_secrets] == [
        "corp-pull", "airflow-platform-image-pull", "team-pull",
    ]  # fmt: skip


def test_without_a_platform_credential_job_pods_have_no_pull_secret(presets: dict) -> None:
    assert "imagePullSecrets" not in presets["podDefaults"]
    assert not _pod(**pod_settings("general")).spec.image_pull_secrets


# What a DAG author could try to get off their pool or around the platform's checks: each was accepted
# (and failed at admission or scheduling, or silently ran elsewhere) before the helper refused it.
ESCAPES = [
    ("general", {"resources": {"limits": {"memory": "lots"}}}, r"'lots' is not a Kubernetes quantity"),
    ("general", {"resources": {"requests": {"cpu": "-1"}}}, r"'-1' is not a Kubernetes quantity"),
    ("general", {"resources": {"limits": {"memory": "2GB"}}}, r"'2GB' is not a Kubernetes quantity"),
    ("gpu", {"resources": {"limits": {"nvidia.com/gpu": "one"}}}, r"'one' is not a Kubernetes quantity"),
    (
        "general",
        {"resources": {"requests": {"cpu": "4"}}},
        r"requests\['cpu'\] \(4\) is above limits\['cpu'\] \(1\)",
    ),
    ("general", {"resources": {"requests": {"memory": "2Gi"}}}, r"requests\['memory'\] \(2Gi\) is above"),
    ("general", {"resources": "1Gi"}, "resources must be a mapping"),
    ("general", {"resources": {"limits": "1Gi"}}, r"resources\['limits'\] must be a mapping"),
    (
        "general",
        {"container_resources": k8s.V1ResourceRequirements(requests={"cpu": "64"})},
        "use resources=",
    ),
    (
        "general",
        {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}},
        "node affinity places the pod",
    ),
    (
        "general",
        {"tolerations": [k8s.V1Toleration(operator="Exists")]},
        "without a key tolerates every taint",
    ),
    (
        "general",
        {"tolerations": [k8s.V1Toleration(key="airflow-platform.io/pool", value="gpu", effect="NoSchedule")]},
        "another pool's taint",
    ),
    ("ssd", {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}, "another pool's taint"),
    ("general", {"node_selector": {"airflow-platform.io/pool": "gpu"}}, "choose the pool by name"),
    ("ssd", {"node_selector": {"nvidia.com/gpu.present": "true"}}, "choose the pool by name"),
    ("general", {"service_account_name": "default"}, "admission policy refuses any other"),
    ("general", {"env_vars": [k8s.V1EnvVar(name="X", value="$(CLICKHOUSE_PASSWORD)")]}, r"contains \$\("),
    ("general", {"env_vars": {"X": "prefix-$(AIRFLOW__CORE__FERNET_KEY)"}}, r"contains \$\("),
    ("general", {"env_vars": [{"name": "X", "value": "$$$(SECRET)"}]}, r"contains \$\("),
]


@pytest.mark.parametrize(("pool", "overrides", "message"), ESCAPES)
def test_author_settings_that_escape_the_pool_are_refused(pool: str, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pod_settings(pool, **overrides)


def test_author_settings_that_stay_on_the_pool_are_kept(presets: dict) -> None:
    anti = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}}  # fmt: skip
    pod = _pod(**pod_settings(
        "general", affinity=anti, env_vars={"LITERAL": "$$(not expanded)"},
        tolerations=[k8s.V1Toleration(key="team", operator="Exists")],
        node_selector={"team": "data"},
        resources={"requests": {"memory": "1e9"}, "limits": {"memory": "1Gi"}},
    ))  # fmt: skip
    assert pod.spec.affinity.pod_anti_affinity is not None
    required = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    terms = required.node_selector_terms
    assert terms[0].match_expressions[0].values == ["general"]
    assert pod.spec.node_selector == {"team": "data"}


def test_extended_resources_above_the_pools_nodes_are_refused(presets: dict, custom_presets: Any) -> None:
    document = json.loads(json.dumps(presets))
    document["pools"]["gpu"]["extendedResources"] = {"nvidia.com/gpu": "8"}
    custom_presets(document)
    assert pod_settings("gpu", resources={"limits": {"nvidia.com/gpu": "8"}})
    with pytest.raises(ValueError, match=r"above what a node of pool 'gpu' has \(8\)"):
        pod_settings("gpu", resources={"limits": {"nvidia.com/gpu": "9"}})


# What a DAG author may pass in the wrong shape: each failed inside the helper with a bare TypeError or
# AttributeError, was split into characters (a string where a list belongs), or only failed when the API
# server refused the pod.
WRONG_SHAPES = [
    ({"image_pull_secrets": "registry-cred"}, "image_pull_secrets must be a list"),
    ({"secrets": "db-password"}, "secrets must be a list"),
    ({"volumes": {"name": "scratch"}}, "volumes must be a list"),
    ({"tolerations": {"key": "team"}}, "tolerations must be a list"),
    ({"env_vars": "MODE=full"}, "env_vars must be a list"),
    ({"labels": ["team"]}, "labels must be a mapping"),
    ({"annotations": "owner=data"}, "annotations must be a mapping"),
    ({"node_selector": ["disk=ssd"]}, "node_selector must be a mapping"),
    ({"labels": {"team": "data science"}}, r"labels\['team'\]: 'data science' is not a label value"),
    ({"labels": {"team": "x" * 64}}, "is not a label value"),
    ({"labels": {"team": "data\n"}}, "is not a label value"),
    ({"labels": {"team": 5}}, "is not a string"),
    ({"labels": {"te am": "data"}}, "'te am' is not a Kubernetes key"),
    ({"labels": {"Example.com/team": "data"}}, "is not a Kubernetes key"),
    ({"annotations": {"owner": None}}, "is not a string"),
    ({"annotations": {"owner mail": "a@example.com"}}, "is not a Kubernetes key"),
    ({"node_selector": {"disk": "fast ssd"}}, "is not a label value"),
    ({"env_vars": {"MODE": 1}}, "names and values are strings"),
]


@pytest.mark.parametrize(("overrides", "message"), WRONG_SHAPES)
def test_arguments_of_the_wrong_shape_are_refused_naming_them(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pod_settings("general", **overrides)


# Environment variable names the API server refuses (only when the task ran and created the pod).
BAD_ENV_NAMES = [
    ({"env_vars": {"MY VAR": "x"}}, r"env_vars: 'MY VAR' is not an environment variable name"),
    ({"env_vars": {"1ST": "x"}}, r"env_vars: '1ST' is not an environment variable name"),
    ({"env_vars": {"A=B": "x"}}, r"env_vars: 'A=B'"),
    ({"env_vars": [k8s.V1EnvVar(name="OK"), k8s.V1EnvVar(name="BAD\n")]}, r"env_vars\[1\]: 'BAD\\n'"),
    ({"env_vars": [{"name": "$(X)", "value": "1"}]}, r"env_vars\[0\]: '\$\(X\)'"),
    (
        {"secrets": [Secret("env", "DB PASSWORD", "db", "password")]},
        r"secrets\[0\] deploy_target: 'DB PASSWORD'",
    ),
    (
        {"env_from": [k8s.V1EnvFromSource(prefix="MY ", config_map_ref=k8s.V1ConfigMapEnvSource(name="cm"))]},
        r"env_from\[0\] prefix: 'MY '",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_ENV_NAMES)
def test_environment_variable_names_kubernetes_refuses_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pod_settings("general", **overrides)


def test_environment_variable_names_kubernetes_accepts_are_kept() -> None:
    """Kubernetes accepts more than C identifiers: -, . and a leading _ or . too."""
    names = ["MODE", "_private", "my-var", "my.var", ".dot", "x1"]
    secret = Secret("env", "db.password", "db", "password")
    pod = _pod(**pod_settings("general", env_vars={name: "1" for name in names}, secrets=[secret]))
    env = [variable.name for variable in pod.spec.containers[0].env]
    assert env == [*names, "DB.PASSWORD"]  # Airflow upper-cases a Secret's variable name


# Numbers that were accepted at parse time and failed (or spun) when the task ran.
BAD_NUMBERS = [
    ({"logging_interval": 0, "deferrable": True}, "logging_interval must be an integer >= 1 or None, got 0"),
    ({"logging_interval": -5, "deferrable": True}, "logging_interval must be an integer >= 1"),
    ({"logging_interval": "30"}, "logging_interval must be an integer >= 1 or None, got '30'"),
    ({"logging_interval": True}, "logging_interval must be an integer"),
    ({"startup_timeout_seconds": -1}, "startup_timeout_seconds must be an integer >= 1, got -1"),
    ({"startup_timeout_seconds": 0}, "startup_timeout_seconds must be an integer >= 1"),
    ({"startup_timeout_seconds": None}, "startup_timeout_seconds must be an integer >= 1, got None"),
    ({"schedule_timeout_seconds": 0}, "schedule_timeout_seconds must be an integer >= 1 or None"),
    ({"active_deadline_seconds": 0}, "active_deadline_seconds must be an integer >= 1"),
    ({"active_deadline_seconds": 1.5}, "active_deadline_seconds must be an integer"),
    ({"startup_check_interval_seconds": 0}, "startup_check_interval_seconds must be an integer >= 1"),
    ({"termination_grace_period": -1}, "termination_grace_period must be an integer >= 0"),
    ({"poll_interval": 0}, "poll_interval must be a number above 0, got 0"),
    ({"poll_interval": float("inf")}, "poll_interval must be a number above 0"),
    ({"base_container_status_polling_interval": -0.5}, "base_container_status_polling_interval must be"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_NUMBERS)
def test_numbers_the_operator_cannot_use_are_refused_naming_them(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pod_settings("general", **arguments)


def test_numbers_at_their_limits_are_kept() -> None:
    settings = pod_settings(
        "general", deferrable=True, logging_interval=1, startup_timeout_seconds=1, active_deadline_seconds=1,
        termination_grace_period=0, poll_interval=0.5, schedule_timeout_seconds=None,
    )  # fmt: skip
    kept = ("logging_interval", "termination_grace_period", "poll_interval", "schedule_timeout_seconds")
    assert [settings[name] for name in kept] == [1, 0, 0.5, None]
    assert pod_settings("general", deferrable=True, logging_interval=None)["logging_interval"] is None


@pytest.mark.parametrize("pool", [["general"], {"general": 1}, 1])
def test_a_pool_name_that_is_no_string_is_an_unknown_pool(pool: Any) -> None:
    with pytest.raises(UnknownPoolError, match="the platform defines general, gpu, ssd"):
        pod_settings(pool)


def test_qualified_keys_empty_label_values_and_free_annotations_are_kept(presets: dict) -> None:
    pod = _pod(**pod_settings(
        "general", labels={"example.com/team": "data", "tier": ""},
        annotations={"example.com/owner": "Data team <data@example.com>\\nrota: weekly"},
        node_selector={"kubernetes.io/arch": "amd64"},
        image_pull_secrets=(k8s.V1LocalObjectReference(name="team-cred"),),
    ))  # fmt: skip
    assert pod.metadata.labels["example.com/team"] == "data" and pod.metadata.labels["tier"] == ""
    assert pod.metadata.annotations["example.com/owner"].startswith("Data team <")
    assert pod.spec.node_selector["kubernetes.io/arch"] == "amd64"
    assert "team-cred" in [secret.name for secret in pod.spec.image_pull_secrets]
