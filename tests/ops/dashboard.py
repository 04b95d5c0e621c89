"""The Grafana dashboard's queries (dashboards/airflow-platform.json), expanded as Grafana would for a
short range: shared by the query test against the tests' Prometheus (tests/ops/test_dashboard.py) and
the one against the kind platform's (tests/e2e/test_metrics.py)."""

from __future__ import annotations

import json

from scripts.config import ROOT

DASHBOARD = json.loads((ROOT / "dashboards" / "airflow-platform.json").read_text())
# Grafana's variables, as Grafana would expand them for a short range.
VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s"}
TARGETS = [
    (f"{panel['title']} [{target['refId']}]", target["expr"])
    for panel in DASHBOARD["panels"]
    for target in panel["targets"]
]


def expand(expression: str) -> str:
    for variable, value in VARIABLES.items():
        expression = expression.replace(variable, value)
    assert "$" not in expression, f"unexpanded variable in {expression!r}"
    return expression
