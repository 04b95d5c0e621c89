"""The Airflow image: version, providers, non-root user, Python environment, DAGs, lock, size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.config import VERSIONS
from tests.facts import RELEASE, ROOT
from tests.images.conftest import chart_file, docker, run_in, writable_mounts

pytestmark = pytest.mark.docker

AIRFLOW_DIR = ROOT / "images" / "airflow"
PRESETS_MOUNT = "/opt/airflow/platform/presets.json"
CONFIG_MOUNT = "/opt/airflow/airflow.cfg"
DAGBAG_REPORT = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="/opt/airflow/dags")
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dag_ids)}))
"""


@pytest.fixture(scope="session")
def airflow_image(image_refs: dict[str, str]) -> str:
    return image_refs["airflow"]


def test_default_command_prints_airflow_3_3(airflow_image: str) -> None:
    result = run_in(airflow_image)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("3.3.")


def test_python_is_the_pinned_python_version(airflow_image: str) -> None:
    """The Debian suite of versions.env ships the PYTHON_VERSION the venv and the lock use."""
    result = run_in(airflow_image, "python", "-c", "import sys; print(*sys.version_info[:2], sep='.')")
    assert result.stdout.strip() == VERSIONS["PYTHON_VERSION"], result.stderr


def test_kubernetes_provider_imports_as_default_user(airflow_image: str) -> None:
    result = run_in(airflow_image, "python", "-c", "import airflow.providers.cncf.kubernetes")
    assert result.returncode == 0, result.stderr


def test_default_user_is_not_root(airflow_image: str) -> None:
    result = run_in(airflow_image, "id", "-u")
    assert result.stdout.strip() == "50000"


def test_python_on_path_is_the_airflow_environment(airflow_image: str) -> None:
    """Worker pods run `python -m airflow.sdk...`: plain `python` must see Airflow."""
    result = run_in(
        airflow_image, "python", "-c", "import sys, airflow; print(sys.prefix, airflow.__version__)"
    )
    assert result.returncode == 0, result.stderr
    prefix, version = result.stdout.split()
    assert prefix == "/opt/airflow-venv"
    assert version.startswith("3.3.")


def test_worker_entry_point_runs_with_plain_python(airflow_image: str) -> None:
    """KubernetesExecutor worker pods start `python -m airflow.sdk.execution_time.execute_workload`."""
    result = run_in(airflow_image, "python", "-m", "airflow.sdk.execution_time.execute_workload", "--help")
    assert result.returncode == 0, result.stderr
    assert "--json-string" in result.stdout


def test_airflow_home_and_dags_folder(airflow_image: str) -> None:
    result = run_in(airflow_image, "airflow", "config", "get-value", "core", "dags_folder")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/opt/airflow/dags"


def test_repository_dags_are_baked_in(airflow_image: str) -> None:
    expected = sorted(path.name for path in (ROOT / "dags").iterdir() if path.is_file())
    result = run_in(airflow_image, "ls", "-A", "/opt/airflow/dags")
    assert sorted(result.stdout.split()) == expected


@pytest.fixture
def as_the_chart_runs_it(tmp_path: Path) -> tuple[str, ...]:
    """docker run options that mirror the chart's Airflow pods: read-only image, the rendered airflow.cfg
    and pool presets mounted read-only, logs and /tmp on volumes."""
    config = tmp_path / "airflow.cfg"
    config.write_text(chart_file(f"{RELEASE}-config", "airflow.cfg"))
    presets = tmp_path / "presets.json"
    presets.write_text(chart_file(f"{RELEASE}-pool-presets", "presets.json"))
    for path in (config, presets):
        path.chmod(0o644)
    return (
        "--read-only",
        *writable_mounts(tmp_path, "/opt/airflow/logs", "/tmp"),
        "-v",
        f"{config}:{CONFIG_MOUNT}:ro",
        "-v",
        f"{presets}:{PRESETS_MOUNT}:ro",
        "-e",
        f"AIRFLOW_PLATFORM_PRESETS={PRESETS_MOUNT}",
        "-e",
        "PYTHONDONTWRITEBYTECODE=1",
        # The kind config turns OTel metrics on and the chart's pods get the collector from OTEL_* env;
        # here is no collector, and the exporter's startup lines on stdout would mix into the output.
        "-e",
        "AIRFLOW__METRICS__OTEL_ON=False",
    )


def test_dags_import_without_errors_inside_the_image(
    airflow_image: str, as_the_chart_runs_it: tuple[str, ...]
) -> None:
    result = run_in(airflow_image, "python", "-c", DAGBAG_REPORT, options=as_the_chart_runs_it)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    dag_files = list((ROOT / "dags").glob("*.py"))
    assert len(report["dags"]) >= len(dag_files)


def test_cli_works_read_only_with_the_chart_config(
    airflow_image: str, as_the_chart_runs_it: tuple[str, ...]
) -> None:
    result = run_in(
        airflow_image, "airflow", "config", "get-value", "core", "executor", options=as_the_chart_runs_it
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "KubernetesExecutor"


def test_installed_packages_match_the_lock(airflow_image: str) -> None:
    """The image holds exactly what constraints.txt pins (plus the platform's own DAG helper)."""
    lock = {
        line.strip().lower()
        for line in (AIRFLOW_DIR / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    result = run_in(airflow_image, "pip", "freeze", "--exclude", "airflow-platform-pools")
    assert result.returncode == 0, result.stderr
    assert {line.strip().lower() for line in result.stdout.splitlines()} == lock


def test_dag_helper_is_installed(airflow_image: str) -> None:
    result = run_in(airflow_image, "python", "-c", "import airflow_platform_pools")
    assert result.returncode == 0, result.stderr


def test_image_is_under_one_gigabyte(airflow_image: str) -> None:
    size = int(docker("image", "inspect", "-f", "{{.Size}}", airflow_image).stdout)
    assert size < 1_000_000_000
