"""The air-gapped base: a debootstrap rootfs imported into Docker, usable as BASE_IMAGE."""

from __future__ import annotations

import subprocess

import pytest

from tests.images.conftest import ROOT, images_script, run_in

pytestmark = pytest.mark.docker


def test_base_builds_without_a_registry_and_runs_bookworm() -> None:
    subprocess.run([str(ROOT / "images/base/build.sh")], check=True)
    result = run_in(images_script.AIRGAPPED_BASE, "cat", "/etc/os-release")
    assert result.returncode == 0, result.stderr
    assert "VERSION_CODENAME=bookworm" in result.stdout
    sources = run_in(images_script.AIRGAPPED_BASE, "cat", "/etc/apt/sources.list").stdout
    assert "bookworm-security" in sources
