"""The sync DAG's pods, rendered for a run, executed as the container would against real ClickHouse servers.

Each pod's command line (templates rendered, `$(VAR)` substituted from its environment exactly as the
kubelet does, the chart's clickhouse-client ConfigMap files in place) runs locally against Debian's
ClickHouse 18.16: a TLS destination with a self-signed certificate proves the verify flag, a real pair
proves the preflight and the drop/create statements.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from airflow_platform_pools.testing import restore_presets, use_presets

from tests.chart.rendering import find, render
from tests.chart.rendering import presets as chart_presets
from tests.clickhouse.servers import ServerInfo, clickhouse_pair
from tests.facts import CLICKHOUSE_NAMESPACE, RELEASE

from .conftest import DAGS
from .rendering import rendered_pod

CLIENT_CONFIG_MAP = ("ConfigMap", f"{RELEASE}-clickhouse-client", CLICKHOUSE_NAMESPACE)
PASSWORDS = {"source-password": "", "destination-password": ""}  # the test servers' default user
ENV_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ServerInfo, ServerInfo]]:
    with clickhouse_pair(destination_tls=True) as pair:
        source, _ = pair
        source.client().execute("CREATE DATABASE IF NOT EXISTS demo")
        source.client().execute("CREATE TABLE demo.events (id UInt32) ENGINE = MergeTree ORDER BY id")
        source.client().execute("INSERT INTO demo.events VALUES", [(1,), (2,), (3,)])
        yield pair


def _profile(server: ServerInfo, *, host: str | None = None, tls: bool = False, verify: bool = True) -> dict:
    return {
        "host": host or server.host, "port": server.secure_port if tls else server.port, "user": "default",
        "passwordKey": f"{server.name}-password", "secure": tls, "verify": verify,
    }  # fmt: skip


@pytest.fixture(scope="module")
def local(servers: tuple[ServerInfo, ServerInfo], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The DAG parsed with profiles pointing at the local servers, and the chart's client ConfigMap files."""
    source, destination = servers
    profiles = {
        "demo-source": _profile(source),
        "demo-destination": _profile(destination),
        "source-by-name": _profile(source, host="localhost"),
        "destination-tls": _profile(destination, tls=True, verify=True),
        "destination-tls-no-verify": _profile(destination, tls=True, verify=False),
    }
    workdir = tmp_path_factory.mktemp("local-pods")
    values = workdir / "values.yaml"
    values.write_text(yaml.safe_dump({"presets": {"clickhouseSync": {"profiles": profiles}}}))
    manifests = render("values-kind.yaml", "--values", str(values))
    (workdir / "presets.json").write_text(json.dumps(chart_presets(manifests)))
    config_dir = workdir / "clickhouse-client"
    config_dir.mkdir()
    for name, text in find(manifests, *CLIENT_CONFIG_MAP)["data"].items():
        (config_dir / name).write_text(text)
    previous = use_presets(workdir / "presets.json")
    try:
        dag = DagBag(dag_folder=str(DAGS)).dags["clickhouse_db_sync"]
    finally:
        restore_presets(previous)
    yield dag, config_dir


def run_pod(local: Any, task_id: str, **params: Any) -> subprocess.CompletedProcess[str]:
    """Run the task's container command here, as the kubelet would start it."""
    dag, config_dir = local
    container = rendered_pod(dag, task_id, **params).spec.containers[0]
    env = {e.name: PASSWORDS[e.value_from.secret_key_ref.key] for e in container.env or [] if e.value_from}
    argv = [ENV_REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), arg) for arg in
            [*container.command, *container.args]]  # fmt: skip
    argv = [arg.replace("/etc/clickhouse-client-platform", str(config_dir)) for arg in argv]
    if argv[0] == "clickhouse-migrate":  # the image's console script: here the venv's
        argv[0] = str(Path(sys.executable).with_name("clickhouse-migrate"))
    return subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


def _databases(server: ServerInfo) -> set[str]:
    return {row[0] for row in server.client().execute("SHOW DATABASES")}


def test_preflight_passes_for_a_real_pair(local: Any) -> None:
    result = run_pod(local, "preflight", destination_db="demo_copy")
    assert result.returncode == 0, result.stderr


def test_preflight_refuses_the_source_under_another_name(local: Any, servers: Any) -> None:
    result = run_pod(local, "preflight", destination_profile="source-by-name", destination_db="demo")
    assert result.returncode == 6, result.stderr
    assert "demo" in _databases(servers[0])


def test_preflight_refuses_a_missing_source_database(local: Any) -> None:
    result = run_pod(local, "preflight", source_db="no_such_db", destination_db="demo_copy")
    assert result.returncode == 5, result.stderr


def test_drop_and_create_run_their_statement_on_the_destination(local: Any, servers: Any) -> None:
    destination = servers[1]
    destination.client().execute("CREATE DATABASE IF NOT EXISTS stale_copy")
    destination.client().execute("CREATE TABLE stale_copy.old (id UInt8) ENGINE = Memory")

    dropped = run_pod(local, "drop_destination_db", destination_db="stale_copy")
    assert dropped.returncode == 0, dropped.stderr
    assert "stale_copy" not in _databases(destination)
    created = run_pod(local, "create_db", destination_db="stale_copy")
    assert created.returncode == 0, created.stderr
    assert "stale_copy" in _databases(destination)
    assert destination.client().execute("SHOW TABLES FROM stale_copy") == []
    again = run_pod(local, "create_db", destination_db="stale_copy")  # a retry is harmless
    assert again.returncode == 0, again.stderr


def test_client_verifies_the_destination_certificate_when_the_profile_says_so(
    local: Any, servers: Any
) -> None:
    servers[1].client().execute("CREATE DATABASE IF NOT EXISTS tls_copy")
    refused = run_pod(
        local, "drop_destination_db", destination_profile="destination-tls", destination_db="tls_copy"
    )
    assert refused.returncode != 0
    assert "certificate verify failed" in refused.stderr
    assert "tls_copy" in _databases(servers[1])

    accepted = run_pod(
        local,
        "drop_destination_db",
        destination_profile="destination-tls-no-verify",
        destination_db="tls_copy",
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "tls_copy" not in _databases(servers[1])


def test_a_wrong_password_is_a_deterministic_exit_code(local: Any, servers: Any) -> None:
    PASSWORDS["destination-password"] = "wrong"
    try:
        result = run_pod(local, "create_db", destination_db="never_created")
    finally:
        PASSWORDS["destination-password"] = ""
    assert result.returncode not in local[0].get_task("create_db").retry_exit_codes
    assert "never_created" not in _databases(servers[1])


def test_unreachable_destination_is_the_retryable_exit_code(
    local: Any, servers: Any, monkeypatch: Any
) -> None:
    dag = local[0]
    module = sys.modules[type(dag.get_task("create_db")).__module__]
    monkeypatch.setitem(
        module.PROFILES, "demo-destination", {**module.PROFILES["demo-destination"], "port": 1}
    )
    result = run_pod(local, "create_db", destination_db="x")
    assert result.returncode in dag.get_task("create_db").retry_exit_codes, result.stderr
    migrate = run_pod(local, "preflight", destination_db="x")
    assert migrate.returncode == 3, migrate.stderr
    assert migrate.returncode in dag.get_task("preflight").retry_exit_codes
