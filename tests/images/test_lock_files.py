"""The Airflow pins of the image and of the dev environment agree (no Docker needed)."""

from __future__ import annotations

from pathlib import Path

from tests.facts import ROOT, expand_versions


def requirement_lines(path: Path) -> set[str]:
    lines = (line.split("#")[0].strip() for line in expand_versions(path.read_text()).splitlines())
    return {line.lower() for line in lines if line and not line.startswith("-")}


def constraint_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in requirement_lines(path):
        name, _, version = line.partition("==")
        pins[name.replace("_", "-")] = version
    return pins


def test_image_installs_what_the_dev_environment_installs() -> None:
    assert requirement_lines(ROOT / "images/airflow/requirements.txt") == requirement_lines(
        ROOT / "requirements/airflow.txt"
    )


def test_every_constraint_is_pinned_and_covers_the_requirements() -> None:
    pins = constraint_pins(ROOT / "images/airflow/constraints.txt")
    assert all(version for version in pins.values()), "every line of constraints.txt is name==version"
    for requirement in requirement_lines(ROOT / "images/airflow/requirements.txt"):
        name, _, version = requirement.partition("==")
        name = name.split("[")[0]
        assert pins.get(name) == version, f"constraints.txt pins {name} to {pins.get(name)}, not {version}"
