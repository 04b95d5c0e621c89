"""`make down` and `make registry-down` on a machine whose Docker engine is not running (a clean CI
machine before `make e2e` starts it): nothing to delete, so both succeed and say why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import config


@pytest.fixture
def engine_down(tmp_path: Path) -> dict[str, str]:
    """PATH with a `docker` client whose engine never answers, as the real client does then."""
    stub = tmp_path / "docker"
    stub.write_text(
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n"
    )
    stub.chmod(0o755)
    return {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["down"], f"no cluster {config.CLUSTER_NAME} to delete"),
        (["registry", "down"], f"no {config.REGISTRY_CONTAINER} to remove"),
    ],
)
def test_nothing_to_delete_without_an_engine(
    engine_down: dict[str, str], command: list[str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scripts", *command],
        cwd=config.ROOT, env=engine_down, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    output = result.stdout + result.stderr
    assert "docker engine not running" in output and message in output, output


def test_no_docker_client_at_all_is_no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from scripts import common

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(config, "TOOLS_BIN", tmp_path)
    assert common.docker_answers() is False
