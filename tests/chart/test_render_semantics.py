"""Every values scenario renders to objects the pinned Kubernetes accepts: its OpenAPI schema (strict)
and the API server's semantic rules that a schema does not carry (quantities, names, duplicates,
requests within limits). Scenarios: the chart's values files and charts/airflow-platform/ci/*.yaml.
tests/e2e/test_server_dry_run.py sends the same renders to the kind API server. (test_scenarios.py
checks what each ci/ scenario installs.)
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes.utils import parse_quantity

from .rendering import CHART, VALUES_FILES, Manifest, of_kind, pod_specs, render, rendered
from .rendering import SCENARIOS as CI_SCENARIOS
from .test_render import _schema_version

# Every values scenario: the chart's values files and charts/airflow-platform/ci/*-values.yaml.
ALL_SCENARIOS = (*VALUES_FILES, *CI_SCENARIOS)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Kinds whose name is a DNS label (RFC 1123), not only a subdomain.
LABEL_NAMED = {"Namespace", "Service", "Deployment", "StatefulSet", "Job", "Pod"}


def documents(manifests: list[Manifest]) -> list[Manifest]:
    """The rendered objects plus the executor pod template (a Pod inside a ConfigMap)."""
    embedded = [
        yaml.safe_load(m["data"]["pod_template_file.yaml"])
        for m in of_kind(manifests, "ConfigMap")
        if "pod_template_file.yaml" in m.get("data", {})
    ]
    return [*manifests, *embedded]


@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
def test_kubernetes_schema(scenario: str) -> None:
    version = _schema_version()
    errors = []
    for manifest in documents(rendered(scenario)):
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{manifest['kind']}/{manifest['metadata'].get('name')}: {error.message}")
    assert errors == []


@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
def test_names_and_labels(scenario: str) -> None:
    problems = []
    for manifest in documents(rendered(scenario)):
        kind, meta = manifest["kind"], manifest["metadata"]
        pattern = DNS_LABEL if kind in LABEL_NAMED else DNS_SUBDOMAIN
        limit = 63 if kind in LABEL_NAMED else 253
        if not (pattern.match(meta["name"]) and len(meta["name"]) <= limit):
            problems.append(f"{kind} name {meta['name']!r}")
        if "namespace" in meta and not DNS_LABEL.match(meta["namespace"]):
            problems.append(f"{kind}/{meta['name']} namespace {meta['namespace']!r}")
        for key, value in meta.get("labels", {}).items():
            if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
                problems.append(f"{kind}/{meta['name']} label {key}={value!r}")
    assert problems == []


@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
def test_no_duplicate_objects(scenario: str) -> None:
    keys = [
        (m["apiVersion"].split("/")[0], m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"])
        for m in rendered(scenario)
    ]
    assert sorted({k for k in keys if keys.count(k) > 1}) == []


def _quantities(manifest: Manifest) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    kind = manifest["kind"]
    if kind == "ResourceQuota":
        found += [(f"hard.{k}", v) for k, v in manifest["spec"]["hard"].items()]
    if kind == "LimitRange":
        for limit in manifest["spec"]["limits"]:
            for field in ("default", "defaultRequest", "max", "min"):
                found += [(f"{field}.{k}", v) for k, v in limit.get(field, {}).items()]
    if kind in {"PersistentVolumeClaim", "PersistentVolume"}:
        spec = manifest["spec"]
        found += [("storage", (spec.get("resources", {}).get("requests") or spec.get("capacity"))["storage"])]
    return found


@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
def test_quantities_parse_and_requests_fit_limits(scenario: str) -> None:
    manifests = rendered(scenario)
    problems = []
    for manifest in manifests:
        for field, value in _quantities(manifest):
            try:
                assert parse_quantity(value) >= 0
            except (ValueError, AssertionError):
                problems.append(f"{manifest['kind']}/{manifest['metadata']['name']} {field}={value!r}")
        if manifest["kind"] == "LimitRange":
            for limit in manifest["spec"]["limits"]:
                for resource, request in limit.get("defaultRequest", {}).items():
                    if resource in limit.get("default", {}) and parse_quantity(request) > parse_quantity(
                        limit["default"][resource]
                    ):
                        problems.append(f"LimitRange {manifest['metadata']['namespace']}: {resource}")
    for name, spec in pod_specs(manifests):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            resources = container.get("resources", {})
            for resource, request in resources.get("requests", {}).items():
                limit = resources.get("limits", {}).get(resource)
                if limit is not None and parse_quantity(request) > parse_quantity(limit):
                    problems.append(
                        f"{name}/{container['name']}: {resource} request {request} > limit {limit}"
                    )
    assert problems == []


@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
def test_containers_have_unique_names_env_and_mounts(scenario: str) -> None:
    problems = []
    for name, spec in pod_specs(rendered(scenario)):
        containers = [*spec.get("initContainers", []), *spec["containers"]]
        names = [c["name"] for c in containers]
        volumes = [v["name"] for v in spec.get("volumes", [])]
        for label, values in [("container", names), ("volume", volumes)]:
            problems += [f"{name}: {label} {v} twice" for v in set(values) if values.count(v) > 1]
        for container in containers:
            env = [e["name"] for e in container.get("env", [])]
            mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
            problems += [f"{name}/{container['name']}: env {e} twice" for e in set(env) if env.count(e) > 1]
            problems += [
                f"{name}/{container['name']}: mount {m} twice" for m in set(mounts) if mounts.count(m) > 1
            ]
            problems += [
                f"{name}/{container['name']}: mount of unknown volume {m['name']}"
                for m in container.get("volumeMounts", [])
                if m["name"] not in volumes
            ]
    assert problems == []


@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
def test_no_number_rendered_in_exponent_form(scenario: str) -> None:
    result = render(scenario)
    text = yaml.safe_dump_all(result)
    assert re.findall(r"\d(?:\.\d+)?e[+-]\d", text) == []


@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
def test_airflow_cfg_has_no_duplicate_options(scenario: str) -> None:
    for manifest in of_kind(rendered(scenario), "ConfigMap"):
        if "airflow.cfg" in manifest.get("data", {}):
            parser = configparser.ConfigParser(interpolation=None, strict=True)
            parser.read_string(manifest["data"]["airflow.cfg"])  # raises on duplicates


def test_scenarios_include_the_values_files() -> None:
    assert set(VALUES_FILES) <= set(ALL_SCENARIOS)
    assert all((CHART / scenario).is_file() for scenario in ALL_SCENARIOS)


def test_scenario_paths_are_inside_the_chart() -> None:
    assert all(Path(CHART / s).resolve().is_relative_to(CHART) for s in ALL_SCENARIOS)
