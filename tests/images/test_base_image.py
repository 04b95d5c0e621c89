"""The air-gapped base: a debootstrap rootfs imported into Docker, usable as BASE_IMAGE."""

from __future__ import annotations

import pytest

from scripts import config, images
from tests.images.conftest import docker, run_in

pytestmark = pytest.mark.docker


def test_base_builds_without_a_registry_and_runs_the_pinned_suite() -> None:
    suite = config.VERSIONS["DEBIAN_SUITE"]
    images.build_airgapped_base()
    result = run_in(images.AIRGAPPED_BASE, "cat", "/etc/os-release")
    assert result.returncode == 0, result.stderr
    assert f"VERSION_CODENAME={suite}" in result.stdout
    sources = run_in(images.AIRGAPPED_BASE, "cat", "/etc/apt/sources.list").stdout
    assert f"{suite}-security" in sources


@pytest.mark.parametrize("name", [image.name for image in config.images()])
def test_no_image_keeps_apt_downloads_or_caches(image_refs: dict[str, str], name: str) -> None:
    """images/base's apt configuration: .deb files and package caches never reach an image layer."""
    listing = docker(
        "run", "--rm", "--user", "0", "--entrypoint", "sh", image_refs[name], "-c",
        "find /var/cache/apt /var/lib/apt/lists -type f ! -name lock ! -name 'partial'",
    ).stdout  # fmt: skip
    assert listing.split() == []
