"""The DAGs as Airflow parses them, and the pods they create (templates rendered), against the presets."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.param import ParamValidationError
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow_platform_pools import UnknownPoolError, pod_settings
from clickhouse_migrate.cli import parse_arguments
from kubernetes.client import models as k8s

from tests.facts import CLICKHOUSE_NAMESPACE

from .conftest import DAGS
from .rendering import dag_module, rendered_pod, resolve, run_params

SYNC_CHAIN = ["start", "preflight", "drop_destination_db", "create_db", "migrate_data", "end"]
TASK_POOLS = {
    "preflight": "ssd",
    "drop_destination_db": "general",
    "create_db": "general",
    "migrate_data": "ssd",
}
PASSWORD_ENV = {"CLICKHOUSE_PASSWORD", "CLICKHOUSE_SOURCE_PASSWORD", "CLICKHOUSE_DESTINATION_PASSWORD"}
PARAMS = ("source_profile", "source_db", "destination_profile", "destination_db", "strategy")
# What someone who may trigger the DAG could try in a param that reaches a pod argument.
INJECTIONS = (
    "$(cat /proc/self/environ)", "$(CLICKHOUSE_PASSWORD)", "`id`", "demo; DROP DATABASE demo", "demo copy",
    "demo\ncopy", "demo`", "demo'", 'demo"', "--query=SELECT 1", "-h", "../etc", "demo$", "", "${HOME}",
    f"clickhouse-source.{CLICKHOUSE_NAMESPACE}.svc.cluster.local", "10.0.0.1",
    # Python's `$` also matches before a final newline: these once passed the database patterns.
    "demo\n", "demo_copy\n", "recreate\n", "demo\r\n",
)  # fmt: skip
# System databases in disguise: case, quoting, spaces, newlines and Unicode look-alikes.
SYSTEM_DATABASES = (
    "system", "SYSTEM", "System", "default", "DEFAULT", "INFORMATION_SCHEMA", "information_schema",
    "Information_Schema", "system\n", "DEFAULT\n", "system ", " system", "`system`", '"default"', "'system'",
    "system\t", "sys\u200btem", "\u0455ystem", "\uff33\uff39\uff33\uff34\uff25\uff2d", "Sy\u017ftem",
    "defau\u0131t", "INFORMATION\u2010SCHEMA", "system;", "system.tables",
)  # fmt: skip


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="module")
def sync_dag(dagbag: DagBag) -> Any:
    return dagbag.dags["clickhouse_db_sync"]


@pytest.fixture(scope="module")
def sync(sync_dag: Any) -> Any:
    return dag_module(sync_dag.get_task("preflight"))


def test_dags_folder_imports_without_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"clickhouse_db_sync", "node_pool_examples"}


def test_sync_graph_is_a_single_chain_with_preflight_before_the_drop(sync_dag: Any) -> None:
    assert sorted(sync_dag.task_ids) == sorted(SYNC_CHAIN)
    for upstream, downstream in itertools.pairwise(SYNC_CHAIN):
        assert sync_dag.get_task(upstream).downstream_task_ids == {downstream}
    assert sync_dag.get_task("end").downstream_task_ids == set()


def test_one_run_at_a_time_and_every_task_and_pod_has_a_deadline(sync_dag: Any, presets: dict) -> None:
    timeouts = presets["clickhouseSync"]["timeouts"]
    assert sync_dag.max_active_runs == 1
    assert sync_dag.dagrun_timeout == timedelta(minutes=timeouts["runMinutes"])
    assert sync_dag.schedule is None and sync_dag.catchup is False and sync_dag.is_paused_upon_creation
    for task_id in TASK_POOLS:
        task = sync_dag.get_task(task_id)
        assert task.execution_timeout is not None, task_id
        assert task.active_deadline_seconds == task.execution_timeout.total_seconds(), task_id
        assert rendered_pod(sync_dag, task_id).spec.active_deadline_seconds == task.active_deadline_seconds
        assert task.retries == presets["clickhouseSync"]["retries"]


def test_retry_only_what_can_succeed_on_retry(sync_dag: Any) -> None:
    assert sync_dag.get_task("preflight").retry_exit_codes == {3}
    assert sync_dag.get_task("migrate_data").retry_exit_codes == {3}
    assert sync_dag.get_task("drop_destination_db").retry_exit_codes == {209, 210}


def test_migrate_is_deferrable_and_streams_its_log(sync_dag: Any, presets: dict) -> None:
    task = sync_dag.get_task("migrate_data")
    assert task.deferrable is True
    assert task.logging_interval == presets["clickhouseSync"]["loggingIntervalSeconds"]


def test_pods_log_events_and_wait_to_be_scheduled_as_long_as_the_queue(sync_dag: Any, presets: dict) -> None:
    for task_id in TASK_POOLS:
        task = sync_dag.get_task(task_id)
        assert task.log_events_on_failure is True
        assert task.schedule_timeout_seconds == presets["podDefaults"]["scheduleTimeoutSeconds"] == 600


@pytest.mark.parametrize(("task_id", "pool"), TASK_POOLS.items())
def test_sync_pods_are_placed_by_the_pool_presets(
    sync_dag: Any, presets: dict, task_id: str, pool: str
) -> None:
    expected = presets["pools"][pool]
    pod = rendered_pod(sync_dag, task_id)
    container = pod.spec.containers[0]

    assert pod.metadata.namespace == expected["namespace"]
    assert pod.metadata.labels[presets["poolLabelKey"]] == pool
    assert pod.spec.service_account_name == expected["serviceAccountName"]
    assert pod.spec.automount_service_account_token is False
    node_affinity = pod.spec.affinity.node_affinity
    terms = node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
    required = {(e.key, e.operator, tuple(e.values)) for term in terms for e in term.match_expressions}
    assert required == {(key, "In", (value,)) for key, value in expected["nodeLabels"].items()}
    assert container.resources.requests == expected["resources"]["requests"]
    assert container.resources.limits == expected["resources"]["limits"]
    assert container.image == presets["images"]["clickhouseTools"]
    assert pod.spec.security_context == presets["podDefaults"]["securityContext"]
    assert container.security_context == presets["podDefaults"]["containerSecurityContext"]
    assert sync_dag.get_task(task_id).pool == expected["airflowPool"] == expected["namespace"]


@pytest.mark.parametrize("task_id", TASK_POOLS)
def test_no_shell_and_no_env_reference_but_the_password(sync_dag: Any, task_id: str) -> None:
    container = rendered_pod(sync_dag, task_id).spec.containers[0]
    argv = [*container.command, *container.args]
    assert argv[0] in {"clickhouse-client", "clickhouse-migrate"}
    assert not {"bash", "sh", "-c"} & set(argv)
    references = [arg for arg in argv if "$(" in arg]
    assert references == (["$(CLICKHOUSE_PASSWORD)"] if argv[0] == "clickhouse-client" else [])
    assert all("{{" not in arg and "{%" not in arg for arg in argv), argv


@pytest.mark.parametrize("task_id", TASK_POOLS)
def test_passwords_come_from_the_chosen_profiles_secrets(sync_dag: Any, presets: dict, task_id: str) -> None:
    profiles = presets["clickhouseSync"]["profiles"]
    container = rendered_pod(sync_dag, task_id).spec.containers[0]
    secret_env = {env.name: env for env in container.env or [] if env.name in PASSWORD_ENV}

    expected = {"CLICKHOUSE_PASSWORD": "destination", "CLICKHOUSE_SOURCE_PASSWORD": "source",
                "CLICKHOUSE_DESTINATION_PASSWORD": "destination"}  # fmt: skip
    assert secret_env, "the task must receive its passwords from the environment"
    for name, env in secret_env.items():
        profile = profiles[presets["clickhouseSync"][expected[name]]["profile"]]
        assert env.value is None
        assert (env.value_from.secret_key_ref.name, env.value_from.secret_key_ref.key) == (
            profile["secretName"], profile["passwordKey"])  # fmt: skip
    assert not any("password" in arg for arg in container.args if arg.startswith("--source"))


def test_preflight_is_the_tools_dry_run_with_the_runs_endpoints(sync_dag: Any, presets: dict) -> None:
    profiles = presets["clickhouseSync"]["profiles"]
    args = rendered_pod(
        sync_dag, "preflight", source_profile="demo-destination", destination_profile="demo-source",
        source_db="other", destination_db="target", strategy="swap",
    ).spec.containers[0].args  # fmt: skip
    flag = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    assert "--dry-run" in args and "--verify" not in args
    assert (flag["--source-host"], flag["--source-port"], flag["--source-db"]) == (
        profiles["demo-destination"]["host"], str(profiles["demo-destination"]["port"]), "other")  # fmt: skip
    assert (flag["--destination-host"], flag["--destination-db"]) == (
        profiles["demo-source"]["host"],
        "target",
    )
    assert flag["--strategy"] == "swap"


@pytest.mark.parametrize("strategy", ["recreate", "swap"])
def test_migrate_runs_the_tool_with_the_strategy_and_seed_flags(sync_dag: Any, strategy: str) -> None:
    args = rendered_pod(sync_dag, "migrate_data", strategy=strategy).spec.containers[0].args
    start = args.index("--skip-patterns") + 1
    assert args[start : start + 4] == ["copy", "test", "backup", "dict"]
    assert args[args.index("--execute-query-on") + 1] == "source"
    assert args[args.index("--strategy") + 1] == strategy
    assert args[args.index("--destination-secure-flag") + 1] == "n"
    assert "--verify" in args and "--dry-run" not in args


def test_client_tasks_run_one_statement_on_the_destination(sync_dag: Any, presets: dict) -> None:
    destination = presets["clickhouseSync"]["profiles"]["demo-destination"]
    drop = rendered_pod(sync_dag, "drop_destination_db", destination_db="target_db").spec.containers[0]
    create = rendered_pod(sync_dag, "create_db", destination_db="target_db").spec.containers[0]
    assert drop.args[-1] == "--query=DROP DATABASE IF EXISTS `target_db`"
    assert create.args[-1] == "--query=CREATE DATABASE IF NOT EXISTS `target_db`"
    assert f"--host={destination['host']}" in drop.args
    assert drop.args[0] == "--config-file=/etc/clickhouse-client-platform/plain.xml"
    assert {m.mount_path for m in drop.volume_mounts} >= {"/etc/clickhouse-client-platform"}


@pytest.mark.parametrize(
    ("secure", "verify", "config"),
    [(True, True, "tls-verify"), (True, False, "tls-no-verify"), (False, True, "plain")],
)
def test_client_tasks_honour_the_profiles_tls_and_verify_flags(
    sync_dag: Any, sync: Any, monkeypatch: pytest.MonkeyPatch, secure: bool, verify: bool, config: str
) -> None:
    profile = {**sync.PROFILES["demo-destination"], "secure": secure, "verify": verify}
    monkeypatch.setitem(sync.PROFILES, "demo-destination", profile)
    for task_id in ("drop_destination_db", "create_db"):
        args = rendered_pod(sync_dag, task_id).spec.containers[0].args
        assert args[0] == f"--config-file=/etc/clickhouse-client-platform/{config}.xml"
    migrate = rendered_pod(sync_dag, "migrate_data").spec.containers[0].args
    assert migrate[migrate.index("--destination-secure-flag") + 1] == ("y" if secure else "n")
    # the tool refuses --destination-verify-flag y without TLS (nothing to verify)
    assert migrate[migrate.index("--destination-verify-flag") + 1] == ("y" if secure and verify else "n")


@pytest.mark.parametrize(("secure", "verify"), itertools.product([True, False], repeat=2))
@pytest.mark.parametrize("strategy", ["recreate", "swap"])
@pytest.mark.parametrize("task_id", ["preflight", "migrate_data"])
def test_the_tool_accepts_every_command_line_the_dag_renders(
    sync_dag: Any, sync: Any, monkeypatch: pytest.MonkeyPatch, secure: bool, verify: bool, strategy: str,
    task_id: str,
) -> None:  # fmt: skip
    """The tool refuses flags another one makes meaningless (exit 2, a failed run): the DAG passes none."""
    profile = {**sync.PROFILES["demo-destination"], "secure": secure, "verify": verify}
    monkeypatch.setitem(sync.PROFILES, "demo-destination", profile)
    args = rendered_pod(sync_dag, task_id, strategy=strategy).spec.containers[0].args
    parsed = parse_arguments(args)  # exits (SystemExit 2) on a refused combination
    assert (parsed.strategy, parsed.destination_verify_flag) == (strategy, secure and verify)


def test_params_are_profiles_databases_and_strategy_only(sync_dag: Any, presets: dict) -> None:
    assert set(sync_dag.params) == set(PARAMS)
    profiles = sorted(presets["clickhouseSync"]["profiles"])
    for side in ("source", "destination"):
        assert sync_dag.params.get_param(f"{side}_profile").schema["enum"] == profiles
    assert sync_dag.params.get_param("strategy").schema["enum"] == ["recreate", "swap"]


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_attempts_are_rejected_in_every_param(sync_dag: Any, param: str, value: str) -> None:
    with pytest.raises(ParamValidationError):
        resolve(sync_dag, param, value)


@pytest.mark.parametrize("param", ["source_db", "destination_db"])
@pytest.mark.parametrize("name", SYSTEM_DATABASES)
def test_a_system_database_is_never_source_or_destination(
    sync_dag: Any, sync: Any, param: str, name: str
) -> None:
    with pytest.raises(ParamValidationError):
        resolve(sync_dag, param, name)
    # Checked again before each task, on the run's params as given.
    with pytest.raises(AirflowFailException, match=r"system database|not a database name"):
        sync.check_run(run_params(sync_dag) | {param: name}, CLICKHOUSE_NAMESPACE)


def test_databases_that_only_start_like_a_system_one_are_fine(sync_dag: Any) -> None:
    for name in ("system2", "defaults", "my_system", "information_schema_copy", "_system", "Default_1"):
        assert resolve(sync_dag, "destination_db", name) == name
        assert resolve(sync_dag, "source_db", name) == name


@pytest.mark.parametrize(
    "alias",
    [
        "clickhouse-source",
        "CLICKHOUSE-SOURCE",
        f"Clickhouse-Source.{CLICKHOUSE_NAMESPACE}",
        f"clickhouse-source.{CLICKHOUSE_NAMESPACE}.svc",
        f"clickhouse-source.{CLICKHOUSE_NAMESPACE}.svc.cluster.local",
        f"CLICKHOUSE-SOURCE.{CLICKHOUSE_NAMESPACE.upper()}.SVC.CLUSTER.LOCAL",
    ],
)
def test_same_server_under_another_name_is_refused_before_any_drop(
    sync_dag: Any, sync: Any, monkeypatch: pytest.MonkeyPatch, alias: str
) -> None:
    monkeypatch.setitem(sync.PROFILES, "alias", {**sync.PROFILES["demo-source"], "host": alias})
    params = run_params(sync_dag) | {"destination_profile": "alias", "destination_db": "demo"}
    for task_id in TASK_POOLS:
        hook = sync_dag.get_task(task_id)._pre_execute_hook
        with pytest.raises(AirflowFailException, match="is the source database"):
            hook({"params": params, "task": sync_dag.get_task(task_id)})


@pytest.mark.parametrize(("first", "second"), [("localhost", "127.0.0.1"), ("LOCALHOST", "127.0.0.1"),
                                               ("127.0.0.1", "127.1")])  # fmt: skip
def test_same_server_by_address_is_refused(sync: Any, first: str, second: str) -> None:
    profile = {"port": 9000, "user": "default"}
    assert sync.same_server({**profile, "host": first}, {**profile, "host": second}, CLICKHOUSE_NAMESPACE)


def test_other_servers_or_databases_are_allowed(sync_dag: Any, sync: Any) -> None:
    profile = {"port": 9000}
    source, destination = (
        {**profile, "host": "clickhouse-source"},
        {**profile, "host": "clickhouse-destination"},
    )
    assert not sync.same_server(source, destination, CLICKHOUSE_NAMESPACE)
    assert not sync.same_server({"port": 9000, "host": "127.0.0.1"}, {"port": 9440, "host": "127.0.0.1"}, "x")
    sync.check_run(run_params(sync_dag) | {"destination_profile": "demo-source", "destination_db": "x"}, "ns")


def test_a_secure_source_profile_is_refused(
    sync_dag: Any, sync: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sync.PROFILES, "demo-source", {**sync.PROFILES["demo-source"], "secure": True})
    with pytest.raises(AirflowFailException, match="uses TLS"):
        sync.check_run(run_params(sync_dag), CLICKHOUSE_NAMESPACE)


def test_swap_skips_the_drop_and_create_still_runs(sync_dag: Any) -> None:
    drop = sync_dag.get_task("drop_destination_db")
    with pytest.raises(AirflowSkipException):
        drop._pre_execute_hook({"params": run_params(sync_dag, strategy="swap"), "task": drop})
    drop._pre_execute_hook({"params": run_params(sync_dag, strategy="recreate"), "task": drop})
    assert sync_dag.get_task("create_db").trigger_rule == "none_failed"
    assert sync_dag.get_task("migrate_data").trigger_rule == "all_success"


def test_example_dag_has_one_task_per_pool(dagbag: DagBag, presets: dict) -> None:
    dag = dagbag.dags["node_pool_examples"]
    pods = {task.task_id: task.build_pod_request_obj(dry_run=True) for task in dag.tasks}
    placements = {task_id: pod.metadata.namespace for task_id, pod in pods.items()}
    assert placements == {f"on_{pool}_pool": presets["pools"][pool]["namespace"] for pool in presets["pools"]}
    gpu = dag.get_task("on_gpu_pool").build_pod_request_obj(dry_run=True).spec.containers[0]
    assert gpu.resources.limits["nvidia.com/gpu"] == "1"


def test_unknown_pool_is_a_clear_error() -> None:
    with pytest.raises(UnknownPoolError, match=r"unknown pool 'tpu': the platform defines general, gpu, ssd"):
        pod_settings("tpu")


def test_pod_specs_are_valid_kubernetes_objects(sync_dag: Any) -> None:
    for task_id in TASK_POOLS:
        pod = rendered_pod(sync_dag, task_id)
        assert isinstance(pod, k8s.V1Pod)
        assert pod.spec.containers[0].name == "base"


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("value", [["demo"], None, True, 5, {"name": "demo"}], ids=repr)
def test_a_param_of_another_json_type_is_refused(sync_dag: Any, param: str, value: Any) -> None:
    with pytest.raises(ParamValidationError):
        resolve(sync_dag, param, value)


@pytest.mark.parametrize("param", ["source_db", "destination_db"])
def test_a_database_longer_than_the_server_holds_is_refused(sync_dag: Any, param: str) -> None:
    """The server keeps each database as a file `<name>.sql.tmp` of at most 255 bytes (the run used to
    pass the preflight and fail at create_db, after the drop)."""
    longest = "d" * 247
    assert resolve(sync_dag, param, longest) == longest
    with pytest.raises(ParamValidationError):
        resolve(sync_dag, param, longest + "d")


def test_swap_refuses_a_destination_too_long_for_its_previous_copy(sync_dag: Any, sync: Any) -> None:
    """swap also creates `<destination>__migrate_previous`: 229 characters at most."""
    for task_id in ("preflight", "create_db", "migrate_data"):
        task = sync_dag.get_task(task_id)
        swap = run_params(sync_dag, strategy="swap", destination_db="d" * 230)
        with pytest.raises(AirflowFailException, match="at most 247, 229 with strategy swap"):
            task._pre_execute_hook({"params": swap, "task": task})
        for fits in (run_params(sync_dag, strategy="swap", destination_db="d" * 229),
                     run_params(sync_dag, strategy="recreate", destination_db="d" * 247)):  # fmt: skip
            task._pre_execute_hook({"params": fits, "task": task})
