"""examples/team-dags: its own test passes with the chart's presets, and catches what it must."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.chart.rendering import render

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "team-dags"


def run_team_tests(repository: Path, presets_file: Path | None) -> subprocess.CompletedProcess[str]:
    """`pytest` inside a team repository, as the team's CI runs it."""
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env.pop("AIRFLOW_PLATFORM_PRESETS", None)
    if presets_file:
        env["AIRFLOW_PLATFORM_PRESETS"] = str(presets_file)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(repository)],
        cwd=repository, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def copy_example(tmp_path: Path) -> Path:
    target = tmp_path / "team-dags"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_example_tests_pass_with_the_platform_presets(presets_file: Path) -> None:
    result = run_team_tests(EXAMPLE, presets_file)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout


def test_example_tests_catch_bad_dags(presets_file: Path, tmp_path: Path) -> None:
    """An unknown pool (import error) and a pod made by hand (no pool tolerations) both fail the tests."""
    repository = copy_example(tmp_path)
    source = (repository / "dags" / "team_example.py").read_text()
    unknown_pool = source.replace('pod_settings("general"', 'pod_settings("gpux"').replace(
        "team_example_report", "team_unknown_pool"
    )
    (repository / "dags" / "team_unknown_pool.py").write_text(unknown_pool)
    start = source.index("        **pod_settings(")
    by_hand = source[:start].replace("team_example_report", "team_by_hand")
    by_hand += '        namespace="default",\n    )\n'
    (repository / "dags" / "team_by_hand.py").write_text(by_hand)
    result = run_team_tests(repository, presets_file)
    assert result.returncode != 0
    assert "gpux" in result.stdout, result.stdout[-4000:]
    assert "team_by_hand.build_report: no pool tolerations" in result.stdout, result.stdout[-4000:]


def test_example_tests_need_the_presets() -> None:
    result = run_team_tests(EXAMPLE, None)
    assert result.returncode != 0
    assert "AIRFLOW_PLATFORM_PRESETS" in result.stdout


def test_example_values_register_a_valid_bundle() -> None:
    """The values lines the README tells teams to copy render into a GitDagBundle."""
    from tests.chart.rendering import airflow_cfg

    values = EXAMPLE / "values-bundle.yaml"
    manifests = render("values.yaml", "--values", str(values))
    bundles = yaml.safe_load(airflow_cfg(manifests)["dag_processor"]["dag_bundle_config_list"])
    registered = yaml.safe_load(values.read_text())["dags"]["bundles"][0]
    assert {"name": registered["name"], "url": registered["url"], "subdir": registered["subdir"]} == {
        "name": bundles[-1]["name"],
        "url": bundles[-1]["kwargs"]["repo_url"],
        "subdir": bundles[-1]["kwargs"]["subdir"],
    }
