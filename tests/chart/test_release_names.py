"""The names a new user picks: the release name and namespace (`helm install NAME -n NAMESPACE`, which no
values schema sees) and namespace and Secret key names of the values that YAML reads as another type.

Each case failed on the chart before its fix: a release or namespace named 1234, true or null was
rendered unquoted (an integer label, a boolean namespace, `namespace: null` putting the worker
namespace's objects into the release namespace); a dotted release name, which Helm accepts, named
Services that are not DNS labels; a long release name made CronJob and Job names Kubernetes refuses;
a release in kube-system would have put a default-deny ingress policy on the cluster DNS.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from .rendering import CHART, VALUES_FILES, Manifest, helm, of_kind, parse_manifests
from .test_bad_values import DEFAULT_WORKLOADS
from .test_render import _schema_version
from .test_render_semantics import DNS_LABEL, DNS_SUBDOMAIN, LABEL_NAMED, LABEL_VALUE, documents

# Longest release name Helm accepts (helm install refuses 54 characters).
LONGEST_RELEASE = "a" * 53
# Valid Kubernetes names that YAML 1.1 (Helm's parser) reads as an integer, a boolean, null or a float.
RELEASE, RELEASE_NAMESPACE, WORKERS = "1234", "true", "null"
WORKLOADS = ("0x1f", "1e3")
# Secret keys the same way: an octal number, booleans, an integer.
SECRET_KEYS = {
    "secrets.fernetKey.key": "yes",
    "secrets.adminPassword.key": "on",
    "postgres.existingSecretKey": "1234",
    "externalDatabase.secretKey": "0777",
}
# Kinds whose name is a DNS label plus 11 characters of their own (CronJob: its Jobs' names).
NAME_LIMITS = {"CronJob": 52}


def template(release: str, namespace: str, values_file: str, *extra: str) -> list[Manifest]:
    values = str(CHART / values_file)
    result = helm("template", release, str(CHART), "--namespace", namespace, "--values", values, *extra)
    return parse_manifests(result.stdout)


def template_error(release: str, namespace: str) -> str:
    result = helm("template", release, str(CHART), "--namespace", namespace, check=False)
    assert result.returncode != 0, "helm template accepted a release that must be refused"
    return result.stderr


def yaml_typed_names(values_file: str) -> list[Manifest]:
    workloads = [{**space, "name": name} for space, name in zip(DEFAULT_WORKLOADS, WORKLOADS, strict=True)]
    settings = [f"{key}={value}" for key, value in SECRET_KEYS.items()]
    return template(
        RELEASE,
        RELEASE_NAMESPACE,
        values_file,
        "--set-string", f"namespaces.workers.name={WORKERS}",
        "--set-json", f"namespaces.workloads={json.dumps(workloads)}",
        *(argument for setting in settings for argument in ("--set-string", setting)),
    )  # fmt: skip


def schema_errors(manifests: list[Manifest]) -> list[str]:
    errors = []
    for manifest in documents(manifests):
        try:
            kubernetes_validate.validate(manifest, _schema_version(), strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{manifest['kind']}/{manifest['metadata'].get('name')}: {error.message}")
    return errors


def name_problems(manifests: list[Manifest]) -> list[str]:
    """Names, namespaces and labels (of objects and of pod templates) the API server would refuse."""
    problems = []
    for manifest in documents(manifests):
        kind, meta = manifest["kind"], manifest["metadata"]
        pattern = DNS_LABEL if kind in LABEL_NAMED else DNS_SUBDOMAIN
        limit = NAME_LIMITS.get(kind, 63 if kind in LABEL_NAMED else 253)
        if not (pattern.match(meta["name"]) and len(meta["name"]) <= limit):
            problems.append(f"{kind} name {meta['name']!r} ({len(meta['name'])} characters)")
        pod_meta = manifest.get("spec", {}).get("template", {}).get("metadata", {})
        for key, value in {**meta.get("labels", {}), **pod_meta.get("labels", {})}.items():
            if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
                problems.append(f"{kind}/{meta['name']} label {key}={value!r}")
    return problems


def secret_key_refs(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node["secretKeyRef"]] if "secretKeyRef" in node else []
        return found + [ref for value in node.values() for ref in secret_key_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in secret_key_refs(value)]
    return []


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_names_yaml_reads_as_other_types_stay_strings(values_file: str) -> None:
    manifests = yaml_typed_names(values_file)
    assert schema_errors(manifests) == []
    assert name_problems(manifests) == []
    expected = {RELEASE_NAMESPACE, WORKERS, *WORKLOADS}
    namespaces = {m["metadata"]["namespace"] for m in documents(manifests) if "namespace" in m["metadata"]}
    assert namespaces <= expected and {RELEASE_NAMESPACE, WORKERS} <= namespaces
    assert {m["metadata"]["name"] for m in of_kind(manifests, "Namespace")} == {WORKERS, *WORKLOADS}
    assert {m["metadata"]["labels"]["app.kubernetes.io/instance"] for m in manifests} == {RELEASE}
    keys = {ref["key"] for ref in secret_key_refs(manifests)}
    assert {"yes", "1234" if values_file != "values-production.yaml" else "0777"} <= keys
    for secret in of_kind(manifests, "Secret"):
        assert all(isinstance(key, str) for key in {**secret.get("data", {}), **secret.get("stringData", {})})


@pytest.mark.parametrize("values_file", (*VALUES_FILES, "ci/minimal-values.yaml"))
def test_longest_release_name_gives_names_kubernetes_accepts(values_file: str) -> None:
    manifests = template(LONGEST_RELEASE, "airflow", values_file)
    assert name_problems(manifests) == []
    assert of_kind(manifests, "CronJob") and any(m["kind"] == "Job" for m in manifests)


def test_release_names_within_limits_are_kept_whole() -> None:
    """Cutting is only for names that would be refused: a release of 38 characters names everything."""
    release = "r" * 38
    manifests = template(release, "airflow", "values-production.yaml")  # all three CronJobs on
    assert {m["metadata"]["name"] for m in of_kind(manifests, "CronJob")} == {
        f"{release}-orphan-reaper",
        f"{release}-db-clean",
        f"{release}-log-cleanup",
    }


@pytest.mark.parametrize("release", ["my.airflow", "airflow.example.com"])
def test_dotted_release_name_is_refused(release: str) -> None:
    error = template_error(release, "airflow")
    assert f'release name "{release}"' in error and "DNS label" in error, error


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease"])
def test_system_release_namespace_is_refused(namespace: str) -> None:
    error = template_error("airflow-platform", namespace)
    assert f'release namespace "{namespace}"' in error, error


def test_default_namespace_still_renders() -> None:
    """`helm lint` and a first `helm template` without -n use default: warned after install, not refused."""
    assert template("airflow-platform", "default", "values.yaml")
