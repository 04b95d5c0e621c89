"""Operations settings of the chart: remote task logs (S3 API), housekeeping, metrics."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from tests.facts import WORKER_NAMESPACE, WORKLOAD_NAMESPACES

from .rendering import (
    AIRFLOW_NAMESPACES,
    NAMESPACE,
    RELEASE,
    Manifest,
    airflow_cfg,
    env_of,
    executor_pod_template,
    find,
    pod_specs,
    render,
    render_error,
)

CONN_ENV = "AIRFLOW_CONN_AIRFLOW_PLATFORM_LOGS"
REMOTE = "airflow.logs.remote"
# Remote logging to an S3-compatible store with static credentials from a Secret.
S3_COMPATIBLE = (
    "--set", f"{REMOTE}.enabled=true",
    "--set", f"{REMOTE}.bucket=team-logs",
    "--set", f"{REMOTE}.prefix=airflow/tasks",
    "--set", f"{REMOTE}.endpointUrl=http://s3.storage.svc:8333",
    "--set", f"{REMOTE}.addressingStyle=path",
    "--set", f"{REMOTE}.credentials.existingSecret=logs-s3",
)  # fmt: skip


def airflow_containers(manifests: list[Manifest]) -> dict[str, dict]:
    """Every container running Airflow itself (with the shared Airflow env): control plane, init
    containers, jobs, worker pods. Helpers in the image that run no Airflow code are left out."""
    found = {}
    for label, spec in pod_specs(manifests):
        for container in spec.get("initContainers", []) + spec["containers"]:
            if "airflow-platform/airflow" in container["image"] and "AIRFLOW_HOME" in env_of(container):
                found[f"{label}/{container['name']}"] = container
    return found


def remote_logs_connection(manifests: list[Manifest], namespace: str = NAMESPACE) -> dict:
    """The connection JSON of the chart's remote-logs Secret."""
    secret = find(manifests, "Secret", f"{RELEASE}-remote-logs", namespace)
    return json.loads(base64.b64decode(secret["data"]["connection"]))


def test_no_remote_logging_by_default() -> None:
    manifests = render("values.yaml")
    assert airflow_cfg(manifests)["logging"]["remote_logging"] == "False"
    for name, container in airflow_containers(manifests).items():
        assert CONN_ENV not in env_of(container), name
        assert "AWS_ACCESS_KEY_ID" not in env_of(container), name


def test_log_emptydir_is_size_limited() -> None:
    volumes = {v["name"]: v for v in executor_pod_template(render("values.yaml"))["spec"]["volumes"]}
    assert volumes["logs"]["emptyDir"]["sizeLimit"] == "1Gi"
    changed = render("values.yaml", "--set", "airflow.logs.emptyDirSizeLimit=300Mi")
    volumes = {v["name"]: v for v in executor_pod_template(changed)["spec"]["volumes"]}
    assert volumes["logs"]["emptyDir"]["sizeLimit"] == "300Mi"


def test_production_ships_task_logs_to_s3() -> None:
    manifests = render("values-production.yaml")
    for namespace in AIRFLOW_NAMESPACES:
        logging = airflow_cfg(manifests, namespace)["logging"]
        assert logging["remote_logging"] == "True"
        assert logging["remote_base_log_folder"] == "s3://example-airflow-logs/airflow/tasks"
        assert logging["remote_log_conn_id"] == "airflow_platform_logs"
        assert logging["delete_local_logs"] == "True"
    containers = airflow_containers(manifests)
    assert "executor-pod-template/base" in containers
    for namespace in AIRFLOW_NAMESPACES:
        connection = remote_logs_connection(manifests, namespace)
        assert connection == {"conn_type": "aws", "extra": {"region_name": "eu-west-1"}}
    for name, container in containers.items():
        env = env_of(container)
        assert env[CONN_ENV]["valueFrom"]["secretKeyRef"] == {
            "name": f"{RELEASE}-remote-logs",
            "key": "connection",
        }
        for variable, key in (("AWS_ACCESS_KEY_ID", "access-key-id"),
                              ("AWS_SECRET_ACCESS_KEY", "secret-access-key")):  # fmt: skip
            assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": "airflow-logs-s3", "key": key}
            assert "value" not in env[variable], f"{name}: {variable} must come from the Secret only"


def test_s3_compatible_endpoint_and_path_addressing() -> None:
    manifests = render("values.yaml", *S3_COMPATIBLE)
    assert airflow_cfg(manifests)["logging"]["remote_base_log_folder"] == "s3://team-logs/airflow/tasks"
    template_env = env_of(executor_pod_template(manifests)["spec"]["containers"][0])
    assert remote_logs_connection(manifests, WORKER_NAMESPACE)["extra"] == {
        "region_name": "us-east-1",
        "endpoint_url": "http://s3.storage.svc:8333",
        "config_kwargs": {"s3": {"addressing_style": "path"}},
    }
    assert template_env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "logs-s3"


def test_workload_identity_gets_no_static_keys() -> None:
    manifests = render("values.yaml", *S3_COMPATIBLE, "--set", f"{REMOTE}.credentials.existingSecret=")
    for name, container in airflow_containers(manifests).items():
        env = env_of(container)
        assert CONN_ENV in env, name
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & env.keys(), name


def test_remote_settings_cannot_be_set_in_airflow_config_and_local_copy_is_optional() -> None:
    error = render_error(
        *S3_COMPATIBLE, "--set", "airflow.config.logging.remote_base_log_folder=s3://elsewhere/x"
    )
    assert "airflow.config.logging.remote_base_log_folder" in error and "airflow.logs" in error
    manifests = render(
        "values.yaml", *S3_COMPATIBLE,
        "--set", "airflow.config.logging.logging_level=DEBUG",
        "--set", f"{REMOTE}.deleteLocalCopy=false",
    )  # fmt: skip
    logging = airflow_cfg(manifests)["logging"]
    assert logging["remote_base_log_folder"] == "s3://team-logs/airflow/tasks"
    assert logging["logging_level"] == "DEBUG"
    assert logging["delete_local_logs"] == "False"


def test_remote_logging_keeps_the_local_volume_mode() -> None:
    """hostPath/pvc stay usable with remote logging (local copy while a task runs)."""
    manifests = render("values-kind.yaml", *S3_COMPATIBLE)
    assert airflow_cfg(manifests)["logging"]["remote_logging"] == "True"
    find(manifests, "PersistentVolumeClaim", f"{RELEASE}-logs", WORKER_NAMESPACE)


def bad(case: str, key: str, value: str, *, base: tuple[str, ...] = S3_COMPATIBLE, flag: str = "--set"):
    """A pytest case: values that must be refused, with the error naming the key's path."""
    path = "/" + re.sub(r"\[(\d+)\]", r".\1", key).replace(".", "/")
    return pytest.param([*base, flag, f"{key}={value}"], path, id=case)


R = REMOTE
INVALID = [
    pytest.param(["--set", f"{R}.enabled=true"], "/airflow/logs/remote/bucket", id="enabled-without-bucket"),
    bad("bucket-uppercase", f"{R}.bucket", "Team-Logs"),
    bad("bucket-underscore", f"{R}.bucket", "team_logs"),
    bad("bucket-too-short", f"{R}.bucket", "ab"),
    bad("bucket-too-long", f"{R}.bucket", "a" * 64),
    bad("bucket-with-path", f"{R}.bucket", "logs/x"),
    bad("prefix-leading-slash", f"{R}.prefix", "/tasks"),
    bad("prefix-double-slash", f"{R}.prefix", "a//b"),
    bad("prefix-dot-dot", f"{R}.prefix", "a/../b"),
    bad("prefix-empty", f"{R}.prefix", ""),
    bad("prefix-space", f"{R}.prefix", "my logs"),
    bad("endpoint-scheme", f"{R}.endpointUrl", "ftp://s3"),
    bad("endpoint-no-scheme", f"{R}.endpointUrl", "s3.example.com"),
    bad("endpoint-env-expansion", f"{R}.endpointUrl", "http://$(HOST):1"),
    bad("endpoint-quote", f"{R}.endpointUrl", 'http://s3"x', flag="--set-string"),
    bad("endpoint-newline", f"{R}.endpointUrl", "http://s3\nx: 1", flag="--set-string"),
    bad("region-space", f"{R}.region", "eu west"),
    bad("addressing-enum", f"{R}.addressingStyle", "host"),
    bad("secret-name", f"{R}.credentials.existingSecret", "Logs_S3"),
    bad("secret-key", f"{R}.credentials.accessKeyIdKey", "a key"),
    bad("enabled-type", f"{R}.enabled", "yes", base=(), flag="--set-string"),
    bad("emptydir-limit", "airflow.logs.emptyDirSizeLimit", "1GB", base=()),
    pytest.param(["--set", "metrics.enabled=true"], "/metrics/otlpEndpoint", id="metrics-without-endpoint"),
    bad("metrics-endpoint-scheme", "metrics.otlpEndpoint", "grpc://prometheus:4317", base=()),
    bad("metrics-endpoint-expansion", "metrics.otlpEndpoint", "http://$(HOST)/v1/metrics", base=()),
    bad("metrics-interval", "metrics.exportIntervalSeconds", "0", base=()),
    bad("metrics-prefix", "metrics.prefix", "air flow", base=()),
    pytest.param([*S3_COMPATIBLE, "--set", f"{R}.secretKey=plain"], "secretKey", id="unknown-remote-key"),
]


@pytest.mark.parametrize(("args", "expected"), INVALID)
def test_invalid_ops_values_are_rejected(args: list[str], expected: str) -> None:
    assert expected in render_error(*args)


# --- housekeeping --------------------------------------------------------------------------------


def cron_jobs(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == "CronJob"}


def test_only_the_orphan_reaper_runs_by_default() -> None:
    assert set(cron_jobs(render("values.yaml"))) == {f"{RELEASE}-orphan-reaper"}
    assert not cron_jobs(render("values.yaml", "--set", "housekeeping.orphanedPods.enabled=false"))


def test_production_cleans_database_and_logs() -> None:
    manifests = render("values-production.yaml")
    jobs = cron_jobs(manifests)
    assert set(jobs) == {f"{RELEASE}-db-clean", f"{RELEASE}-log-cleanup", f"{RELEASE}-orphan-reaper"}
    for job in jobs.values():
        assert job["metadata"]["namespace"] == NAMESPACE
        assert job["spec"]["concurrencyPolicy"] == "Forbid"
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        needs_api = job["metadata"]["name"].endswith("orphan-reaper")
        assert pod["automountServiceAccountToken"] is needs_api
        assert pod["securityContext"]["runAsNonRoot"] is True
    db_clean = jobs[f"{RELEASE}-db-clean"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    env = env_of(db_clean)
    assert env["RETENTION_DAYS"]["value"] == "90"
    assert (
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]["valueFrom"]["secretKeyRef"]["name"]
        == "airflow-metadata-db"
    )
    cleanup = jobs[f"{RELEASE}-log-cleanup"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert cleanup["command"][-2:] == ["--retention-days", "30"]  # remote only: mode none has no volume
    assert CONN_ENV in env_of(cleanup)
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env_of(cleanup), "log cleanup needs no database"


def test_log_cleanup_script_is_the_chart_file() -> None:
    manifests = render("values-kind.yaml", "--set", "housekeeping.logCleanup.enabled=true")
    config_map = find(manifests, "ConfigMap", f"{RELEASE}-log-cleanup", NAMESPACE)
    from .rendering import CHART

    assert config_map["data"]["clean_logs.py"] == (CHART / "files" / "ops" / "clean_logs.py").read_text()
    cleanup = cron_jobs(manifests)[f"{RELEASE}-log-cleanup"]
    container = cleanup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == "--local", "hostPath mode: the local log volume is cleaned"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["logs"]["mountPath"] == "/opt/airflow/logs"


def test_log_cleanup_without_logs_to_clean_is_refused() -> None:
    error = render_error("--set", "housekeeping.logCleanup.enabled=true")
    assert "housekeeping.logCleanup.enabled" in error


def test_db_clean_may_reach_the_bundled_postgres() -> None:
    manifests = render("values-kind.yaml", "--set", "housekeeping.dbClean.enabled=true")
    policy = find(manifests, "NetworkPolicy", f"{RELEASE}-db-clean-to-postgres", NAMESPACE)
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "postgres"
    source = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert source["app.kubernetes.io/component"] == "db-clean"
    job = cron_jobs(manifests)[f"{RELEASE}-db-clean"]
    assert (
        job["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        == "db-clean"
    )


HK = "housekeeping"
HOUSEKEEPING_INVALID = [
    bad("retention-zero", f"{HK}.dbClean.retentionDays", "0", base=()),
    bad("retention-string", f"{HK}.dbClean.retentionDays", "90d", base=(), flag="--set-string"),
    bad("retention-shell", f"{HK}.logCleanup.retentionDays", "1;rm -rf /", base=(), flag="--set-string"),
    bad("schedule-garbage", f"{HK}.dbClean.schedule", "every night", base=()),
    bad("schedule-four-fields", f"{HK}.dbClean.schedule", "0 3 * *", base=()),
    bad("table-unknown", f"{HK}.dbClean.tables[0]", "users", base=()),
    bad("table-injection", f"{HK}.dbClean.tables[0]", "log;drop", base=()),
    bad("grace-zero", f"{HK}.orphanedPods.graceMinutes", "0", base=()),
    bad("grace-string", f"{HK}.orphanedPods.graceMinutes", "1h", base=(), flag="--set-string"),
    pytest.param(["--set", f"{HK}.dbClean.keepArchive=true"], "keepArchive", id="unknown-key"),
]


def out_of_range(case: str, job: str, schedule: str, message: str) -> Any:
    """A schedule of the schema's shape that Kubernetes refuses: the chart names the key and the field."""
    key = f"{HK}.{job}.schedule"
    arguments = ["--set", f"{HK}.{job}.enabled=true", "--set-string", f"{key}={schedule}"]
    return pytest.param(arguments, (f'{key}: "{schedule}": ', message), id=case)


SCHEDULES_OUT_OF_RANGE = [
    out_of_range("minute-61", "orphanedPods", "61 * * * *", 'the minute field "61": "61" is outside 0-59'),
    out_of_range("hour-24", "dbClean", "0 24 * * *", 'the hour field "24"'),
    out_of_range("day-zero", "dbClean", "0 3 0 * *", 'the day of month field "0"'),
    out_of_range("day-32", "dbClean", "0 3 32 * *", 'the day of month field "32"'),
    out_of_range("month-13", "dbClean", "0 3 * 13 *", 'the month field "13"'),
    out_of_range("weekday-7", "orphanedPods", "0 3 * * 7", 'the day of week field "7"'),
    out_of_range("unknown-month-name", "dbClean", "0 3 * FOO *", 'the month field "FOO"'),
    out_of_range("step-zero", "orphanedPods", "*/0 * * * *", 'the minute field "*/0" has step "0"'),
    out_of_range("range-backwards", "orphanedPods", "50-10 * * * *", 'the range "50-10" runs backwards'),
    out_of_range("last-day-quartz", "dbClean", "0 3 L * *", 'the day of month field "L"'),
    out_of_range("nth-weekday-quartz", "dbClean", "0 3 * * 5#3", 'the day of week field "5#3"'),
]


@pytest.mark.parametrize(("args", "expected"), SCHEDULES_OUT_OF_RANGE)
def test_schedules_kubernetes_refuses_are_refused_naming_the_field(
    args: list[str], expected: tuple[str, str]
) -> None:
    error = render_error(*args)
    assert all(part in error for part in expected), error


@pytest.mark.parametrize(
    "schedule",
    ["*/10 * * * *", "1/5 * * * *", "0 0 1-15/2 * *", "0 0 ? * MON-FRI", "30 2 * jan,jul sun", "@hourly"],
)
def test_valid_schedules_are_kept(schedule: str) -> None:
    escaped = schedule.replace(",", "\\,")  # helm --set splits lists at commas
    manifests = render("values.yaml", "--set-string", f"{HK}.orphanedPods.schedule={escaped}")
    assert cron_jobs(manifests)[f"{RELEASE}-orphan-reaper"]["spec"]["schedule"] == schedule


@pytest.mark.parametrize(("args", "expected"), HOUSEKEEPING_INVALID)
def test_invalid_housekeeping_values_are_rejected(args: list[str], expected: str) -> None:
    assert expected in render_error(*args)


def test_orphan_reaper_may_only_list_and_delete_pods_in_workload_namespaces() -> None:
    manifests = render("values.yaml")
    name = f"{RELEASE}-orphan-reaper"
    workloads = list(WORKLOAD_NAMESPACES)
    roles = [m for m in manifests if m["kind"] == "Role" and m["metadata"]["name"] == name]
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(workloads)
    for role in roles:
        assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "delete"]}]
        binding = find(manifests, "RoleBinding", name, role["metadata"]["namespace"])
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]
    job = cron_jobs(manifests)[name]
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == name
    command = pod["containers"][0]["command"]
    assert [command[i + 1] for i, arg in enumerate(command) if arg == "--namespace"] == workloads
    assert command[command.index("--grace-minutes") + 1] == "30"
    assert WORKER_NAMESPACE not in command, "worker pods are the executor's to adopt or clean"


def test_db_clean_table_enum_is_airflows_list() -> None:
    from airflow.utils.db_cleanup import config_dict

    from .rendering import CHART

    schema = json.loads((CHART / "values.schema.json").read_text())
    tables = schema["properties"]["housekeeping"]["properties"]["dbClean"]["properties"]["tables"]["items"]
    assert tables["enum"] == sorted(config_dict)


def test_changed_remote_store_rolls_the_pods() -> None:
    def checksum(*extra: str) -> str:
        deployment = find(render("values.yaml", *S3_COMPATIBLE, *extra), "Deployment", f"{RELEASE}-scheduler")
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/remote-logs"]

    assert checksum() != checksum("--set", f"{REMOTE}.endpointUrl=http://other:9000")


# --- metrics -------------------------------------------------------------------------------------


def test_metrics_off_by_default() -> None:
    manifests = render("values.yaml")
    assert "metrics" not in airflow_cfg(manifests)
    for name, container in airflow_containers(manifests).items():
        assert not any(key.startswith("OTEL_") for key in env_of(container)), name


def test_metrics_go_to_the_otlp_endpoint_from_every_airflow_container() -> None:
    endpoint = "http://prometheus.monitoring:9090/api/v1/otlp/v1/metrics"
    manifests = render(
        "values.yaml", "--set", "metrics.enabled=true", "--set", f"metrics.otlpEndpoint={endpoint}",
        "--set", "metrics.exportIntervalSeconds=20",
    )  # fmt: skip
    for namespace in AIRFLOW_NAMESPACES:
        metrics = airflow_cfg(manifests, namespace)["metrics"]
        assert metrics["otel_on"] == "True" and metrics["otel_prefix"] == "airflow"
    for name, container in airflow_containers(manifests).items():
        env = env_of(container)
        assert env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"]["value"] == endpoint, name
        assert env["OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"]["value"] == "http/protobuf"
        assert env["OTEL_METRIC_EXPORT_INTERVAL"]["value"] == "20000"
        assert env["AIRFLOW_PLATFORM_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        names = [item["name"] for item in container["env"]]
        # $(VAR) expands only from variables defined earlier in the list.
        assert names.index("AIRFLOW_PLATFORM_POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES"), name
        assert "service.instance.id=$(AIRFLOW_PLATFORM_POD_NAME)" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
