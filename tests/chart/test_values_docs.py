"""Every leaf of values.yaml carries a helm-docs `# --` description, so the generated README table
has a described row per setting. (`make lint` checks that the committed README is the generated one.)"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .rendering import CHART, ROOT

HELM_DOCS = ROOT / ".tools" / "bin" / "helm-docs"
ROWS_TEMPLATE = Path(__file__).with_name("helm-docs-rows.gotmpl")


def undocumented_rows(chart: Path) -> list[str]:
    """Keys of the rows helm-docs generates for `chart` without a description."""
    if not HELM_DOCS.exists():
        pytest.fail(f"{HELM_DOCS} is missing: run `make tools`")
    result = subprocess.run(
        [str(HELM_DOCS), "--dry-run", "--log-level", "warning", "--chart-search-root", str(chart),
         "--template-files", str(ROWS_TEMPLATE)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = [line.split("\t", 1) for line in result.stdout.splitlines() if line]
    assert rows, f"helm-docs produced no values rows: {result.stderr}"
    return [key for key, description in rows if not description.strip()]


def collapsed_sections(chart: Path) -> list[str]:
    """Keys documented as one row although values.schema.json closes them (a fixed set of settings):
    helm-docs then hides their leaves, so each leaf must carry its own `# --` instead. Open maps
    (resources, quotas, security contexts, airflow.cfg) stay one documented row."""
    lines = (chart / "values.yaml").read_text().splitlines()
    schema = json.loads((chart / "values.schema.json").read_text())

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
        return node

    def documented(line: int) -> bool:
        while line > 0 and lines[line - 1].lstrip().startswith("#"):
            line -= 1
            if lines[line].lstrip().startswith("# --"):
                return True
        return False

    found = []

    def walk(mapping: yaml.MappingNode, prefix: str, node: dict[str, Any]) -> None:
        for key, value in mapping.value:
            child = resolve(resolve(node).get("properties", {}).get(key.value, {}))
            closed = child.get("additionalProperties") is False and child.get("properties")
            if isinstance(value, yaml.MappingNode) and value.value and closed:
                if documented(key.start_mark.line):
                    found.append(prefix + key.value)
                walk(value, f"{prefix}{key.value}.", child)

    walk(yaml.compose((chart / "values.yaml").read_text()), "", schema)
    return found


def test_every_value_is_documented() -> None:
    assert undocumented_rows(CHART) == []


def test_no_settings_section_is_documented_as_one_row() -> None:
    assert collapsed_sections(CHART) == []


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart, symlinks=True)
    return chart


@pytest.mark.parametrize(
    ("addition", "expected"),
    [
        pytest.param("newKey: 1\n", ["newKey"], id="plain-leaf"),
        pytest.param("# Only a plain comment.\nnewKey: 1\n", ["newKey"], id="plain-comment"),
        pytest.param(
            "newParent:\n  # -- documented\n  known: 1\n  unknown: []\n", ["newParent.unknown"], id="sibling"
        ),
        pytest.param("# -- A documented map is one row.\nnewMap:\n  child: {}\n", [], id="documented-map"),
    ],
)
def test_undocumented_values_are_found(chart_copy: Path, addition: str, expected: list[str]) -> None:
    """The check can fail: a key added without a `# --` comment is reported by its path."""
    with (chart_copy / "values.yaml").open("a") as values:
        values.write("\n" + addition)
    assert undocumented_rows(chart_copy) == expected


def test_a_collapsed_settings_section_is_found(chart_copy: Path) -> None:
    values = chart_copy / "values.yaml"
    text = values.read_text()
    values.write_text(text.replace("\nrbac:\n", "\n# -- RBAC.\nrbac:\n", 1))
    assert collapsed_sections(chart_copy) == ["rbac"]
