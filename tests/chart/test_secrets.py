"""Secrets: generated once and kept on upgrade, referenced through secretKeyRef, never inlined."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from tests.facts import CLICKHOUSE_NAMESPACE, WORKER_NAMESPACE

from .fake_kube_api import fake_kube_api
from .rendering import (
    CHART,
    HELM,
    NAMESPACE,
    RELEASE,
    Manifest,
    find,
    of_kind,
    parse_manifests,
    pod_specs,
    render,
)

GENERATED = {
    *(
        (NAMESPACE, f"{RELEASE}-{name}")
        for name in ("fernet-key", "jwt-secret", "api-secret-key", "admin", "postgres", "git-server")
    ),
    (CLICKHOUSE_NAMESPACE, "clickhouse-credentials"),
    # the kind values' test object store: its keys, generated once, copied for the worker pods
    *((namespace, f"{RELEASE}-object-store") for namespace in (NAMESPACE, WORKER_NAMESPACE)),
}
# Secrets holding no generated value: the remote-log connection (endpoint, region; no keys).
DERIVED = {(namespace, f"{RELEASE}-remote-logs") for namespace in (NAMESPACE, WORKER_NAMESPACE)}
SECRET_LIKE_ENV = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|CONN", re.IGNORECASE)


def secret_data(manifests: list[Manifest]) -> dict[tuple[str, str], dict[str, str]]:
    return {
        (s["metadata"]["namespace"], s["metadata"]["name"]): s["data"] for s in of_kind(manifests, "Secret")
    }


def as_previous_release(secret: Manifest) -> Manifest:
    """The Secret as a previous `helm install` left it in the cluster (with Helm's ownership marks)."""
    metadata = dict(secret["metadata"])
    metadata["labels"] = {**metadata.get("labels", {}), "app.kubernetes.io/managed-by": "Helm"}
    metadata["annotations"] = {
        "meta.helm.sh/release-name": RELEASE,
        "meta.helm.sh/release-namespace": NAMESPACE,
    }
    return {**secret, "metadata": metadata}


def render_against_cluster(existing: list[Manifest], workdir: Path, *extra: str) -> list[Manifest]:
    with fake_kube_api(existing, workdir) as kubeconfig:
        result = subprocess.run(
            [str(HELM), "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
             "--values", str(CHART / "values-kind.yaml"), "--dry-run=server", "--disable-openapi-validation",
             "--kubeconfig", str(kubeconfig), *extra],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    return parse_manifests(result.stdout)


def test_all_expected_secrets_are_generated(kind_manifests: list[Manifest]) -> None:
    assert set(secret_data(kind_manifests)) == GENERATED | DERIVED


def test_fresh_renders_generate_fresh_values() -> None:
    """Control for the upgrade test: without an existing Secret every render differs."""
    first, second = secret_data(render("values-kind.yaml")), secret_data(render("values-kind.yaml"))
    for key in GENERATED:
        assert first[key] != second[key], key


def test_upgrade_keeps_generated_secrets(kind_manifests: list[Manifest], tmp_path: Path) -> None:
    """An upgrade (render with the previous install's Secrets present) reuses every generated value,
    even with changed values, through the chart's `lookup` (helm dry-run=server against a stand-in API)."""
    installed = [as_previous_release(s) for s in of_kind(kind_manifests, "Secret")]
    upgraded = render_against_cluster(installed, tmp_path, "--set", "airflow.config.core.parallelism=48")
    assert secret_data(upgraded) == secret_data(kind_manifests)


def test_upgrade_generates_only_what_is_missing(kind_manifests: list[Manifest], tmp_path: Path) -> None:
    admin = find(kind_manifests, "Secret", f"{RELEASE}-admin", NAMESPACE)
    upgraded = secret_data(render_against_cluster([as_previous_release(admin)], tmp_path))
    assert upgraded[(NAMESPACE, f"{RELEASE}-admin")] == admin["data"]
    fernet = (NAMESPACE, f"{RELEASE}-fernet-key")
    assert upgraded[fernet] != secret_data(kind_manifests)[fernet]


def test_keep_policy_follows_keep_on_uninstall(manifests: list[Manifest], values_file: str) -> None:
    keep = yaml.safe_load((CHART / values_file).read_text()).get("keepOnUninstall", True)
    claims = of_kind(manifests, "PersistentVolumeClaim")
    kept = [
        *of_kind(manifests, "Secret"),
        *(c for c in claims if c["metadata"]["name"].endswith("postgres-data")),
    ]
    assert kept
    for resource in kept:
        annotations = resource["metadata"].get("annotations") or {}
        assert (annotations.get("helm.sh/resource-policy") == "keep") is keep, resource["metadata"]["name"]


def test_templates_look_existing_secrets_up() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert 'lookup "v1" "Secret"' in helpers
    for template in ("secrets/airflow-keys.yaml", "database/secret.yaml", "clickhouse/secret.yaml"):
        assert "ap.secrets.keptValue" in (CHART / "templates" / template).read_text(), template


def test_generated_keys_are_usable(kind_manifests: list[Manifest]) -> None:
    data = secret_data(kind_manifests)

    def value(name: str, key: str, namespace: str = NAMESPACE) -> str:
        return base64.b64decode(data[(namespace, name)][key]).decode()

    Fernet(value(f"{RELEASE}-fernet-key", "fernet-key").encode())  # raises if not a valid Fernet key
    assert len(value(f"{RELEASE}-jwt-secret", "jwt-secret").encode()) >= 64
    assert len(value(f"{RELEASE}-admin", "password")) >= 16
    assert len(value(f"{RELEASE}-postgres", "password")) >= 16
    for side in ("source", "destination"):
        assert len(value("clickhouse-credentials", f"{side}-password", CLICKHOUSE_NAMESPACE)) >= 16


def _secret_values(manifests: list[Manifest]) -> set[str]:
    values = set()
    for data in secret_data(manifests).values():
        for encoded in data.values():
            decoded = base64.b64decode(encoded).decode()
            values |= {decoded, encoded}
            values |= set(re.findall(r":([A-Za-z0-9]{16,})@", decoded))  # password inside a URL
    return values


def test_no_secret_material_outside_secrets(scenario_manifests: list[Manifest]) -> None:
    secrets = _secret_values(scenario_manifests)
    for manifest in scenario_manifests:
        if manifest["kind"] == "Secret":
            continue
        text = json.dumps(manifest)
        leaked = [value for value in secrets if value in text]
        assert leaked == [], f"{manifest['kind']}/{manifest['metadata']['name']} contains secret material"


def _env(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{container['name']}:{variable['name']}", variable)
        for container in [*spec.get("initContainers", []), *spec["containers"]]
        for variable in container.get("env", [])
    ]


def _secret_mounts(spec: dict[str, Any]) -> set[str]:
    secret_volumes = {v["name"] for v in spec.get("volumes", []) if "secret" in v}
    return {
        mount["mountPath"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]
        for mount in container.get("volumeMounts", [])
        if mount["name"] in secret_volumes
    }


def _git_connection_is_by_reference(variable: dict[str, Any], spec: dict[str, Any]) -> bool:
    """A DAG bundle's git connection (AIRFLOW_CONN_GIT_*): JSON whose password, if any, is a $(VAR)
    reference to a secretKeyRef env of the same pod (Kubernetes substitutes it)."""
    if not variable["name"].startswith("AIRFLOW_CONN_GIT_") or "value" not in variable:
        return False
    password = json.loads(variable["value"]).get("password")
    if password is None:
        return True
    by_ref = {v["name"] for _, v in _env(spec) if "secretKeyRef" in v.get("valueFrom", {})}
    match = re.fullmatch(r"\$\(([A-Z0-9_]+)\)", password)
    return bool(match) and match[1] in by_ref


REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _secret_refs_only(value: str, earlier: dict[str, dict[str, Any]]) -> bool:
    """A literal built only from $(VAR) references to secretKeyRef variables defined before it."""
    names = REFERENCE.findall(value)
    return bool(names) and all("secretKeyRef" in earlier.get(n, {}).get("valueFrom", {}) for n in names)


def test_secret_like_env_comes_from_secret_key_refs(scenario_manifests: list[Manifest]) -> None:
    for name, spec in pod_specs(scenario_manifests):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            earlier: dict[str, dict[str, Any]] = {}
            for variable in container.get("env", []):
                label = f"{name} {container['name']}:{variable['name']}"
                if variable["name"].endswith("_FILE"):  # a path to a file of a mounted Secret volume
                    assert any(variable["value"].startswith(f"{m}/") for m in _secret_mounts(spec)), label
                elif _git_connection_is_by_reference(variable, spec):
                    pass
                elif SECRET_LIKE_ENV.search(variable["name"]) and "value" in variable:
                    assert _secret_refs_only(variable["value"], earlier), f"{label} has a literal value"
                elif SECRET_LIKE_ENV.search(variable["name"]):
                    assert "secretKeyRef" in variable["valueFrom"], label
                earlier[variable["name"]] = variable


def test_airflow_components_get_keys_by_reference(manifests: list[Manifest]) -> None:
    expected = {
        "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    }  # fmt: skip
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        spec = find(manifests, "Deployment", f"{RELEASE}-{component}")["spec"]["template"]["spec"]
        env = {variable["name"]: variable for variable in spec["containers"][0]["env"]}
        assert expected <= set(env), component
        for variable in expected:
            if "value" in env[variable]:  # the bundled Postgres: URL around the password's reference
                assert _secret_refs_only(env[variable]["value"], env), (component, variable)
            else:
                assert "secretKeyRef" in env[variable]["valueFrom"], (component, variable)


def test_user_provided_secrets_replace_generated_ones() -> None:
    manifests = render(
        "values-production.yaml",
        "--set", "secrets.fernetKey.existingSecret=team-fernet", "--set", "secrets.fernetKey.key=key",
        "--set", "secrets.adminPassword.existingSecret=team-admin",
    )  # fmt: skip
    names = {name for _, name in secret_data(manifests)}
    assert f"{RELEASE}-fernet-key" not in names and f"{RELEASE}-admin" not in names
    assert f"{RELEASE}-postgres" not in names  # external database
    spec = find(manifests, "Deployment", f"{RELEASE}-api-server")["spec"]["template"]["spec"]
    env = {variable["name"]: variable for _, variable in _env(spec)}
    assert env["AIRFLOW__CORE__FERNET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "team-fernet",
        "key": "key",
    }
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]["valueFrom"]["secretKeyRef"] == {
        "name": "airflow-metadata-db", "key": "connection",
    }  # fmt: skip
    # production logs in through FAB: the migration Job creates the admin user from that Secret
    job = next(j for j in of_kind(manifests, "Job") if "-migrate-" in j["metadata"]["name"])
    job_env = {variable["name"]: variable for _, variable in _env(job["spec"]["template"]["spec"])}
    assert job_env["ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "team-admin"


@pytest.mark.parametrize("side", ["source", "destination"])
def test_clickhouse_servers_read_password_from_secret(kind_manifests: list[Manifest], side: str) -> None:
    spec = find(kind_manifests, "Deployment", f"clickhouse-{side}", CLICKHOUSE_NAMESPACE)["spec"]["template"][
        "spec"
    ]
    env = dict(_env(spec))
    reference = env["clickhouse:CLICKHOUSE_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "clickhouse-credentials", "key": f"{side}-password"}
