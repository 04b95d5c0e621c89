"""Regenerates the example presets shipped with the pool helper from the chart's default values.

Run after changing what the chart publishes: `.venv/bin/python -m tests.dags.example_presets`
(`test_shipped_example_presets_are_what_the_chart_publishes` fails until then).
"""

from __future__ import annotations

import json

from airflow_platform_pools.testing import example_presets_path

from tests.chart.rendering import presets, render


def expected() -> dict:
    return presets(render("values.yaml"))


def main() -> None:
    path = example_presets_path()
    path.write_text(json.dumps(expected(), indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
