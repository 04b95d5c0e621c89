"""Fixtures for the DAG tests: the pool presets exactly as the chart renders them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Before anything imports Airflow: no example DAGs, and no ~/airflow left behind by the tests.
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".cache" / "test-airflow-home"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
CHART = ROOT / "charts" / "airflow-platform"
DAGS = ROOT / "dags"
PRESETS_CONFIGMAP = "airflow-platform-pool-presets"


def render_presets(values_file: str = "values-kind.yaml") -> dict[str, Any]:
    """The presets.json the chart publishes, rendered by the real helm binary."""
    helm = ROOT / ".tools" / "bin" / "helm"
    rendered = subprocess.run(
        [str(helm), "template", "airflow-platform", str(CHART), "-f", str(CHART / values_file)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for manifest in yaml.safe_load_all(rendered):
        if manifest and manifest["kind"] == "ConfigMap" and manifest["metadata"]["name"] == PRESETS_CONFIGMAP:
            return json.loads(manifest["data"]["presets.json"])
    raise AssertionError(f"the chart renders no ConfigMap {PRESETS_CONFIGMAP}")


@pytest.fixture(scope="session")
def presets() -> dict[str, Any]:
    return render_presets()


@pytest.fixture(scope="session", autouse=True)
def presets_file(presets: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point the DAG helper at the rendered presets, as the chart's mount does in a pod."""
    path = tmp_path_factory.mktemp("platform") / "presets.json"
    path.write_text(json.dumps(presets))
    previous = os.environ.get("AIRFLOW_PLATFORM_PRESETS")
    os.environ["AIRFLOW_PLATFORM_PRESETS"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("AIRFLOW_PLATFORM_PRESETS", None)
    else:
        os.environ["AIRFLOW_PLATFORM_PRESETS"] = previous
