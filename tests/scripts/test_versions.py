"""versions.env is true: every version in it drives the build or is checked here against every copy
that cannot read it (Chart.yaml, requirements, constraints, Dockerfiles, ruff's target)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

import pytest

from scripts import config
from scripts.config import ROOT, VERSIONS
from tests.facts import expand_versions

# Files that may name a version key without using it: the file itself, its documentation, tests.
NOT_CONSUMERS = ("versions.env", "README.md", "docs/", "tests/")


def tracked_files() -> list[str]:
    result = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [name for name in result.stdout.split() if (ROOT / name).is_file()]


def consumers_of(key: str) -> list[str]:
    pattern = re.compile(rf"\b{key}\b")
    return [
        name for name in tracked_files()
        if not name.startswith(NOT_CONSUMERS) and pattern.search((ROOT / name).read_text(errors="replace"))
    ]  # fmt: skip


@pytest.mark.parametrize("key", sorted(VERSIONS))
def test_every_pinned_version_is_read_by_something(key: str) -> None:
    consumers = consumers_of(key)
    assert consumers, f"{key} in versions.env is read by nothing: use it or delete it"


def requirement_pins(text: str) -> dict[str, str]:
    """name -> pinned version of `name[extras]==version` lines, ${VARIABLE}s expanded from versions.env."""
    pins = {}
    for line in text.splitlines():
        line = expand_versions(line.split("#")[0]).strip()
        name, sep, version = line.partition("==")
        if sep:
            pins[re.sub(r"\[.*\]", "", name).strip().lower().replace("_", "-")] = version.strip()
    return pins


AIRFLOW_PINNED_IN = (
    "requirements/airflow.txt",
    "images/airflow/requirements.txt",
    "images/airflow/constraints.txt",
)


@pytest.mark.parametrize("path", AIRFLOW_PINNED_IN)
def test_airflow_is_pinned_to_the_airflow_version(path: str) -> None:
    pins = requirement_pins((ROOT / path).read_text())
    assert pins.get("apache-airflow") == VERSIONS["AIRFLOW_VERSION"], f"{path} pins another Airflow"


def test_the_airflow_client_is_the_airflow_release() -> None:
    pins = requirement_pins((ROOT / "requirements/test-e2e.txt").read_text())
    assert pins["apache-airflow-client"] == VERSIONS["AIRFLOW_VERSION"]


def test_the_chart_app_version_is_the_airflow_version() -> None:
    assert config.chart_metadata()["appVersion"] == VERSIONS["AIRFLOW_VERSION"]


def test_the_python_version_is_the_venv_and_ruff_target() -> None:
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == VERSIONS["PYTHON_VERSION"]
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["target-version"]
    assert target == "py" + VERSIONS["PYTHON_VERSION"].replace(".", "")


def test_a_malformed_versions_line_is_refused_with_its_line(tmp_path) -> None:
    broken = tmp_path / "versions.env"
    broken.write_text("# comment\nGOOD=1.0\nBAD = '2.0'\n")
    with pytest.raises(ValueError, match=r"versions.env:3: expected KEY=value"):
        config.read_env_file(broken)


# A pinned value may be written only in versions.env, plus where it cannot be read from there
# (Chart.yaml must spell appVersion out; a test above checks it) or is generated (constraints).
WRITTEN_ONLY_IN = {
    "AIRFLOW_VERSION": {
        "versions.env",
        "charts/airflow-platform/Chart.yaml",
        "images/airflow/constraints.txt",
    },
    "DEBIAN_SUITE": {"versions.env"},
    "PIP_VERSION": {"versions.env"},
    "KUBERNETES_VERSION": {"versions.env"},
}


@pytest.mark.parametrize("key", sorted(WRITTEN_ONLY_IN))
def test_a_pinned_value_is_written_in_one_place(key: str) -> None:
    pattern = re.compile(rf"(?<![\w.]){re.escape(VERSIONS[key])}(?![\w.])")
    writers = {
        name for name in tracked_files()
        if not name.startswith("tests/") and pattern.search((ROOT / name).read_text(errors="replace"))
    }  # fmt: skip
    assert writers <= WRITTEN_ONLY_IN[key], f"{VERSIONS[key]} ({key}) written out in {sorted(writers)}"


def test_the_readme_generator_lock_is_the_pinned_version() -> None:
    """npm installs from scripts/readme-generator's lock (every transitive version pinned); its one
    direct dependency must be README_GENERATOR_VERSION."""
    folder = ROOT / "scripts" / "readme-generator"
    package = "@bitnami/readme-generator-for-helm"
    want = VERSIONS["README_GENERATOR_VERSION"]
    assert json.loads((folder / "package.json").read_text())["dependencies"] == {package: want}
    lock = json.loads((folder / "package-lock.json").read_text())
    assert lock["packages"][f"node_modules/{package}"]["version"] == want
