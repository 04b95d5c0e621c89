"""The DAGs as Airflow parses them, and the pods they would create, checked against the chart's presets."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.param import ParamValidationError
from airflow_platform_pools import UnknownPoolError, pod_settings
from kubernetes.client import models as k8s

from .conftest import DAGS

SYNC_CHAIN = ["start", "drop_destination_db", "create_db", "migrate_data", "end"]
TASK_POOLS = {"drop_destination_db": "general", "create_db": "general", "migrate_data": "ssd"}
PASSWORD_ENV = {"CLICKHOUSE_PASSWORD", "CLICKHOUSE_SOURCE_PASSWORD", "CLICKHOUSE_DESTINATION_PASSWORD"}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="module")
def sync_dag(dagbag: DagBag) -> Any:
    return dagbag.dags["clickhouse_db_sync"]


def _pod(task: Any) -> k8s.V1Pod:
    return task.build_pod_request_obj(dry_run=True)


def test_dags_folder_imports_without_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"clickhouse_db_sync", "node_pool_examples"}


def test_sync_graph_is_a_single_chain(sync_dag: Any) -> None:
    assert sorted(sync_dag.task_ids) == sorted(SYNC_CHAIN)
    for upstream, downstream in itertools.pairwise(SYNC_CHAIN):
        assert sync_dag.get_task(upstream).downstream_task_ids == {downstream}
    assert sync_dag.get_task("end").downstream_task_ids == set()


def test_sync_dag_settings(sync_dag: Any) -> None:
    assert sync_dag.schedule is None
    assert sync_dag.catchup is False
    assert sync_dag.is_paused_upon_creation is True
    assert set(sync_dag.tags) == {"clickhouse", "internal"}
    for task in sync_dag.tasks:
        assert task.retries == 2
        assert task.retry_delay == timedelta(minutes=3)


@pytest.mark.parametrize(("task_id", "pool"), TASK_POOLS.items())
def test_sync_pods_are_placed_by_the_pool_presets(
    sync_dag: Any, presets: dict, task_id: str, pool: str
) -> None:
    expected = presets["pools"][pool]
    pod = _pod(sync_dag.get_task(task_id))
    container = pod.spec.containers[0]

    assert pod.metadata.namespace == expected["namespace"]
    assert pod.spec.service_account_name == expected["serviceAccountName"]
    assert pod.spec.automount_service_account_token is False
    assert [t.to_dict() for t in pod.spec.tolerations] == [
        {**{"operator": None, "toleration_seconds": None}, **toleration}
        for toleration in expected["tolerations"]
    ]
    node_affinity = pod.spec.affinity.node_affinity
    terms = node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
    required = {(e.key, e.operator, tuple(e.values)) for term in terms for e in term.match_expressions}
    assert required == {(key, "In", (value,)) for key, value in expected["nodeLabels"].items()}
    assert container.resources.requests == expected["resources"]["requests"]
    assert container.resources.limits == expected["resources"]["limits"]
    assert container.image == presets["images"]["clickhouseTools"]
    assert pod.spec.security_context == presets["podDefaults"]["securityContext"]
    assert container.security_context == presets["podDefaults"]["containerSecurityContext"]


@pytest.mark.parametrize("task_id", TASK_POOLS)
def test_passwords_come_only_from_secret_refs(sync_dag: Any, presets: dict, task_id: str) -> None:
    container = _pod(sync_dag.get_task(task_id)).spec.containers[0]
    secret_env = {env.name: env for env in container.env or [] if env.name in PASSWORD_ENV}

    assert secret_env, "the task must receive its passwords from the environment"
    for env in secret_env.values():
        assert env.value is None
        assert env.value_from.secret_key_ref.name == presets["clickhouseSync"]["credentialsSecret"]
    arguments = " ".join([*(container.command or []), *(container.args or [])])
    assert "--source-password" not in arguments
    assert "--destination-password" not in arguments


def test_migrate_runs_the_tool_with_the_seed_flags(sync_dag: Any) -> None:
    args = _pod(sync_dag.get_task("migrate_data")).spec.containers[0].args
    assert args[args.index("--skip-patterns") + 1 : args.index("--skip-patterns") + 5] == [
        "copy",
        "test",
        "backup",
        "dict",
    ]
    assert args[args.index("--execute-query-on") + 1] == "source"
    assert "--destination-secure-flag" in args
    assert "--destination-verify-flag" in args


def test_example_dag_has_one_task_per_pool(dagbag: DagBag, presets: dict) -> None:
    dag = dagbag.dags["node_pool_examples"]
    placements = {}
    for task in dag.tasks:
        pod = _pod(task)
        placements[task.task_id] = pod.metadata.namespace
    assert placements == {f"on_{pool}_pool": presets["pools"][pool]["namespace"] for pool in presets["pools"]}
    gpu = _pod(dag.get_task("on_gpu_pool")).spec.containers[0]
    assert gpu.resources.limits["nvidia.com/gpu"] == "1"


def test_unknown_pool_is_a_clear_error() -> None:
    with pytest.raises(UnknownPoolError, match=r"unknown pool 'tpu': the platform defines general, gpu, ssd"):
        pod_settings("tpu")


@pytest.mark.parametrize(
    ("param", "value", "reason"),
    [
        ("destination_db", "", "'' does not match"),
        ("source_db", "drop table; --", "does not match"),
        ("source_port", 0, "0 is less than the minimum of 1"),
        ("destination_host", "", "'' does not match"),
        ("destination_port", "9000", "'9000' is not of type 'integer'"),
    ],
)
def test_bad_params_are_rejected(sync_dag: Any, param: str, value: Any, reason: str) -> None:
    with pytest.raises(ParamValidationError, match=reason):
        sync_dag.params.get_param(param).resolve(value)


def test_destination_equal_to_source_is_refused_before_any_pod(sync_dag: Any) -> None:
    params = dict(sync_dag.params.dump())
    params |= {f"destination_{key}": params[f"source_{key}"] for key in ("host", "port", "db")}
    for task_id in TASK_POOLS:
        hook = sync_dag.get_task(task_id)._pre_execute_hook
        with pytest.raises(ValueError, match=r"is the source database: choose another destination_db"):
            hook({"params": params})
