"""Loads the scripts the chart ships under files/ops/ (run by its CronJobs) as modules for tests."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.chart.rendering import CHART

OPS_SCRIPTS = CHART / "files" / "ops"


def load_chart_script(name: str) -> ModuleType:
    """files/ops/<name>.py as module `name` (registered in sys.modules: dataclasses look it up there)."""
    spec = importlib.util.spec_from_file_location(name, OPS_SCRIPTS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
