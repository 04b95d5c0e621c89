"""Parse and check DAGs without a cluster: example presets and a pytest fixture for a DAG author's CI.

`example_presets.json` is what the chart publishes with its default values (kept equal by the
platform's own tests). In a DAG repository's `conftest.py`:

    pytest_plugins = ["airflow_platform_pools.testing"]

    def test_dags_import(platform_presets):
        from airflow.dag_processing.dagbag import DagBag
        assert DagBag("dags/").import_errors == {}

or, outside pytest, `AIRFLOW_PLATFORM_PRESETS=$(python -m airflow_platform_pools.testing)`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from . import PRESETS_ENV, _load

EXAMPLE_PRESETS = "example_presets.json"


def example_presets_path() -> Path:
    """Path of the example presets shipped in this package."""
    return Path(str(resources.files(__package__) / EXAMPLE_PRESETS))


def use_presets(path: Path) -> str | None:
    """Point the helper at `path`; returns the previous setting, for `restore_presets`."""
    previous = os.environ.get(PRESETS_ENV)
    os.environ[PRESETS_ENV] = str(path)
    _load.cache_clear()
    return previous


def restore_presets(previous: str | None) -> None:
    if previous is None:
        os.environ.pop(PRESETS_ENV, None)
    else:
        os.environ[PRESETS_ENV] = previous
    _load.cache_clear()


try:
    import pytest
except ImportError:  # the Airflow image has no pytest: only the fixture needs it
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def platform_presets() -> Iterator[Path]:
        """The example presets, set as the helper's presets for the duration of a test."""
        previous = use_presets(example_presets_path())
        yield example_presets_path()
        restore_presets(previous)


if __name__ == "__main__":
    print(example_presets_path())
