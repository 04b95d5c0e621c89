"""Fixtures for the DAG tests: the pool presets exactly as the chart renders them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chart.rendering import presets as chart_presets
from tests.chart.rendering import render

ROOT = Path(__file__).resolve().parents[2]
# Before anything imports Airflow: no example DAGs, and no ~/airflow left behind by the tests. One home
# per pytest-xdist worker (PYTEST_XDIST_WORKER, e.g. gw0): two in-process Airflows never share files.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
_HOME = f"test-airflow-home-{_WORKER}" if _WORKER else "test-airflow-home"
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".cache" / _HOME))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
DAGS = ROOT / "dags"


@pytest.fixture(scope="session")
def presets() -> dict[str, Any]:
    return chart_presets(render("values-kind.yaml"))


# Package scope: the variable is unset when tests/dags ends, so no test of another directory (before or
# after it on a pytest-xdist worker) sees it.
@pytest.fixture(scope="package", autouse=True)
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
