"""scripts.diagnostics without a cluster: it still writes a summary that says what it could not get."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from scripts import config, diagnostics


def test_without_a_cluster_the_summary_says_so_and_where_it_is(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    (artifacts / "stale").mkdir(parents=True)  # left by an earlier run: must not pass for this one
    env = {**os.environ, "ARTIFACTS_DIR": str(artifacts), "CLUSTER_NAME": "no-such-cluster-for-diagnostics"}
    result = subprocess.run(
        [sys.executable, "-m", "scripts", "diagnostics", "--reason", "unit test"],
        cwd=config.ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"diagnostics in {artifacts}/" in result.stdout
    summary = (artifacts / "SUMMARY.txt").read_text()
    assert "reason:   unit test" in summary
    assert "no kind cluster no-such-cluster-for-diagnostics" in summary
    assert not (artifacts / "stale").exists()


def pod(phase: str, ready: str | None, restarts: int = 0) -> dict:
    conditions = [{"type": "Ready", "status": ready}] if ready else []
    statuses = [{"restartCount": restarts}]
    return {"status": {"phase": phase, "conditions": conditions, "containerStatuses": statuses}}


def test_pods_to_describe_are_those_neither_ready_nor_done() -> None:
    assert diagnostics.pod_is_healthy(pod("Running", "True"))
    assert diagnostics.pod_is_healthy(pod("Succeeded", "False"))
    assert not diagnostics.pod_is_healthy(pod("Running", "False"))
    assert not diagnostics.pod_is_healthy(pod("Pending", None))
    assert not diagnostics.pod_is_healthy(pod("Failed", "False"))


def test_previous_logs_are_kept_only_for_restarted_containers() -> None:
    assert diagnostics.restarted(pod("Running", "True", restarts=2))
    assert not diagnostics.restarted(pod("Running", "True"))
