"""FAB logins (issue #13) in a real Airflow, configured and migrated by what the chart renders.

Everything the platform runs for `airflow.auth.manager: fab` is taken from the rendered chart, not
re-typed here: the auth options of airflow.cfg (as AIRFLOW__SECTION__OPTION env), the
webserver_config.py mounted at `[fab] config_file`, and the migration Job's own command, run locally
with the env the Job gives it (admin names from its plain values, ADMIN_PASSWORD from the admin
Secret, here a password of the test's). Then api-server, scheduler and dag-processor run on a real
PostgreSQL (tests/dags/live_airflow.py) and the REST API is called as the FAB admin, as users made
with Airflow's own CLI, and as strangers.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests
from sqlalchemy.engine import make_url

from tests.chart.rendering import NAMESPACE, RELEASE, Manifest, airflow_cfg, find, of_kind, render

from .conftest import DAGS
from .live_airflow import LiveAirflow, airflow_processes, postgres_server, wait_until

POOL_DAG = "node_pool_examples"
# Not the default name: proves the script takes the admin from the Job's env, not from a constant.
ADMIN = "platform-admin"
# Options of these sections are auth settings wherever they sit; elsewhere only those named *auth*.
AUTH_SECTIONS = ("fab", "api_auth")


@dataclass
class FabChart:
    """What the chart renders for FAB and this test runs."""

    auth_env: dict[str, str]  # AIRFLOW__SECTION__OPTION of the rendered airflow.cfg's auth options
    webserver_config: str  # the file mounted at [fab] config_file
    migrate_command: list[str]  # the migration Job's container command
    migrate_env: dict[str, str | None]  # the Job's env the script reads; None: from the admin Secret


def _container(manifest: Manifest) -> dict[str, Any]:
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    return container


def _mounted_file(manifests: list[Manifest], workload: Manifest, path: str) -> str:
    """The ConfigMap key a workload's container mounts at `path` (what the process really reads)."""
    spec = workload["spec"]["template"]["spec"]
    (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == path]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    config_map = find(manifests, "ConfigMap", volume["configMap"]["name"], NAMESPACE)
    return config_map["data"][mount["subPath"]]


@pytest.fixture(scope="module")
def chart() -> FabChart:
    manifests = render(
        "values-kind.yaml",
        "--set",
        "airflow.auth.manager=fab",
        "--set",
        f"airflow.auth.admin.username={ADMIN}",
    )
    cfg = airflow_cfg(manifests)
    auth_env = {
        f"AIRFLOW__{section.upper()}__{option.upper()}": value
        for section, options in cfg.items()
        for option, value in options.items()
        if section in AUTH_SECTIONS or "auth" in option
    }
    assert auth_env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("FabAuthManager"), auth_env
    job = next(j for j in of_kind(manifests, "Job") if "-migrate-" in j["metadata"]["name"])
    api_server = find(manifests, "Deployment", f"{RELEASE}-api-server", NAMESPACE)
    # The api-server (logins) and the Job (FAB app for sync-perm and the admin) must read the same file.
    config_file = cfg["fab"]["config_file"]
    webserver_config = _mounted_file(manifests, api_server, config_file)
    assert _mounted_file(manifests, job, config_file) == webserver_config
    container = _container(job)
    script = container["command"][-1]
    job_env = {item["name"]: item for item in container["env"]}
    migrate_env: dict[str, str | None] = {}
    for name in sorted(set(re.findall(r"""os\.environ\[["'](\w+)["']\]""", script))):
        item = job_env[name]
        if "value" in item:
            migrate_env[name] = item["value"]
        else:  # the only secret the script reads: the admin password, from the admin Secret
            assert item["valueFrom"]["secretKeyRef"]["name"] == f"{RELEASE}-admin", item
            migrate_env[name] = None
    assert migrate_env["FAB_ADMIN_USERNAME"] == ADMIN
    assert "ADMIN_PASSWORD" in migrate_env and migrate_env["ADMIN_PASSWORD"] is None, migrate_env
    return FabChart(auth_env, webserver_config, container["command"], migrate_env)


def _job_env(chart: FabChart, admin_password: str) -> dict[str, str]:
    """The Job's env for its script, with `admin_password` as the admin Secret's value."""
    env = {name: admin_password if value is None else value for name, value in chart.migrate_env.items()}
    # The image has `airflow` and `python` on PATH; here they are the venv's.
    return {**env, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}


@dataclass
class FabAirflow:
    live: LiveAirflow
    chart: FabChart
    admin_password: str
    users: dict[str, str]  # role -> username made with the CLI; password in `passwords`
    passwords: dict[str, str]


def _create_user(live: LiveAirflow, role: str) -> tuple[str, str]:
    """A FAB user of `role`, made with Airflow's own CLI (what an operator runs in the api-server pod)."""
    username, password = f"live-{role.lower()}", secrets.token_urlsafe(16)
    airflow = str(Path(sys.executable).parent / "airflow")
    # --password=…: a token_urlsafe password may start with "-", which argparse reads as another option
    command = [airflow, "users", "create", "--role", role, "--username", username, f"--password={password}"]
    command += ["--email", f"{username}@example.test", "--firstname", role, "--lastname", "Live"]
    result = subprocess.run(command, env=live.env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return username, password


@pytest.fixture(scope="module")
def fab(chart: FabChart, tmp_path_factory: pytest.TempPathFactory, presets: dict) -> Iterator[FabAirflow]:
    home = tmp_path_factory.mktemp("airflow-fab-home")
    presets_file = home / "presets.json"
    presets_file.write_text(json.dumps(presets))
    webserver_config = home / "webserver_config.py"
    webserver_config.write_text(chart.webserver_config)
    # The rendered path is the pod's mount; locally the same content lives in AIRFLOW_HOME.
    extra_env = {**chart.auth_env, "AIRFLOW__FAB__CONFIG_FILE": str(webserver_config)}
    admin_password = secrets.token_urlsafe(16)
    with (
        postgres_server() as sql_alchemy_conn,
        airflow_processes(
            sql_alchemy_conn, DAGS, presets_file, home, extra_env,
            component_env={"migrate": _job_env(chart, admin_password)},
            migrate_command=chart.migrate_command,
        ) as live,
    ):  # fmt: skip
        assert f"created the FAB admin user {ADMIN!r}" in live.migrate_output, live.migrate_output
        live.wait_healthy()
        users, passwords = {}, {}
        for role in ("Viewer", "Op"):
            users[role], passwords[role] = _create_user(live, role)
        yield FabAirflow(live, chart, admin_password, users, passwords)


def _token_response(live: LiveAirflow, username: str, password: str) -> requests.Response:
    return requests.post(
        f"{live.base_url}/auth/token", json={"username": username, "password": password}, timeout=30
    )


def _token(live: LiveAirflow, username: str, password: str) -> str:
    response = _token_response(live, username, password)
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


def _call(live: LiveAirflow, token: str, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(
        method,
        f"{live.base_url}/api/v2{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


@pytest.fixture(scope="module")
def parsed(fab: FabAirflow) -> None:
    """Until the dag-processor has serialized the per-pool example DAG (seen through the admin's eyes)."""
    token = _token(fab.live, ADMIN, fab.admin_password)
    wait_until(
        lambda: _call(fab.live, token, "GET", f"/dags/{POOL_DAG}").status_code == 200,
        f"the parsed {POOL_DAG} DAG",
        180,
        fab.live.logs,
    )


def test_the_admin_from_the_migration_job_gets_a_token(fab: FabAirflow) -> None:
    token = _token(fab.live, ADMIN, fab.admin_password)
    response = _call(fab.live, token, "GET", "/dags")
    assert response.status_code == 200, response.text


def test_the_job_migrates_the_fab_schema_with_alembic(fab: FabAirflow) -> None:
    """FAB's tables come from its Alembic migrations (the FAB DB manager `airflow db migrate` runs), at
    the installed provider's head, not from an ad-hoc create_all: later provider upgrades migrate them.
    """
    from airflow.providers.fab.auth_manager.models.db import FABDBManager
    from alembic.script import ScriptDirectory

    url = make_url(fab.live.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    with (
        psycopg2.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute(f"SELECT version_num FROM {FABDBManager.version_table_name}")
        versions = [row[0] for row in cursor.fetchall()]
    assert versions == [ScriptDirectory(FABDBManager.migration_dir).get_current_head()]


def test_cli_users_log_in(fab: FabAirflow) -> None:
    for role, username in fab.users.items():
        assert _token(fab.live, username, fab.passwords[role]), role


@pytest.mark.usefixtures("parsed")
def test_viewer_reads_but_may_neither_trigger_nor_unpause(fab: FabAirflow) -> None:
    token = _token(fab.live, fab.users["Viewer"], fab.passwords["Viewer"])
    read = _call(fab.live, token, "GET", f"/dags/{POOL_DAG}")
    assert read.status_code == 200, read.text
    trigger = _call(fab.live, token, "POST", f"/dags/{POOL_DAG}/dagRuns", {"logical_date": None})
    assert trigger.status_code == 403, trigger.text
    unpause = _call(fab.live, token, "PATCH", f"/dags/{POOL_DAG}", {"is_paused": False})
    assert unpause.status_code == 403, unpause.text
    assert _call(fab.live, token, "GET", f"/dags/{POOL_DAG}").json()["is_paused"] is True


@pytest.mark.usefixtures("parsed")
def test_op_unpauses_and_triggers(fab: FabAirflow) -> None:
    token = _token(fab.live, fab.users["Op"], fab.passwords["Op"])
    unpause = _call(fab.live, token, "PATCH", f"/dags/{POOL_DAG}", {"is_paused": False})
    assert unpause.status_code == 200, unpause.text
    assert unpause.json()["is_paused"] is False
    trigger = _call(fab.live, token, "POST", f"/dags/{POOL_DAG}/dagRuns", {"logical_date": None})
    assert trigger.status_code == 200, trigger.text
    run_id = trigger.json()["dag_run_id"]
    assert _call(fab.live, token, "GET", f"/dags/{POOL_DAG}/dagRuns/{run_id}").status_code == 200


@pytest.mark.parametrize(
    ("who", "refusal"),
    [
        ("unknown-user", {401}),
        ("admin-wrong-password", {401}),
        ("viewer-wrong-password", {401}),
        # FAB rejects missing credentials as a bad request before looking the user up.
        ("viewer-empty-password", {400, 401}),
    ],
)
def test_strangers_get_no_token(fab: FabAirflow, who: str, refusal: set[int]) -> None:
    username, password = {
        "unknown-user": ("nobody-" + secrets.token_hex(4), secrets.token_urlsafe(16)),
        "admin-wrong-password": (ADMIN, fab.admin_password + "x"),
        "viewer-wrong-password": (fab.users["Viewer"], fab.passwords["Op"]),
        "viewer-empty-password": (fab.users["Viewer"], ""),
    }[who]
    response = _token_response(fab.live, username, password)
    assert response.status_code in refusal, response.text
    assert "access_token" not in response.text


@pytest.mark.parametrize("token", [None, "not-a-jwt"])
def test_the_api_is_closed_without_a_valid_token(fab: FabAirflow, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"{fab.live.base_url}/api/v2/dags", headers=headers, timeout=30)
    assert response.status_code in {401, 403}, response.text


def test_rerunning_the_migration_job_rotates_the_admin_password(fab: FabAirflow) -> None:
    """An upgrade with a new admin Secret runs the Job again: the user exists, its password changes.

    Last in this module (pytest keeps file order): the other tests use the first password.
    """
    new_password = secrets.token_urlsafe(16)
    env = {**fab.live.env, **_job_env(fab.chart, new_password)}
    rerun = subprocess.run(fab.chart.migrate_command, env=env, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-4000:]
    assert f"FAB admin user {ADMIN!r} exists; password set from the admin Secret" in rerun.stdout
    assert _token_response(fab.live, ADMIN, fab.admin_password).status_code == 401
    token = _token(fab.live, ADMIN, new_password)
    assert _call(fab.live, token, "GET", "/dags").status_code == 200
    fab.admin_password = new_password
