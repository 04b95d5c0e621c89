"""Renders the chart with the real helm binary (.tools/bin/helm) and reads the rendered objects."""

from __future__ import annotations

import configparser
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import config
from tests import facts

ROOT = config.ROOT
CHART = config.CHART
HELM = ROOT / ".tools" / "bin" / "helm"
RELEASE = facts.RELEASE
NAMESPACE = facts.NAMESPACE
VALUES_FILES = ("values.yaml", "values-kind.yaml", "values-production.yaml")
# Values scenarios (chart-testing's ci/ folder), as paths relative to the chart.
SCENARIOS = tuple(str(path.relative_to(CHART)) for path in sorted((CHART / "ci").glob("*-values.yaml")))
POOLS = facts.POOLS
# Airflow runs in both: its components in the release namespace, the worker pods in their own; each
# namespace gets its own airflow.cfg ConfigMap and the Secrets its pods read.
AIRFLOW_NAMESPACES = (NAMESPACE, facts.WORKER_NAMESPACE)

Manifest = dict[str, Any]
# libyaml's parser where PyYAML was built with it: a full render (~140 kB) parses in ~0.04 s instead of
# ~0.47 s with the pure-Python one, which was most of a chart test's time. Same SafeConstructor, so the
# same objects. The scanners differ around tabs (libyaml accepts some that the reference refuses, e.g.
# `a:<TAB>1`) and helm renders none: a stream with a tab keeps the reference parser, so no render passes
# here that failed before (test_render.py compares the two).
FAST_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def helm(*args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: run `make tools`")
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=check, **kwargs)


def template_args(values_file: str) -> list[str]:
    """helm arguments of `helm template` as the lead installs it (release airflow-platform in airflow)."""
    return ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--values", str(CHART / values_file)]


def render(values_file: str = "values.yaml", *extra: str) -> list[Manifest]:
    """`helm template` of the chart with `values_file`, parsed."""
    result = helm(*template_args(values_file), *extra)
    return parse_manifests(result.stdout)


def parse_manifests(text: str) -> list[Manifest]:
    """The objects of a rendered multi-document stream (helm's empty documents dropped)."""
    loader = yaml.SafeLoader if "\t" in text else FAST_YAML_LOADER
    return [doc for doc in yaml.load_all(text, Loader=loader) if doc]


_RENDERED: dict[Path, list[Manifest]] = {}


def rendered(values_file: str) -> list[Manifest]:
    """`render(values_file)` once per session (ci/ symlinks share the render of their target)."""
    key = (CHART / values_file).resolve()
    if key not in _RENDERED:
        _RENDERED[key] = render(values_file)
    return _RENDERED[key]


def render_error(*extra: str) -> str:
    """stderr of a `helm template` that must fail."""
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra, check=False)
    assert result.returncode != 0, "helm template accepted values that must be rejected"
    return result.stderr


def find(manifests: list[Manifest], kind: str, name: str, namespace: str | None = None) -> Manifest:
    matches = [
        m for m in manifests
        if m["kind"] == kind and m["metadata"]["name"] == name
        and (namespace is None or m["metadata"].get("namespace") == namespace)
    ]  # fmt: skip
    assert len(matches) == 1, f"expected one {kind} {namespace}/{name}, found {len(matches)}"
    return matches[0]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def pod_specs(manifests: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, pod spec) of every workload, helm test pod and the executor pod template."""
    for manifest in manifests:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        if kind in {"Deployment", "StatefulSet", "Job"}:
            yield f"{kind}/{name}", manifest["spec"]["template"]["spec"]
        elif kind == "Pod":
            yield f"Pod/{name}", manifest["spec"]
        elif kind == "ConfigMap" and "pod_template_file.yaml" in manifest.get("data", {}):
            yield "executor-pod-template", yaml.safe_load(manifest["data"]["pod_template_file.yaml"])["spec"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's env entries by name."""
    return {item["name"]: item for item in container.get("env", [])}


def executor_pod_template(manifests: list[Manifest]) -> Manifest:
    config_map = find(manifests, "ConfigMap", f"{RELEASE}-pod-template", NAMESPACE)
    return yaml.safe_load(config_map["data"]["pod_template_file.yaml"])


def airflow_cfg(manifests: list[Manifest], namespace: str = NAMESPACE) -> dict[str, dict[str, str]]:
    # interpolating, as Airflow's own parser does: a stray % in the rendered file fails here too
    parser = configparser.ConfigParser()
    parser.read_string(find(manifests, "ConfigMap", f"{RELEASE}-config", namespace)["data"]["airflow.cfg"])
    return {section: dict(parser[section]) for section in parser.sections()}


def presets(manifests: list[Manifest], namespace: str = NAMESPACE) -> dict[str, Any]:
    config_map = find(manifests, "ConfigMap", f"{RELEASE}-pool-presets", namespace)
    return json.loads(config_map["data"]["presets.json"])


def pool_placement(pool: str) -> tuple[list[dict], dict]:
    definition = POOLS["pools"][pool]
    tolerations = [
        {"key": t["key"], "operator": "Equal", "value": t["value"], "effect": t["effect"]}
        for t in definition["taints"]
    ]
    expressions = [
        {"key": k, "operator": "In", "values": [v]} for k, v in sorted(definition["labels"].items())
    ]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
    }
    return tolerations, affinity
