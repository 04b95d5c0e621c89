"""Fixtures: the chart rendered once per values file (session-wide cache)."""

from __future__ import annotations

import pytest

from .rendering import SCENARIOS, VALUES_FILES, Manifest, rendered


@pytest.fixture(scope="session", params=VALUES_FILES)
def values_file(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def manifests(values_file: str) -> list[Manifest]:
    return rendered(values_file)


@pytest.fixture(scope="session", params=("values.yaml", *SCENARIOS))
def scenario(request: pytest.FixtureRequest) -> str:
    """The chart defaults and every values scenario of ci/."""
    return request.param


@pytest.fixture(scope="session")
def scenario_manifests(scenario: str) -> list[Manifest]:
    return rendered(scenario)


@pytest.fixture(scope="session")
def kind_manifests() -> list[Manifest]:
    return rendered("values-kind.yaml")
