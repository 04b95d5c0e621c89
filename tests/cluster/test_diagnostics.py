"""A deliberately failing `make e2e` leaves what is needed to diagnose it: node logs, Helm status,
events and the Airflow component logs, collected before anything deletes the cluster."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scripts import config
from tests.facts import NAMESPACE, RELEASE

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def failed_e2e(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`make e2e` with one test that fails on purpose (the platform itself is up and healthy)."""
    folder = tmp_path_factory.mktemp("failing-e2e")
    failing = folder / "test_fails_on_purpose.py"
    failing.write_text("def test_fails_on_purpose():\n    assert False, 'deliberate failure'\n")
    artifacts = folder / "artifacts"
    result = subprocess.run(
        ["make", "--no-print-directory", "e2e", f"E2E_ARGS={failing} -p no:cacheprovider"],
        cwd=config.ROOT,
        env={**_outside_xdist(os.environ), "ARTIFACTS_DIR": str(artifacts)},
        capture_output=True,
        text=True,
    )
    return result, artifacts


def _outside_xdist(environ: os._Environ[str]) -> dict[str, str]:
    """The environment without this run's pytest-xdist worker variables (`make e2e` runs on workers), so
    the nested pytest is a run of its own."""
    return {key: value for key, value in environ.items() if not key.startswith("PYTEST_XDIST")}


def test_make_e2e_fails_and_says_where_the_diagnostics_are(failed_e2e) -> None:
    result, artifacts = failed_e2e
    assert result.returncode != 0, result.stdout[-2000:]
    assert "deliberate failure" in result.stdout
    assert f"diagnostics in {artifacts}/" in result.stdout
    summary = (artifacts / "SUMMARY.txt").read_text()
    assert "reason:   make e2e failed" in summary


def test_node_logs_are_kept(failed_e2e) -> None:
    _, artifacts = failed_e2e
    kubelet_logs = list((artifacts / "kind-logs").glob("*/kubelet.log"))
    assert len(kubelet_logs) == 1 + len(config.node_pools()["pools"]), "control plane + one node per pool"
    assert all(log.stat().st_size > 0 for log in kubelet_logs)


def test_events_helm_status_and_component_logs_are_kept(failed_e2e) -> None:
    _, artifacts = failed_e2e
    assert "Scheduled" in (artifacts / "events.txt").read_text()
    assert f"NAME: {RELEASE}" in (artifacts / "helm-status.txt").read_text()
    component_logs = {log.name for log in (artifacts / "logs" / NAMESPACE).glob("*.log")}
    for component in ("scheduler", "api-server", "dag-processor", "triggerer"):
        matching = [name for name in component_logs if name.startswith(f"{RELEASE}-{component}-")]
        assert matching, f"no {component} log among {sorted(component_logs)}"
        assert (artifacts / "logs" / NAMESPACE / matching[0]).stat().st_size > 0
