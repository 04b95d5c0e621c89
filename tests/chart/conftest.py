"""Fixtures: the chart rendered once per values file (session-wide cache)."""

from __future__ import annotations

import pytest

from .rendering import VALUES_FILES, Manifest, render


@pytest.fixture(scope="session", params=VALUES_FILES)
def values_file(request: pytest.FixtureRequest) -> str:
    return request.param


_CACHE: dict[str, list[Manifest]] = {}


@pytest.fixture(scope="session")
def manifests(values_file: str) -> list[Manifest]:
    if values_file not in _CACHE:
        _CACHE[values_file] = render(values_file)
    return _CACHE[values_file]


@pytest.fixture(scope="session")
def kind_manifests() -> list[Manifest]:
    if "values-kind.yaml" not in _CACHE:
        _CACHE["values-kind.yaml"] = render("values-kind.yaml")
    return _CACHE["values-kind.yaml"]
