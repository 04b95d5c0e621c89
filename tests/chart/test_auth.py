"""Auth managers (issue #13): SimpleAuthManager for kind, FAB (roles, admin from a Secret) for production."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.facts import WORKER_NAMESPACE

from .rendering import NAMESPACE, RELEASE, Manifest, airflow_cfg, find, of_kind, render, render_error

FAB = ("--set", "airflow.auth.manager=fab")
WORKERS = WORKER_NAMESPACE


def api_server(manifests: list[Manifest]) -> dict:
    return find(manifests, "Deployment", f"{RELEASE}-api-server", NAMESPACE)["spec"]["template"]["spec"]


def migrate_job(manifests: list[Manifest]) -> dict:
    return next(j for j in of_kind(manifests, "Job") if "-migrate-" in j["metadata"]["name"])


def test_simple_auth_manager_by_default() -> None:
    manifests = render("values-kind.yaml")
    cfg = airflow_cfg(manifests)
    assert cfg["core"]["auth_manager"].endswith("SimpleAuthManager")
    assert "fab" not in cfg
    assert [c["name"] for c in api_server(manifests)["initContainers"]][-1] == "write-auth-passwords"
    assert "webserver_config.py" not in find(manifests, "ConfigMap", f"{RELEASE}-config", NAMESPACE)["data"]


def test_fab_auth_manager_configuration() -> None:
    manifests = render("values-kind.yaml", *FAB)
    cfg = airflow_cfg(manifests)
    assert cfg["core"]["auth_manager"] == "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
    assert cfg["fab"]["config_file"] == "/opt/airflow/webserver_config.py"
    assert not {"simple_auth_manager_users", "simple_auth_manager_passwords_file"} & set(cfg["core"])
    spec = api_server(manifests)
    assert "write-auth-passwords" not in [c["name"] for c in spec["initContainers"]]
    assert "auth" not in [v["name"] for v in spec["volumes"]]
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["/opt/airflow/webserver_config.py"]["subPath"] == "webserver_config.py"
    for namespace in (NAMESPACE, WORKERS):  # worker pods run the same auth manager code
        data = find(manifests, "ConfigMap", f"{RELEASE}-config", namespace)["data"]
        assert "AUTH_TYPE = AUTH_DB" in data["webserver_config.py"]
        compile(data["webserver_config.py"], "webserver_config.py", "exec")


def test_fab_admin_created_by_the_migration_job_from_the_secret() -> None:
    manifests = render(
        "values-kind.yaml",
        *FAB,
        "--set",
        "secrets.adminPassword.existingSecret=team-admin",
        "--set",
        "airflow.auth.admin.username=platform-admin",
    )
    container = migrate_job(manifests)["spec"]["template"]["spec"]["containers"][0]
    script = container["command"][-1]
    assert (
        script.index("airflow db migrate")
        < script.index("airflow sync-perm")
        < script.index("python - <<'PY'")
    )
    env = {variable["name"]: variable for variable in container["env"]}
    assert env["ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "team-admin", "key": "password"}
    assert env["FAB_ADMIN_USERNAME"]["value"] == "platform-admin"
    assert "team-admin" not in script and "password" not in " ".join(container["command"][:-1])
    program = script.split("python - <<'PY'\n", 1)[1].split("\nPY\n", 1)[0]
    compile(program, "ensure-admin", "exec")
    assert "reset_password" in program and 'find_role("Admin")' in program


def test_webserver_config_from_values(tmp_path: Path) -> None:
    config = (
        "import os\n"
        "from flask_appbuilder.security.manager import AUTH_OAUTH\n"
        "AUTH_TYPE = AUTH_OAUTH\n"
        'AUTH_ROLES_MAPPING = {"ops": ["Op"], "readers": ["Viewer"]}\n'
        'OAUTH_PROVIDERS = [{"name": "corp", "token_key": "access_token",\n'
        '                    "remote_app": {"client_secret": os.environ["OAUTH_SECRET"]}}]\n'
    )
    values = tmp_path / "auth.yaml"
    values.write_text(yaml.safe_dump({"airflow": {"auth": {"manager": "fab", "webserverConfig": config}}}))
    manifests = render("values-kind.yaml", "--values", str(values))
    rendered = find(manifests, "ConfigMap", f"{RELEASE}-config", NAMESPACE)["data"]["webserver_config.py"]
    assert rendered.strip() == config.strip()


def test_production_values_use_fab() -> None:
    cfg = airflow_cfg(render("values-production.yaml"))
    assert cfg["core"]["auth_manager"].endswith("FabAuthManager")


@pytest.mark.parametrize(
    ("arguments", "key"),
    [
        pytest.param(["--set", "airflow.auth.manager=ldap"], "/airflow/auth/manager", id="manager-enum"),
        pytest.param(
            [*FAB, "--set", "airflow.auth.admin.email=nobody"], "/airflow/auth/admin/email", id="email"
        ),
        pytest.param(
            [*FAB, "--set", "airflow.auth.admin.username=a b"], "/airflow/auth/admin/username", id="username"
        ),
        pytest.param(["--set", "airflow.auth.admins=x"], "admins", id="unknown-key"),
    ],
)
def test_invalid_auth_values_name_the_key(arguments: list[str], key: str) -> None:
    error = render_error(*arguments)
    assert key in error, error
