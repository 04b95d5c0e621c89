"""Values scenarios of ci/ (chart-testing's folder): each is valid against values.schema.json and
installs what it says. Rendering, `helm lint --strict` and the Kubernetes schemas: test_render.py."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from .rendering import CHART, NAMESPACE, RELEASE, SCENARIOS, Manifest, find, of_kind, pod_specs, rendered

REQUIRED = ("kind", "production", "external-database", "no-network-policies", "minimal")
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def merged_values(values_file: str) -> dict[str, Any]:
    """values.yaml with the file over it, as helm coalesces them (maps merge, lists are replaced)."""

    def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
        result = dict(base)
        for key, value in override.items():
            both_maps = isinstance(value, dict) and isinstance(base.get(key), dict)
            result[key] = merge(base[key], value) if both_maps else value
        return result

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    return merge(defaults, yaml.safe_load((CHART / values_file).read_text()) or {})


def scenario_manifests_of(name: str) -> list[Manifest]:
    return rendered(f"ci/{name}-values.yaml")


def test_required_scenarios_exist() -> None:
    assert {path.removeprefix("ci/").removesuffix("-values.yaml") for path in SCENARIOS} >= set(REQUIRED)


@pytest.mark.parametrize("values_file", SCENARIOS)
def test_scenario_is_valid_against_the_schema(values_file: str) -> None:
    errors = sorted(
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in jsonschema.Draft202012Validator(SCHEMA).iter_errors(merged_values(values_file))
    )
    assert errors == []


def test_schema_check_catches_a_bad_scenario() -> None:
    """The check above can fail: a typo'd key in a scenario is reported with its path."""
    bad = CHART / "ci" / "minimal-values.yaml"
    values = merged_values(str(bad.relative_to(CHART)))
    values["airflow"]["apiServer"]["replica"] = 2
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(values))
    assert [list(error.absolute_path) for error in errors] == [["airflow", "apiServer"]]


def test_external_database_scenario_uses_only_existing_secrets() -> None:
    manifests = scenario_manifests_of("external-database")
    assert not [m for m in manifests if "postgres" in m["metadata"]["name"]]
    assert of_kind(manifests, "Secret") == []
    scheduler = find(manifests, "Deployment", f"{RELEASE}-scheduler")["spec"]["template"]["spec"]
    env = {
        var["name"]: var["valueFrom"]["secretKeyRef"]
        for var in scheduler["containers"][0]["env"]
        if "secretKeyRef" in var.get("valueFrom", {})
    }
    database = {"name": "airflow-metadata-db", "key": "sqlalchemy-url"}
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == database
    assert env["AIRFLOW__CORE__FERNET_KEY"] == {"name": "airflow-keys", "key": "fernet"}
    claims = of_kind(manifests, "PersistentVolumeClaim")
    assert {c["spec"]["storageClassName"] for c in claims} == {"nfs-shared"}
    assert of_kind(manifests, "PersistentVolume") == []


def test_no_network_policies_scenario_leaves_policy_to_the_platform_team() -> None:
    manifests = scenario_manifests_of("no-network-policies")
    for kind in ("Namespace", "NetworkPolicy"):
        assert of_kind(manifests, kind) == [], kind
    # rbac.create false: no RBAC object at all (orphan reaper and namespace-hardening hook included)
    for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        assert of_kind(manifests, kind) == [], kind
    accounts = {
        (m["metadata"]["namespace"], m["metadata"]["name"]) for m in of_kind(manifests, "ServiceAccount")
    }
    assert {("team-jobs", "airflow-workload"), ("team-gpu-jobs", "airflow-workload")} <= accounts
    clickhouse = [m for m in of_kind(manifests, "Deployment") if "clickhouse" in m["metadata"]["name"]]
    assert {m["metadata"]["namespace"] for m in clickhouse} == {"team-jobs"}


def test_minimal_scenario_has_no_test_pod_and_keeps_nothing() -> None:
    manifests = scenario_manifests_of("minimal")
    assert [name for name, _ in pod_specs(manifests) if name.startswith("Pod/")] == []
    assert not [m for m in manifests if "helm.sh/resource-policy" in m["metadata"].get("annotations", {})]
    service = find(manifests, "Service", f"{RELEASE}-api-server", NAMESPACE)
    assert service["spec"]["type"] == "LoadBalancer"
