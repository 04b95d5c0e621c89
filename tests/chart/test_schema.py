"""Invalid values are rejected by `helm template` (schema or template `fail`) with the key named."""

from __future__ import annotations

import json
import re

import pytest

from tests.facts import RELEASE

from .rendering import CHART, POOLS, find, render, render_error

# (id, helm arguments, text the error must contain: the offending key's path)
INVALID = [
    ("unknown-top-level-key", ["--set", "colour=blue"], "colour"),
    ("unknown-airflow-key", ["--set", "airflow.schedulr.replicas=2"], "schedulr"),
    ("unknown-image-key", ["--set", "images.airflow.digest=sha256"], "/images/airflow"),
    ("pull-policy-enum", ["--set", "images.pullPolicy=Sometimes"], "/images/pullPolicy"),
    ("tag-pattern", ["--set", "images.tag=bad tag"], "/images/tag"),
    ("unknown-pool-for-airflow", ["--set", "nodePools.airflow=blue"], "nodePools.airflow"),
    ("unknown-pool-for-services", ["--set", "nodePools.services=fast"], "nodePools.services"),
    ("pool-name-pattern", ["--set", "nodePools.airflow=Blue Pool"], "/nodePools/airflow"),
    (
        "unknown-pool-in-namespace",
        [
            "--set-json",
            'namespaces.workloads=[{"name":"jobs","pools":["tpu"],'
            '"quota":{},"limitRange":{"default":{},"defaultRequest":{}}}]',
        ],
        "namespaces.workloads[0].pools[0]",
    ),
    (
        "namespace-name-pattern",
        ["--set", "namespaces.workers.name=Airflow_Workers"],
        "/namespaces/workers/name",
    ),
    ("psa-level-enum", ["--set", "namespaces.podSecurityLevel=strict"], "/namespaces/podSecurityLevel"),
    ("replicas-type", ["--set-string", "airflow.scheduler.replicas=two"], "/airflow/scheduler/replicas"),
    ("replicas-negative", ["--set", "airflow.apiServer.replicas=-1"], "/airflow/apiServer/replicas"),
    (
        "service-type-enum",
        ["--set", "airflow.apiServer.service.type=Ingress"],
        "/airflow/apiServer/service/type",
    ),
    (
        "node-port-range",
        ["--set", "airflow.apiServer.service.nodePort=8080"],
        "/airflow/apiServer/service/nodePort",
    ),
    (
        "node-port-needs-node-port-service",
        ["--set", "airflow.apiServer.service.nodePort=30080"],
        "/airflow/apiServer/service/type",
    ),
    ("external-db-without-secret", ["--set", "postgres.enabled=false"], "/externalDatabase/secretName"),
    ("postgres-enabled-type", ["--set-string", "postgres.enabled=yes"], "/postgres/enabled"),
    ("postgres-size-pattern", ["--set", "postgres.persistence.size=2GB"], "/postgres/persistence/size"),
    ("keep-on-uninstall-type", ["--set-string", "keepOnUninstall=sometimes"], "/keepOnUninstall"),
    ("logs-mode-enum", ["--set", "airflow.logs.mode=s3"], "/airflow/logs/mode"),
    (
        "logs-pvc-needs-storage-class",
        ["--set", "airflow.logs.mode=pvc"],
        "/airflow/logs/pvc/storageClassName",
    ),
    (
        "batch-size-minimum",
        ["--set", "airflow.workers.podsCreationBatchSize=0"],
        "/airflow/workers/podsCreationBatchSize",
    ),
    (
        "queued-timeout-minimum",
        ["--set", "airflow.workers.taskQueuedTimeout=5"],
        "/airflow/workers/taskQueuedTimeout",
    ),
    ("base-url-pattern", ["--set", "airflow.baseUrl=airflow.example.com"], "/airflow/baseUrl"),
    ("config-section-must-be-map", ["--set", "airflow.config.core=parallel"], "/airflow/config/core"),
    ("secret-key-pattern", ["--set", "secrets.fernetKey.key=bad key"], "/secrets/fernetKey/key"),
    ("unknown-secret", ["--set", "secrets.sshKey.existingSecret=x"], "sshKey"),
    (
        "on-finish-action-enum",
        ["--set", "presets.podDefaults.onFinishAction=wait"],
        "/presets/podDefaults/onFinishAction",
    ),
    (
        "execute-query-on-enum",
        ["--set", "presets.clickhouseSync.executeQueryOn=both"],
        "/presets/clickhouseSync/executeQueryOn",
    ),
    (
        "clickhouse-port-range",
        ["--set", "presets.clickhouseSync.profiles.demo-source.port=70000"],
        "/presets/clickhouseSync/profiles/demo-source/port",
    ),
    (
        "demo-rows-type",
        ["--set-string", "clickhouse.loadDemoData.rows=many"],
        "/clickhouse/loadDemoData/rows",
    ),
    ("workloads-not-empty", ["--set-json", "namespaces.workloads=[]"], "/namespaces/workloads"),
    (
        "pool-without-namespace",
        [
            "--set-json",
            'namespaces.workloads=[{"name":"jobs","pools":["general"],'
            '"quota":{},"limitRange":{"default":{},"defaultRequest":{}}}]',
        ],
        "namespaces.workloads",
    ),
    (
        "secret-in-airflow-config",
        ["--set", "airflow.config.core.fernet_key=abc"],
        "airflow.config.core.fernet_key",
    ),
]


@pytest.mark.parametrize(("arguments", "key"), [pytest.param(a, k, id=i) for i, a, k in INVALID])
def test_invalid_values_rejected_naming_the_key(arguments: list[str], key: str) -> None:
    error = render_error(*arguments)
    assert key in error, error


def test_at_least_twenty_invalid_inputs() -> None:
    assert len(INVALID) >= 20


def test_schema_accepts_every_pool_of_the_file() -> None:
    """Pool names are free in the schema (values may add pools); the file's names must pass its pattern."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    pattern = re.compile(schema["$defs"]["pool"]["pattern"])
    assert all(pattern.fullmatch(name) for name in POOLS["pools"])


def test_kubernetes_passthrough_objects_stay_open() -> None:
    """Fields the official chart's stale schema rejected (valueFrom, new pod fields) are accepted."""
    env = '[{"name":"TEAM_TOKEN","valueFrom":{"secretKeyRef":{"name":"team","key":"token"}}}]'
    resources = '{"requests":{"cpu":"1","memory":"1Gi","ephemeral-storage":"1Gi"},"limits":{"memory":"2Gi"}}'
    manifests = render(
        "values.yaml",
        "--set-json", f"airflow.env={env}",
        "--set-json", f"airflow.scheduler.resources={resources}",
    )  # fmt: skip
    scheduler = find(manifests, "Deployment", f"{RELEASE}-scheduler")
    env_names = [e["name"] for e in scheduler["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert "TEAM_TOKEN" in env_names
