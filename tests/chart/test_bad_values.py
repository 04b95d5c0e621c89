"""Bad values are refused at `helm template` with the offending key named (issue #14).

One block per class of the issue; each case failed (rendered or broke later) on the chart before the
fix. Payloads that try to inject YAML carry a whole extra document: a ClusterRoleBinding to
cluster-admin, which must never reach the output.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.facts import JOBS_NAMESPACE, WORKER_NAMESPACE

from .rendering import CHART, airflow_cfg, find, of_kind, render, render_error

INJECTED = (
    "x\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n"
    "metadata: {name: pwned}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole,"
    " name: cluster-admin}\nsubjects: [{kind: Group, name: 'system:authenticated',"
    " apiGroup: rbac.authorization.k8s.io}]"
)


def _json(key: str, value: object) -> list[str]:
    return ["--set-json", f"{key}={json.dumps(value)}"]


def _string(key: str, value: str) -> list[str]:
    return ["--set-string", f"{key}={value}"]


def _set(key: str, value: str) -> list[str]:
    return ["--set", f"{key}={value}"]


Case = tuple[str, list[str], str]  # (id, helm arguments, text the error must contain)
Setter = Callable[[str, Any], list[str]]


def _pointer(key: str) -> str:
    """How the values schema names a dotted key in its errors: a.b[0].c -> /a/b/0/c."""
    return "/" + re.sub(r"\[(\d+)\]", r".\1", key).replace(".", "/")


def _schema_case(case: str, setter: Setter, key: str, value: object) -> Case:
    """A value values.schema.json refuses: its error names the key as a JSON pointer."""
    return case, setter(key, value), _pointer(key)


def _template_case(case: str, setter: Setter, key: str, value: object) -> Case:
    """A value the chart's templates refuse (`fail`): the message names the dotted key."""
    return case, setter(key, value), key


DEFAULT_WORKLOADS = yaml.safe_load((CHART / "values.yaml").read_text())["namespaces"]["workloads"]


def _workload(index: int, path: str, value: object) -> list[str]:
    """The whole workloads list with one field changed (--set on a list index replaces the list).
    `path` is dotted; "/" separates a quota key that itself contains dots (quota/requests.cpu)."""
    workloads = copy.deepcopy(DEFAULT_WORKLOADS)
    *parents, leaf = path.split("/") if "/" in path else path.split(".")
    target = workloads[index]
    for parent in parents:
        target = target.setdefault(parent, {})
    target[leaf] = value
    return _json("namespaces.workloads", workloads)


QUANTITIES = [
    _schema_case("memory-2GB", _string, "airflow.scheduler.resources.limits.memory", "2GB"),
    _schema_case("memory-lots", _string, "airflow.workers.resources.requests.memory", "lots"),
    _schema_case("cpu-negative", _json, "airflow.apiServer.resources.requests.cpu", -1),
    _schema_case("cpu-negative-string", _string, "postgres.resources.limits.cpu", "-500m"),
    _schema_case("memory-with-space", _string, "clickhouse.resources.limits.memory", "1 Gi"),
    _schema_case("memory-two-dots", _string, "airflow.triggerer.resources.limits.memory", "1.5.5Gi"),
    _schema_case("memory-unit-only", _string, "airflow.dagProcessor.resources.limits.memory", "Gi"),
    _schema_case("memory-hex", _string, "airflow.migrateDatabase.resources.limits.memory", "0x10"),
    _schema_case("memory-empty", _string, "airflow.scheduler.resources.requests.memory", ""),
    _schema_case("resources-unknown-key", _json, "airflow.scheduler.resources", {"request": {"cpu": "1"}}),
    _schema_case("quota-negative", _json, "namespaces.workers.quota.pods", -1),
    ("quota-lots", _workload(0, "quota/requests.cpu", "lots"), "/namespaces/workloads/0/quota/requests.cpu"),
    ("quota-2GB", _workload(1, "quota/limits.memory", "64GB"), "/namespaces/workloads/1/quota/limits.memory"),
    _schema_case("quota-huge", _json, "namespaces.workers.quota.pods", 1e300),
    _schema_case("quota-bad-resource-name", _json, "namespaces.workers.quota", {"requests cpu": "1"}),
    _schema_case("limitrange-lots", _string, "namespaces.workers.limitRange.default.cpu", "lots"),
    (
        "limitrange-negative",
        _workload(0, "limitRange.defaultRequest.cpu", -2),
        "/namespaces/workloads/0/limitRange/defaultRequest/cpu",
    ),
    _schema_case("limitrange-not-a-map", _string, "namespaces.workers.limitRange.default", "1Gi"),
    _schema_case("postgres-size-2GB", _string, "postgres.persistence.size", "2GB"),
    _schema_case("postgres-size-negative", _string, "postgres.persistence.size", "-2Gi"),
    (
        "logs-size-lots",
        ["--set", "airflow.logs.mode=hostPath", *_string("airflow.logs.hostPath.size", "lots")],
        "/airflow/logs/hostPath/size",
    ),
    _schema_case("logs-pvc-size-zero", _string, "airflow.logs.pvc.size", "0Gi"),
    _schema_case("clickhouse-size-no-unit", _string, "clickhouse.persistence.size", "5"),
]

REQUESTS_ABOVE_LIMITS = [
    _template_case("cpu", _string, "airflow.scheduler.resources.requests.cpu", "3"),
    _template_case("cpu-millis", _string, "airflow.apiServer.resources.requests.cpu", "2001m"),
    _template_case("memory-mixed-units", _string, "airflow.scheduler.resources.requests.memory", "2049Mi"),
    _template_case("memory-decimal-vs-binary", _string, "airflow.workers.resources.requests.memory", "1.1G"),
    _template_case("memory-exponent", _string, "postgres.resources.requests.memory", "2e9"),
    _template_case("clickhouse", _string, "clickhouse.resources.requests.cpu", "1.5"),
    _template_case("migrate", _string, "airflow.migrateDatabase.resources.requests.memory", "2Gi"),
    _template_case("triggerer", _json, "airflow.triggerer.resources.requests.cpu", 2),
    _template_case("dag-processor", _string, "airflow.dagProcessor.resources.requests.memory", "2Gi"),
    _template_case(
        "limitrange-default-request", _string, "namespaces.workers.limitRange.defaultRequest.memory", "2Gi"
    ),
    (
        "limitrange-workload",
        _workload(1, "limitRange.defaultRequest.cpu", "3"),
        "namespaces.workloads[1].limitRange.defaultRequest.cpu",
    ),
    (
        "quota-requests-above-limits",
        _workload(0, "quota/requests.cpu", "17"),
        "namespaces.workloads[0].quota.requests.cpu",
    ),
]

DISRUPTION_BUDGETS = [
    _schema_case("percent-over-100", _string, "airflow.scheduler.podDisruptionBudget.maxUnavailable", "150%"),
    _schema_case("percent-negative", _string, "airflow.apiServer.podDisruptionBudget.maxUnavailable", "-1%"),
    _schema_case(
        "percent-with-space", _string, "airflow.triggerer.podDisruptionBudget.maxUnavailable", "50 %"
    ),
    _schema_case(
        "percent-fraction", _string, "airflow.dagProcessor.podDisruptionBudget.maxUnavailable", "12.5%"
    ),
    _schema_case("count-huge", _json, "airflow.scheduler.podDisruptionBudget.maxUnavailable", 1e300),
    _schema_case("count-word", _string, "airflow.scheduler.podDisruptionBudget.maxUnavailable", "one"),
]

# Each payload tries to append a ClusterRoleBinding document through a string value.
INJECTIONS = [
    ("postgres-storage-class", "postgres.persistence.storageClassName"),
    ("clickhouse-storage-class", "clickhouse.persistence.storageClassName"),
    ("logs-storage-class", "airflow.logs.pvc.storageClassName"),
    ("logs-host-path", "airflow.logs.hostPath.path"),
    ("logs-sub-path", "airflow.logs.hostPath.subPath"),
    ("postgres-size", "postgres.persistence.size"),
    ("workers-namespace", "namespaces.workers.name"),
    ("workload-namespace", "namespaces.workloads[0].name"),
    ("pull-secret", "images.pullSecrets[0]"),
    ("registry", "images.registry"),
    ("tag", "images.tag"),
    ("fernet-secret-name", "secrets.fernetKey.existingSecret"),
    ("admin-secret-key", "secrets.adminPassword.key"),
    ("external-db-secret", "externalDatabase.secretName"),
    ("credentials-secret", "clickhouse.credentialsSecret"),
    ("clickhouse-host", "presets.clickhouseSync.profiles.demo-source.host"),
    ("clickhouse-user", "presets.clickhouseSync.profiles.demo-destination.user"),
    ("skip-pattern", "presets.clickhouseSync.skipPatterns[0]"),
    ("airflow-config-value", "airflow.config.core.parallelism"),
    ("base-url", "airflow.baseUrl"),
    ("quota-value", "namespaces.workers.quota.pods"),
    ("ingress-peer-label", "networkPolicies.apiServerExtraIngressFrom[0].namespaceSelector.matchLabels.team"),
]

AIRFLOW_CONFIG = [
    _template_case("fernet-key-upper", _set, "airflow.config.core.FERNET_KEY", "abc"),
    _template_case(
        "sql-alchemy-conn-mixed", _set, "airflow.config.database.Sql_Alchemy_Conn", "postgresql://u:p@h/db"
    ),
    _template_case("jwt-secret-upper", _set, "airflow.config.api_auth.JWT_SECRET", "abc"),
    _template_case("secret-key-upper", _set, "airflow.config.api.SECRET_KEY", "abc"),
    _template_case("smtp-password", _set, "airflow.config.smtp.smtp_password", "hunter2"),
    _template_case("any-password", _set, "airflow.config.ldap.bind_password", "hunter2"),
    _template_case("any-password-upper", _set, "airflow.config.team.DB_PASSWORD", "hunter2"),
    _template_case("any-secret", _set, "airflow.config.core.internal_api_secret_key", "abc"),
    _template_case("webserver-secret", _set, "airflow.config.webserver.secret_key", "abc"),
    _template_case("conn-cmd", _set, "airflow.config.database.sql_alchemy_conn_cmd", "cat /x"),
    _template_case("fernet-secret-backend", _set, "airflow.config.core.fernet_key_secret", "x"),
    _schema_case("newline-value", _string, "airflow.config.core.parallelism", "8\nexecutor = LocalExecutor"),
    _schema_case(
        "carriage-return", _string, "airflow.config.core.parallelism", "8\rexecutor = LocalExecutor"
    ),
    ("section-upper", ["--set", "airflow.config.CORE.parallelism=8"], "/airflow/config"),
    _schema_case("option-name-space", _json, "airflow.config.core", {"par allelism": "8"}),
    _schema_case("option-name-equals", _json, "airflow.config.core", {"a=b": "8"}),
    (
        "option-twice-by-case",
        ["--set", "airflow.config.core.parallelism=4", "--set", "airflow.config.core.PARALLELISM=8"],
        "is given twice",
    ),
    _schema_case("value-huge", _json, "airflow.config.core.parallelism", 1e300),
    _schema_case("value-object", _json, "airflow.config.core.parallelism", {"a": 1}),
]


def _env(*variables: dict) -> list[str]:
    return _json("airflow.env", list(variables))


SECRET_REF = {"secretKeyRef": {"name": "team", "key": "value"}}


def _single_variable(case: str, name: str, value: str, refused_field: str) -> Case:
    """airflow.env holding one variable; the chart's message names the field it refuses."""
    return case, _env({"name": name, "value": value}), f"airflow.env[0].{refused_field}"


# Variables the platform sets itself: a team's value would take over or break Airflow (name refused).
RESERVED_VARIABLES = [
    ("executor", "AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
    ("executor-lower", "airflow__core__executor", "LocalExecutor"),
    ("auth-manager", "AIRFLOW__CORE__AUTH_MANAGER", "x.Y"),
    ("users", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "me:admin"),
    ("namespace", "AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE", "kube-system"),
    ("pod-template", "AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE", "/x"),
    ("multi-namespace", "AIRFLOW__KUBERNETES_EXECUTOR__MULTI_NAMESPACE_MODE", "True"),
    ("execution-api", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://evil/"),
    ("dags-folder-cmd", "AIRFLOW__CORE__DAGS_FOLDER_CMD", "echo /x"),
    ("log-folder", "AIRFLOW__LOGGING__BASE_LOG_FOLDER", "/x"),
    ("db-conn-secret-suffix", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET", "x"),
    ("airflow-home", "AIRFLOW_HOME", "/tmp"),
]
# Credentials as plain values: they belong in a Secret, through valueFrom (value refused).
PLAIN_CREDENTIALS = [
    ("smtp-password-plain", "AIRFLOW__SMTP__SMTP_PASSWORD", "hunter2"),
    ("password-plain", "DB_PASSWORD", "hunter2"),
    ("secret-plain", "team_secret", "s3cr3t"),
    ("token-plain", "GITHUB_TOKEN", "ghp_x"),
    ("api-key-plain", "VENDOR_API_KEY", "k"),
    ("connection-plain", "AIRFLOW_CONN_WAREHOUSE", "postgres://u:p@h/db"),
]
AIRFLOW_ENV = [
    *(_single_variable(case, name, value, "name") for case, name, value in RESERVED_VARIABLES),
    *(_single_variable(case, name, value, "value") for case, name, value in PLAIN_CREDENTIALS),
    (
        "fernet-key-from-secret",
        _env({"name": "AIRFLOW__CORE__FERNET_KEY", "valueFrom": SECRET_REF}),
        "airflow.env[0].name",
    ),
    (
        "second-entry",
        _env({"name": "TEAM", "value": "a"}, {"name": "AIRFLOW__CORE__EXECUTOR", "value": "x"}),
        "airflow.env[1].name",
    ),
    (
        "duplicate-name",
        _env({"name": "TEAM", "value": "a"}, {"name": "TEAM", "value": "b"}),
        "airflow.env[1].name",
    ),
    ("value-and-value-from", _env({"name": "TEAM", "value": "a", "valueFrom": SECRET_REF}), "/airflow/env/0"),
    ("missing-name", _env({"value": "a"}), "/airflow/env/0"),
    ("name-with-newline", _env({"name": "A\nB", "value": "a"}), "/airflow/env/0/name"),
    ("unknown-field", _env({"name": "A", "vaule": "a"}), "/airflow/env/0"),
]

NAMESPACES = [
    ("workload-kube-system", _workload(0, "name", "kube-system"), "/namespaces/workloads/0/name"),
    ("workload-default", _workload(0, "name", "default"), "/namespaces/workloads/0/name"),
    ("workload-kube-public", _workload(1, "name", "kube-public"), "/namespaces/workloads/1/name"),
    ("workload-kube-node-lease", _workload(1, "name", "kube-node-lease"), "/namespaces/workloads/1/name"),
    ("workload-kube-prefix", _workload(0, "name", "kube-team"), "/namespaces/workloads/0/name"),
    _schema_case("workers-kube-system", _string, "namespaces.workers.name", "kube-system"),
    _schema_case("workers-default", _string, "namespaces.workers.name", "default"),
    ("workload-is-release", _workload(0, "name", "airflow"), "namespaces.workloads[0].name"),
    _template_case("workers-is-release", _string, "namespaces.workers.name", "airflow"),
    ("workload-is-workers", _workload(1, "name", WORKER_NAMESPACE), "namespaces.workloads[1].name"),
    ("workload-twice", _workload(1, "name", JOBS_NAMESPACE), "namespaces.workloads[1].name"),
    ("pool-in-two-namespaces", _workload(1, "pools", ["gpu", "general"]), "namespaces.workloads[1].pools"),
    ("pool-twice-in-one", _workload(1, "pools", ["gpu", "gpu"]), "/namespaces/workloads/1/pools"),
    _schema_case("name-too-long", _string, "namespaces.workloads[0].name", "a" * 64),
    ("name-upper", _workload(0, "name", "Jobs"), "/namespaces/workloads/0/name"),
]

NUMBERS = [
    _schema_case("queued-timeout-huge", _json, "airflow.workers.taskQueuedTimeout", 1e300),
    _schema_case("migration-timeout-huge", _json, "airflow.migrationWaitTimeout", 1e20),
    _schema_case("backoff-huge", _json, "airflow.migrateDatabase.backoffLimit", 1e19),
    _schema_case("startup-timeout-huge", _json, "presets.podDefaults.startupTimeoutSeconds", 1e300),
    _schema_case("start-check-zero", _json, "presets.podDefaults.startupCheckIntervalSeconds", 0),
    _schema_case("start-check-fraction", _json, "presets.podDefaults.startupCheckIntervalSeconds", 0.5),
    _schema_case("start-check-text", _json, "presets.podDefaults.startupCheckIntervalSeconds", "1s"),
    _schema_case("batch-size-huge", _json, "airflow.workers.podsCreationBatchSize", 1e30),
    _schema_case("replicas-fraction", _json, "airflow.scheduler.replicas", 1.5),
    _schema_case("rows-huge", _json, "clickhouse.loadDemoData.rows", 1e300),
    _schema_case("port-huge", _json, "presets.clickhouseSync.profiles.demo-source.port", 1e300),
]

# The sync DAG's default databases: never a server database, in any letter case (the DAG failed to
# import on "System" or "DEFAULT", which the schema let through as exact-case names only).
SYNC_DATABASES = [
    _schema_case(
        "destination-system-capitalised", _string, "presets.clickhouseSync.destination.database", "System"
    ),
    _schema_case(
        "destination-default-upper", _string, "presets.clickhouseSync.destination.database", "DEFAULT"
    ),
    _schema_case(
        "destination-information-schema-mixed",
        _string,
        "presets.clickhouseSync.destination.database",
        "Information_Schema",
    ),
    _schema_case("source-default-capitalised", _string, "presets.clickhouseSync.source.database", "Default"),
    _schema_case("source-system-newline", _json, "presets.clickhouseSync.source.database", "system\n"),
    _schema_case("destination-backticks", _string, "presets.clickhouseSync.destination.database", "`system`"),
]

# metrics.serviceMonitor: durations and selectors end up in a scrape config that prometheus-operator
# would reject without a word at install; labels must be labels; it needs the Prometheus it scrapes.
MONITOR = "metrics.serviceMonitor"
OTLP_KEY, OTLP = "metrics.otlpEndpoint", "http://prometheus.monitoring:9090/api/v1/otlp/v1/metrics"
MONITOR_ON = ["--set", "metrics.enabled=true", "--set", "metrics.testPrometheus.enabled=true",
              "--set", f"{MONITOR}.enabled=true"]  # fmt: skip


def _monitor_case(case: str, setter: Setter, field: str, value: object, template: bool = False) -> Case:
    """metrics.serviceMonitor.<field> refused with the ServiceMonitor on."""
    key = f"{MONITOR}.{field}"
    return case, [*MONITOR_ON, *setter(key, value)], key if template else _pointer(key)


SERVICE_MONITOR = [
    (
        "without-metrics",
        ["--set", f"{MONITOR}.enabled=true"],
        "metrics.serviceMonitor.enabled needs metrics.enabled and metrics.testPrometheus.enabled",
    ),
    (
        "without-test-prometheus",
        [*_set(f"{MONITOR}.enabled", "true"), *_set("metrics.enabled", "true"), *_set(OTLP_KEY, OTLP)],
        "metrics.serviceMonitor.enabled needs metrics.testPrometheus.enabled",
    ),
    _monitor_case("interval-number", _json, "interval", 30),
    _monitor_case("interval-no-unit", _string, "interval", "30"),
    _monitor_case("interval-space", _string, "interval", "30 s"),
    _monitor_case("interval-zero", _string, "interval", "0s"),
    _monitor_case("interval-units-out-of-order", _string, "interval", "30s1m"),
    _monitor_case("interval-go-duration", _string, "interval", "1.5m"),
    _monitor_case("interval-newline", _string, "interval", "30s\n- job_name: x"),
    _monitor_case("timeout-unit", _string, "scrapeTimeout", "10sec"),
    _monitor_case("timeout-above-interval", _string, "scrapeTimeout", "31s", template=True),
    (
        "timeout-above-interval-mixed-units",
        [*MONITOR_ON, *_string(f"{MONITOR}.interval", "1m30s"), *_string(f"{MONITOR}.scrapeTimeout", "2m")],
        f"{MONITOR}.scrapeTimeout",
    ),
    _monitor_case("labels-key-space", _json, "labels", {"my label": "x"}),
    _monitor_case("labels-key-too-long", _json, "labels", {"a" * 64: "x"}),
    _monitor_case("labels-value-space", _json, "labels.release", "kube prometheus"),
    _monitor_case("labels-value-number", _json, "labels.release", 1),
    _monitor_case("labels-value-too-long", _json, "labels.release", "a" * 64),
    _monitor_case("labels-chart-label", _json, "labels", {"app.kubernetes.io/instance": "x"}, template=True),
    _monitor_case("namespace-upper", _string, "namespace", "Monitoring"),
    _monitor_case("namespace-too-long", _string, "namespace", "a" * 64),
    _monitor_case("match-empty", _json, "matchSeries", [""]),
    _monitor_case("match-newline", _json, "matchSeries", ['{__name__=~"airflow_.+"}\n']),
    _monitor_case("match-not-a-selector", _json, "matchSeries", ["airflow_.+"]),
    _monitor_case("match-twice", _json, "matchSeries", ["up", "up"]),
    _monitor_case("match-not-a-list", _string, "matchSeries", "up"),
]

IMAGES = [
    _template_case("latest-if-not-present", _set, "images.tag", "latest"),
    ("latest-never", ["--set", "images.tag=latest", "--set", "images.pullPolicy=Never"], "images.tag"),
    _template_case("latest-any-case", _set, "images.tag", "Latest"),
]

RESTRICTED_CONTEXT = "presets.podDefaults.containerSecurityContext"
JOB_PRESETS = [
    (
        "privilege-escalation",
        ["--set", f"{RESTRICTED_CONTEXT}.allowPrivilegeEscalation=true"],
        f"{RESTRICTED_CONTEXT}.allowPrivilegeEscalation",
    ),
    ("privileged", ["--set", f"{RESTRICTED_CONTEXT}.privileged=true"], f"{RESTRICTED_CONTEXT}.privileged"),
    (
        "capability-sys-admin",
        _json(f"{RESTRICTED_CONTEXT}.capabilities.add", ["SYS_ADMIN"]),
        f"{RESTRICTED_CONTEXT}.capabilities.add",
    ),
    (
        "capability-net-raw",
        _json(f"{RESTRICTED_CONTEXT}.capabilities.add", ["NET_RAW"]),
        f"{RESTRICTED_CONTEXT}.capabilities.add",
    ),
    (
        "no-drop-all",
        _json(f"{RESTRICTED_CONTEXT}.capabilities.drop", []),
        f"{RESTRICTED_CONTEXT}.capabilities.drop",
    ),
    (
        "run-as-root",
        ["--set", f"{RESTRICTED_CONTEXT}.runAsNonRoot=false"],
        f"{RESTRICTED_CONTEXT}.runAsNonRoot",
    ),
    _template_case("uid-zero", _set, "presets.podDefaults.securityContext.runAsUser", "0"),
    (
        "seccomp-unconfined",
        ["--set", f"{RESTRICTED_CONTEXT}.seccompProfile.type=Unconfined"],
        f"{RESTRICTED_CONTEXT}.seccompProfile.type",
    ),
    (
        "no-seccomp",
        [
            "--set",
            "presets.podDefaults.securityContext.seccompProfile=null",
            "--set",
            f"{RESTRICTED_CONTEXT}.seccompProfile=null",
        ],
        f"{RESTRICTED_CONTEXT}.seccompProfile.type",
    ),
    (
        "baseline-privileged",
        ["--set", "namespaces.podSecurityLevel=baseline", "--set", f"{RESTRICTED_CONTEXT}.privileged=true"],
        f"{RESTRICTED_CONTEXT}.privileged",
    ),
    (
        "baseline-sys-admin",
        [
            *_workload(1, "podSecurityLevel", "baseline"),
            *_json(f"{RESTRICTED_CONTEXT}.capabilities.add", ["SYS_ADMIN"]),
        ],
        f"{RESTRICTED_CONTEXT}.capabilities.add",
    ),
    (
        "baseline-selinux-type",
        [
            "--set",
            "namespaces.podSecurityLevel=baseline",
            *_json(f"{RESTRICTED_CONTEXT}.seLinuxOptions", {"type": "spc_t"}),
        ],
        f"{RESTRICTED_CONTEXT}.seLinuxOptions.type",
    ),
    (
        "baseline-proc-mount",
        [
            "--set",
            "namespaces.podSecurityLevel=baseline",
            "--set",
            f"{RESTRICTED_CONTEXT}.procMount=Unmasked",
        ],
        f"{RESTRICTED_CONTEXT}.procMount",
    ),
]

HOST_PATHS = [
    (
        path.strip("/").replace("/", "-") or "root",
        ["--set", "airflow.logs.mode=hostPath", *_string("airflow.logs.hostPath.path", path)],
        "/airflow/logs/hostPath/path",
    )
    for path in (
        "/",
        "//",
        "/etc",
        "/var/run",
        "/var/lib/kubelet",
        "/var/lib/containerd",
        "/proc/1",
        "/tmp/../etc",
        "/tmp/./x",
        "/root/.ssh",
        "/sys",
        "/dev",
        "/usr",
        "/run/containerd",
        "tmp",
        "/tmp/",
    )
] + [
    (
        "sub-path-dot-dot",
        ["--set", "airflow.logs.mode=hostPath", *_string("airflow.logs.hostPath.subPath", "..")],
        "/airflow/logs/hostPath/subPath",
    )
]

INGRESS_PEERS = [
    ("empty-peer", [{}], "/networkPolicies/apiServerExtraIngressFrom/0"),
    (
        "empty-namespace-selector",
        [{"namespaceSelector": {}}],
        "/networkPolicies/apiServerExtraIngressFrom/0/namespaceSelector",
    ),
    ("empty-pod-selector", [{"podSelector": {}}], "/networkPolicies/apiServerExtraIngressFrom/0/podSelector"),
    (
        "empty-match-labels",
        [{"namespaceSelector": {"matchLabels": {}}}],
        "/networkPolicies/apiServerExtraIngressFrom/0/namespaceSelector/matchLabels",
    ),
    (
        "empty-expressions",
        [{"podSelector": {"matchExpressions": []}}],
        "/networkPolicies/apiServerExtraIngressFrom/0/podSelector/matchExpressions",
    ),
    ("empty-ip-block", [{"ipBlock": {}}], "/networkPolicies/apiServerExtraIngressFrom/0/ipBlock"),
    (
        "bad-cidr",
        [{"ipBlock": {"cidr": "everyone"}}],
        "/networkPolicies/apiServerExtraIngressFrom/0/ipBlock/cidr",
    ),
    # Shaped like a CIDR but refused by the API server: the schema checks octets and prefix lengths.
    (
        "cidr-prefix-33",
        [{"ipBlock": {"cidr": "10.0.0.0/33"}}],
        "/networkPolicies/apiServerExtraIngressFrom/0/ipBlock/cidr",
    ),
    (
        "cidr-octet-300",
        [{"ipBlock": {"cidr": "300.0.0.0/8"}}],
        "/networkPolicies/apiServerExtraIngressFrom/0/ipBlock/cidr",
    ),
    (
        "cidr-ipv6-prefix-129",
        [{"ipBlock": {"cidr": "fd00::/129"}}],
        "/networkPolicies/apiServerExtraIngressFrom/0/ipBlock/cidr",
    ),
    (
        "except-prefix-40",
        [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/40"]}}],
        "/networkPolicies/apiServerExtraIngressFrom/0/ipBlock/except/0",
    ),
    (
        "ip-block-with-selector",
        [{"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {"matchLabels": {"a": "b"}}}],
        "/networkPolicies/apiServerExtraIngressFrom/0",
    ),
    ("unknown-field", [{"from": [{"podSelector": {}}]}], "/networkPolicies/apiServerExtraIngressFrom/0"),
    (
        "second-item-empty",
        [{"namespaceSelector": {"matchLabels": {"a": "b"}}}, {}],
        "/networkPolicies/apiServerExtraIngressFrom/1",
    ),
    ("not-a-list-item", ["ingress-nginx"], "/networkPolicies/apiServerExtraIngressFrom/0"),
]

# Once a nil pointer ("evaluating interface {}.enabled") and a YAML parse error: now named keys.
UNCLEAR_BEFORE = [
    ("pdb-removed", ["--set", "airflow.scheduler.podDisruptionBudget=null"], "podDisruptionBudget"),
    ("host-path-removed", ["--set", "airflow.logs.hostPath=null"], "hostPath"),
    ("logs-pvc-removed", ["--set", "airflow.logs.pvc=null"], "pvc"),
    ("limit-range-removed", ["--set", "namespaces.workers.limitRange=null"], "limitRange"),
    ("service-removed", ["--set", "airflow.apiServer.service=null"], "service"),
    (
        "demo-data-removed",
        ["--set", "clickhouse.enabled=true", "--set", "clickhouse.loadDemoData=null"],
        "loadDemoData",
    ),
    _template_case("section-removed", _set, "presets", "null"),
    _schema_case("storage-class-yaml-syntax", _string, "postgres.persistence.storageClassName", "fast: ssd"),
    _schema_case("storage-class-flow", _json, "clickhouse.persistence.storageClassName", "[a, b]"),
    _schema_case("size-comment", _string, "airflow.logs.pvc.size", "5Gi # big"),
]

# A second round as a new user would try it: each case was accepted silently before its fix.
_ANNOTATION = "airflow.scheduler.podAnnotations"
STRINGS_RENDERED = [
    _schema_case("pod-annotation-newline", _json, f"{_ANNOTATION}.team", "a\nb: c"),
    ("pod-annotation-key-space", _json(_ANNOTATION, {"my key": "x"}), "/airflow/scheduler/podAnnotations"),
    (
        "pod-annotation-key-injection",
        _json(_ANNOTATION, {INJECTED: "x"}),
        "/airflow/scheduler/podAnnotations",
    ),
    _schema_case("pod-label-space", _json, "airflow.triggerer.podLabels.team", "data team"),
    _schema_case("pod-label-too-long", _json, "airflow.workers.podLabels.team", "a" * 64),
    _schema_case("node-selector-newline", _json, "airflow.dagProcessor.nodeSelector.disk", "ssd\nx: y"),
    _schema_case(
        "service-account-annotation-injection",
        _json,
        "airflow.workers.serviceAccount.annotations.role",
        INJECTED,
    ),
    (
        "service-account-annotation-key-newline",
        _json("airflow.migrateDatabase.serviceAccount.annotations", {"a\nb": "x"}),
        "/airflow/migrateDatabase/serviceAccount/annotations",
    ),
    _schema_case("service-annotation-crlf", _json, "airflow.apiServer.service.annotations.a", "x\r\ny"),
    _schema_case("ingress-annotation-newline", _json, "airflow.apiServer.ingress.annotations.a", "x\ny"),
    # Kubernetes expands $(VAR) in env values: the admin's name would carry the database URL into the UI.
    (
        "fab-first-name-expansion",
        [
            "--set",
            "airflow.auth.manager=fab",
            *_json("airflow.auth.admin.firstName", "$(AIRFLOW__CORE__FERNET_KEY)"),
        ],
        "/airflow/auth/admin/firstName",
    ),
    (
        "fab-email-expansion",
        ["--set", "airflow.auth.manager=fab", *_json("airflow.auth.admin.email", "$(DB)@example.com")],
        "/airflow/auth/admin/email",
    ),
    _schema_case("fab-last-name-newline", _json, "airflow.auth.admin.lastName", "Admin\nUser"),
    _schema_case("extra-volume-name-injection", _json, "airflow.scheduler.extraVolumes[0].name", INJECTED),
]
EXTRA_VOLUMES = [
    (
        f"{component}-{path.strip('/').replace('/', '-') or 'root'}",
        _json(f"airflow.{component}.extraVolumes", [{"name": "host", "hostPath": {"path": path}}]),
        f"/airflow/{component}/extraVolumes/0/hostPath/path",
    )
    for component, path in (
        ("scheduler", "/"),
        ("workers", "/"),
        ("apiServer", "/var/run/docker.sock"),
        ("triggerer", "/etc/"),
        ("dagProcessor", "/data/../etc"),
        ("migrateDatabase", "/var/lib/kubelet"),
    )
]
# Component extraEnv went into the containers unchecked: the same rules as airflow.env now.
EXTRA_ENV = [
    (
        "scheduler-executor",
        _json("airflow.scheduler.extraEnv", [{"name": "AIRFLOW__CORE__EXECUTOR", "value": "LocalExecutor"}]),
        "airflow.scheduler.extraEnv[0].name",
    ),
    (
        "workers-executor-lower",
        _json("airflow.workers.extraEnv", [{"name": "airflow__core__executor", "value": "LocalExecutor"}]),
        "airflow.workers.extraEnv[0].name",
    ),
    (
        "api-server-fernet-key",
        _json("airflow.apiServer.extraEnv", [{"name": "AIRFLOW__CORE__FERNET_KEY", "value": "x"}]),
        "airflow.apiServer.extraEnv[0].name",
    ),
    (
        "triggerer-plain-password",
        _json("airflow.triggerer.extraEnv", [{"name": "DB_PASSWORD", "value": "hunter2"}]),
        "airflow.triggerer.extraEnv[0].value",
    ),
    (
        "dag-processor-duplicate",
        _json("airflow.dagProcessor.extraEnv", [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        "airflow.dagProcessor.extraEnv[1].name",
    ),
    (
        "migrate-newline-name",
        _json("airflow.migrateDatabase.extraEnv", [{"name": "A\nB", "value": "1"}]),
        "/airflow/migrateDatabase/extraEnv/0/name",
    ),
    _single_variable("airflow-config-file", "AIRFLOW_CONFIG", "/tmp/evil.cfg", "name"),
]
# Options the chart sets itself were silently replaced: now refused, in any letter case.
OWNED_CONFIG = [
    _template_case("executor-capitalised", _set, "airflow.config.core.Executor", "LocalExecutor"),
    _template_case("executor-upper", _set, "airflow.config.core.EXECUTOR", "LocalExecutor"),
    _template_case(
        "workers-namespace-mixed", _set, "airflow.config.kubernetes_executor.NameSpace", "kube-system"
    ),
    _template_case("auth-manager", _set, "airflow.config.core.auth_manager", "x.Y"),
    _template_case("pod-template", _set, "airflow.config.kubernetes_executor.Pod_Template_File", "/x"),
    _template_case("base-log-folder", _set, "airflow.config.logging.BASE_LOG_FOLDER", "/x"),
    (
        "remote-log-folder-while-remote",
        [
            *("--set", "airflow.logs.remote.enabled=true", "--set", "airflow.logs.remote.bucket=team-logs"),
            *_set("airflow.config.logging.Remote_Base_Log_Folder", "s3://elsewhere"),
        ],
        "airflow.config.logging.Remote_Base_Log_Folder",
    ),
    _template_case("access-token", _set, "airflow.config.github.access_token", "ghp_x"),
    _template_case("api-key", _set, "airflow.config.vendor.API_KEY", "k"),
    _template_case("private-key", _set, "airflow.config.ssh.private_key", "k"),
    _template_case(
        "sentry-dsn", _set, "airflow.config.sentry.sentry_dsn", "https://key@sentry.example.com/1"
    ),
]
POOL_DEFINITIONS = [
    _schema_case(
        "taint-value-injection",
        _json,
        "nodePools.definitions.gpu.taints",
        [{"key": "a", "value": INJECTED, "effect": "NoSchedule"}],
    ),
    _schema_case(
        "taint-key-space", _json, "nodePools.definitions.gpu.taints", [{"key": "a b", "effect": "NoSchedule"}]
    ),
    _schema_case(
        "toleration-without-key", _json, "nodePools.definitions.gpu.tolerations", [{"operator": "Exists"}]
    ),
    _schema_case("labels-empty", _json, "nodePools.definitions.gpu.labels", {}),
    _schema_case("node-selector-term-empty", _json, "nodePools.definitions.gpu.nodeSelectorTerms", [{}]),
    _schema_case("description-newline", _json, "nodePools.definitions.gpu.description", "GPU\n---"),
    _template_case(
        "default-request-above-limit",
        _json,
        "nodePools.definitions.gpu.defaultResources",
        {"requests": {"cpu": "4"}, "limits": {"cpu": "1"}},
    ),
    (
        "default-above-quota",
        _json("nodePools.definitions.gpu.defaultResources", {"requests": {"memory": "40Gi"}}),
        "namespaces.workloads[1].quota.requests.memory",
    ),
    _template_case(
        "db-clean-request-above-limit", _string, "housekeeping.dbClean.resources.requests.cpu", "4"
    ),
    _template_case(
        "orphan-reaper-request-above-limit",
        _string,
        "housekeeping.orphanedPods.resources.requests.memory",
        "4Gi",
    ),
    _schema_case("sync-timeout-huge", _json, "presets.clickhouseSync.timeouts.runMinutes", 1e300),
    _schema_case("airflow-pool-slots-huge", _json, "presets.airflowPools.slots.airflow-jobs", 1e12),
    _template_case("airflow-pool-slots-unknown-namespace", _json, "presets.airflowPools.slots.team-x", 3),
]

# The worker pods' egress to the Kubernetes API: a catch-all prefix would open their egress to everything.
API_SERVER_CIDRS = [
    (
        f"catch-all-{name}",
        _json("networkPolicies.egress.apiServer.cidrs", [cidr]),
        "/networkPolicies/egress/apiServer/cidrs/0",
    )
    for name, cidr in {"ipv4": "0.0.0.0/0", "ipv6": "::/0", "ipv4-other-base": "10.0.0.0/0"}.items()
]

# Settings that only fail in the cluster: the servers' pods as root, a PriorityClass the API server
# admits in kube-system only (the chart installs elsewhere), two SMTP TLS modes at once.
ONLY_FAILED_IN_THE_CLUSTER = [
    _schema_case("postgres-root-uid", _json, "postgres.podSecurityContext.runAsUser", 0),
    _schema_case("postgres-run-as-root", _json, "postgres.podSecurityContext.runAsNonRoot", False),
    _schema_case("clickhouse-root-uid", _json, "clickhouse.podSecurityContext.runAsUser", 0),
    _schema_case("clickhouse-run-as-root", _json, "clickhouse.podSecurityContext.runAsNonRoot", False),
    _schema_case(
        "scheduler-node-critical", _string, "airflow.scheduler.priorityClassName", "system-node-critical"
    ),
    _schema_case(
        "api-server-cluster-critical",
        _string,
        "airflow.apiServer.priorityClassName",
        "system-cluster-critical",
    ),
    _schema_case(
        "workers-node-critical", _string, "airflow.workers.priorityClassName", "system-node-critical"
    ),
    _schema_case(
        "migrate-cluster-critical",
        _string,
        "airflow.migrateDatabase.priorityClassName",
        "system-cluster-critical",
    ),
    (
        "smtp-ssl-and-starttls",
        [
            *_set("presets.notifications.smtp.ssl", "true"),
            *_set("presets.notifications.smtp.starttls", "true"),
        ],
        "/presets/notifications/smtp/starttls",
    ),
]

CLASSES = {
    "api-server-cidr": API_SERVER_CIDRS,
    "quantity": QUANTITIES,
    "requests-above-limits": REQUESTS_ABOVE_LIMITS,
    "disruption-budget": DISRUPTION_BUDGETS,
    "airflow-config": AIRFLOW_CONFIG,
    "airflow-env": AIRFLOW_ENV,
    "namespace": NAMESPACES,
    "number": NUMBERS,
    "sync-database": SYNC_DATABASES,
    "service-monitor": SERVICE_MONITOR,
    "image": IMAGES,
    "job-preset": JOB_PRESETS,
    "host-path": HOST_PATHS,
    "unclear-before": UNCLEAR_BEFORE,
    "string-rendered": STRINGS_RENDERED,
    "extra-volume": EXTRA_VOLUMES,
    "extra-env": EXTRA_ENV,
    "owned-config": OWNED_CONFIG,
    "pool-definition": POOL_DEFINITIONS,
    "only-failed-in-the-cluster": ONLY_FAILED_IN_THE_CLUSTER,
}
CASES = [
    pytest.param(arguments, key, id=f"{cls}-{case}")
    for cls, cases in CLASSES.items()
    for case, arguments, key in cases
]


@pytest.mark.parametrize(("arguments", "key"), CASES)
def test_bad_value_refused_naming_the_key(arguments: list[str], key: str) -> None:
    error = render_error(*arguments)
    assert key in error, error
    assert "nil pointer" not in error and "error converting YAML" not in error, error


@pytest.mark.parametrize("values_key", [pytest.param(key, id=case) for case, key in INJECTIONS])
def test_newline_injection_refused(values_key: str, tmp_path: Path) -> None:
    payload = tmp_path / "payload"
    payload.write_text(INJECTED)  # --set-file: the file's text is the value, commas and newlines included
    error = render_error("--set", "airflow.logs.mode=hostPath", "--set-file", f"{values_key}={payload}")
    assert _pointer(values_key) in error, error


@pytest.mark.parametrize(("peers", "key"), [pytest.param(p, k, id=i) for i, p, k in INGRESS_PEERS])
def test_api_server_ingress_peer_must_select_someone(peers: list, key: str) -> None:
    error = render_error(*_json("networkPolicies.apiServerExtraIngressFrom", peers))
    assert key in error, error


def test_many_cases_per_class() -> None:
    counts = {cls: len(cases) for cls, cases in CLASSES.items()}
    counts["injection"], counts["ingress-peer"] = len(INJECTIONS), len(INGRESS_PEERS)
    assert all(count >= 3 for count in counts.values()), counts
    assert sum(counts.values()) >= 150


# --- Values that look odd but are valid: quoted, exact, no document injected -------------------------


def test_strings_that_look_like_other_yaml_types_stay_strings() -> None:
    manifests = render(
        "values.yaml",
        "--set-string", "postgres.persistence.storageClassName=true",
        "--set-string", "clickhouse.persistence.storageClassName=0755",
        "--set", "clickhouse.enabled=true", "--set", "clickhouse.persistence.enabled=true",
        *_workload(1, "name", "1234"),
        "--set-string", "images.tag=1.10",
    )  # fmt: skip
    claim = find(manifests, "PersistentVolumeClaim", "airflow-platform-postgres-data")
    assert claim["spec"]["storageClassName"] == "true"
    source = find(manifests, "PersistentVolumeClaim", "clickhouse-source-data")
    assert source["spec"]["storageClassName"] == "0755"
    assert find(manifests, "Namespace", "1234")["metadata"]["name"] == "1234"
    scheduler = find(manifests, "Deployment", "airflow-platform-scheduler")
    assert scheduler["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.10")


def test_env_value_with_a_document_stays_one_value() -> None:
    """airflow.env is passed through toYaml: a multi-line value is data, never a document."""
    manifests = render("values.yaml", *_env({"name": "TEAM_NOTE", "value": INJECTED}))
    assert [m for m in manifests if m["metadata"]["name"] == "pwned"] == []
    scheduler = find(manifests, "Deployment", "airflow-platform-scheduler")
    env = {e["name"]: e for e in scheduler["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TEAM_NOTE"]["value"] == INJECTED


def test_integers_from_values_files_render_as_integers(tmp_path: Path) -> None:
    """Helm reads YAML numbers of a values file as float64: %v would print 1e+07."""
    values = tmp_path / "big.yaml"
    values.write_text(
        "airflow:\n"
        "  config: {core: {parallelism: 10000000, max_active_tasks_per_dag: 2000000}}\n"
        "  migrationWaitTimeout: 86400\n"
        "  workers: {taskQueuedTimeout: 604800}\n"
        "namespaces:\n  workers:\n    quota: {pods: 10000000}\n"
        "clickhouse: {enabled: true, loadDemoData: {rows: 10000000}}\n"
    )
    result = render("values.yaml", "--values", str(values))
    text = json.dumps(result)
    assert "e+0" not in text and "e+1" not in text
    cfg = airflow_cfg(result)
    assert cfg["core"]["parallelism"] == "10000000"
    assert cfg["core"]["max_active_tasks_per_dag"] == "2000000"
    assert cfg["scheduler"]["task_queued_timeout"] == "604800"
    loader = next(
        m for m in of_kind(result, "Job") if m["metadata"]["name"].startswith("clickhouse-demo-data")
    )
    env = {e["name"]: e.get("value") for e in loader["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DEMO_ROWS"] == "10000000"


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param(
            _env({"name": "AIRFLOW__SMTP__SMTP_PASSWORD", "valueFrom": SECRET_REF}), id="secret-from-ref"
        ),
        pytest.param(_env({"name": "AIRFLOW__CORE__PARALLELISM", "value": "8"}), id="not-owned-option"),
        pytest.param(
            _env({"name": "AIRFLOW_CONN_WAREHOUSE", "valueFrom": SECRET_REF}), id="connection-from-ref"
        ),
        pytest.param(
            _string("airflow.scheduler.resources.requests.memory", "2Gi"), id="request-equals-limit"
        ),
        pytest.param(
            _string("airflow.scheduler.resources.requests.memory", "2147483648"), id="bytes-equal-2Gi"
        ),
        pytest.param(_string("airflow.scheduler.resources.requests.cpu", "2000m"), id="millis-equal-cores"),
        pytest.param(["--set", "images.tag=latest", "--set", "images.pullPolicy=Always"], id="latest-always"),
        pytest.param(
            ["--set", "airflow.scheduler.podDisruptionBudget.maxUnavailable=100%"], id="pdb-100-percent"
        ),
        pytest.param(
            ["--set", "airflow.logs.mode=hostPath", "--set", "airflow.logs.hostPath.path=/data/airflow"],
            id="host-path-dedicated",
        ),
        pytest.param(
            [
                *_set("presets.notifications.smtp.ssl", "true"),
                *_set("presets.notifications.smtp.port", "465"),
            ],
            id="smtp-ssl-alone",
        ),
        pytest.param(
            _string("airflow.scheduler.priorityClassName", "platform-critical"), id="own-priority-class"
        ),
        pytest.param(
            _json("postgres.podSecurityContext", {"runAsUser": 70, "fsGroup": 70}), id="postgres-other-uid"
        ),
        pytest.param(
            [
                "--set",
                "namespaces.podSecurityLevel=privileged",
                *_json(f"{RESTRICTED_CONTEXT}.capabilities.add", ["SYS_ADMIN"]),
            ],
            id="privileged-namespaces-accept-capabilities",
        ),
        pytest.param(
            [
                "--set",
                "namespaces.podSecurityLevel=baseline",
                "--set",
                f"{RESTRICTED_CONTEXT}.runAsNonRoot=false",
            ],
            id="baseline-allows-root",
        ),
        pytest.param(
            _json(
                "networkPolicies.apiServerExtraIngressFrom",
                [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                        },
                        "podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
                    }
                ],
            ),
            id="ingress-controller-peer",
        ),
    ],
)
def test_valid_edge_values_render(arguments: list[str]) -> None:
    render("values.yaml", *arguments)
