"""Every values file lints strictly and renders to manifests the targeted Kubernetes accepts."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.facts import RELEASE

from .rendering import (
    CHART,
    ROOT,
    SCENARIOS,
    VALUES_FILES,
    Manifest,
    helm,
    of_kind,
    parse_manifests,
    pod_specs,
    template_args,
)

KUBERNETES_VERSION = next(
    line.split("=", 1)[1].strip()
    for line in (ROOT / "versions.env").read_text().splitlines()
    if line.startswith("KUBERNETES_VERSION=")
)


def _schema_version() -> str:
    """The newest schema kubernetes-validate ships that is not newer than the targeted version."""
    target = tuple(int(part) for part in KUBERNETES_VERSION.lstrip("v").split(".")[:2])
    shipped = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    versions = sorted(
        tuple(int(part) for part in path.name.lstrip("v").split("-")[0].split(".")[:2])
        for path in shipped.glob("v*-local-strict")
    )
    major, minor = max(version for version in versions if version <= target)
    return f"{major}.{minor}.0"


@pytest.mark.parametrize("values_file", ("values.yaml", *SCENARIOS))
def test_lint_strict(values_file: str) -> None:
    result = helm(
        "lint", "--strict", str(CHART), "--namespace", "airflow", "--values", str(CHART / values_file)
    )
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_renders_parse_as_the_reference_yaml_parser_reads_them(values_file: str) -> None:
    """The tests read renders with libyaml for speed: the objects are PyYAML's pure-Python parser's."""
    text = helm(*template_args(values_file)).stdout
    assert parse_manifests(text) == [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.parametrize("text", ["a:\t1\n", "a: [1,\t2]\n", "a: {b: 1,\tc: 2}\n", '"a": "x"\t# note\n'])
def test_streams_the_reference_yaml_parser_refuses_stay_refused(text: str) -> None:
    """libyaml accepts these tabs; the reference parser, and so parse_manifests, does not."""
    with pytest.raises(yaml.YAMLError):
        list(yaml.safe_load_all(text))
    with pytest.raises(yaml.YAMLError):
        parse_manifests(text)


def test_schema_version_targets_cluster() -> None:
    assert _schema_version() == ".".join(KUBERNETES_VERSION.lstrip("v").split(".")[:2]) + ".0"


def test_manifests_validate_against_kubernetes_schema(scenario_manifests: list[Manifest]) -> None:
    version = _schema_version()
    documents = [*scenario_manifests, *_embedded_pods(scenario_manifests)]
    errors = []
    for manifest in documents:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{manifest['kind']}/{manifest['metadata'].get('name')}: {error.message}")
    assert errors == []


def _embedded_pods(manifests: list[Manifest]) -> list[Manifest]:
    """The executor pod template is YAML inside a ConfigMap: validate it as the Pod it becomes."""
    return [
        yaml.safe_load(m["data"]["pod_template_file.yaml"])
        for m in of_kind(manifests, "ConfigMap")
        if "pod_template_file.yaml" in m.get("data", {})
    ]


def test_every_resource_carries_recommended_labels(scenario_manifests: list[Manifest]) -> None:
    required = {
        "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
        "app.kubernetes.io/component", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by",
    }  # fmt: skip
    missing = {
        f"{m['kind']}/{m['metadata']['name']}": sorted(required - set(m["metadata"].get("labels", {})))
        for m in scenario_manifests
        if required - set(m["metadata"].get("labels", {}))
    }
    assert missing == {}


def test_pods_are_found(manifests: list[Manifest]) -> None:
    names = {name for name, _ in pod_specs(manifests)}
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        assert f"Deployment/{RELEASE}-{component}" in names
    assert "executor-pod-template" in names
