"""Fixtures for the image tests: images built (or reused from the layer cache) by scripts.images,
and containers run from them with the real Docker engine."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scripts import config, images
from tests.chart.rendering import NAMESPACE, find, render


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


@pytest.fixture(scope="session")
def image_refs() -> dict[str, str]:
    """Every image built once per session; a rebuild without changes only hits the layer cache."""
    tag = images.image_tag()
    images.build(list(config.images()), tag)
    return {image.name: image.ref(tag) for image in config.images()}


def chart_file(configmap: str, key: str, values_file: str = "values-kind.yaml") -> str:
    """One file of a ConfigMap the chart renders in the Airflow namespace, by the real helm binary."""
    return find(render(values_file), "ConfigMap", configmap, NAMESPACE)["data"][key]


def run_in(image: str, *command: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Runs a one-off container as the image's default user (no --user override)."""
    return docker("run", "--rm", *options, image, *command, check=False)


@pytest.fixture
def start_container() -> Iterator[Callable[..., str]]:
    """Starts detached containers and removes them after the test."""
    names: list[str] = []

    def start(image: str, *options: str) -> str:
        name = f"images-test-{uuid.uuid4().hex[:10]}"
        docker("run", "-d", "--name", name, *options, image)
        names.append(name)
        return name

    yield start
    for name in names:
        docker("rm", "-f", name, check=False)


def writable_mounts(base: Path, *targets: str) -> tuple[str, ...]:
    """`-v` options that mount empty world-writable host folders, like Kubernetes emptyDir volumes."""
    options: list[str] = []
    for index, target in enumerate(targets):
        folder = base / f"mount-{index}"
        folder.mkdir()
        folder.chmod(0o777)
        options += ["-v", f"{folder}:{target}"]
    return tuple(options)


def container_ip(name: str) -> str:
    return docker(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name
    ).stdout.strip()


def wait_until(probe: Callable[[], bool], what: str, container: str, deadline_seconds: float = 90) -> None:
    """Polls `probe` until it holds; on timeout fails with the container's log."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if probe():
            return
        running = docker("inspect", "-f", "{{.State.Running}}", container).stdout.strip()
        if running != "true":
            break
        time.sleep(0.5)
    logs = docker("logs", "--tail", "40", container, check=False)
    pytest.fail(f"{what} not reached; container log:\n{logs.stdout}{logs.stderr}")
