"""The steps that stay shell scripts (they run before Python has its venv, or are plain package
installs), called with every pinned version of versions.env in their environment."""

from __future__ import annotations

from scripts import config
from scripts.common import run

SCRIPTS = config.ROOT / "scripts"


def tools() -> None:
    """kind, helm, kubectl, versitygw, Prometheus, readme-generator at their pinned versions in .tools/bin."""
    run(SCRIPTS / "tools.sh")


def docker_engine() -> None:
    """A Docker engine that can run privileged containers (kind nodes)."""
    run(SCRIPTS / "docker" / "ensure-engine.sh")
