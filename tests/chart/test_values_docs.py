"""Every leaf of values.yaml carries a `## @param` description (or sits in a map or list documented
as one row by `## @extra` + `## @skip`), so the generated README tables have a described row per
setting. (`make lint` checks that the committed README is the generated one.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import chart_docs

from .rendering import CHART, ROOT

# The generator's own patterns (lib/parser.js, default config.json): path, [modifiers], description.
TAG = re.compile(r"^\s*##\s*@(param|extra|skip|section)\s*(\S*)\s*(\[.*?\])?\s*(.*)$")


def undocumented_rows(chart: Path) -> list[str]:
    """Keys of `chart`'s values.yaml that get no described row: those the generator finds without
    metadata, `## @param`/`## @extra` lines with an empty description or before any `## @section`
    (the generator leaves those out of the README), and `## @skip` paths without a row of their own."""
    try:
        chart_docs.render(chart)
        missing = []
    except chart_docs.MetadataError as error:
        assert error.missing, str(error)  # refused for another reason (metadata for no key, a bad modifier)
        missing = error.missing
    in_section, empty, rows, skipped = False, [], set(), []
    for line in (chart / "values.yaml").read_text().splitlines():
        match = TAG.match(line)
        if match is None:
            continue
        tag, path, _, description = match.groups()
        in_section = in_section or tag == "section"
        if tag in ("param", "extra"):
            rows.add(path)
            if not (description.strip() and in_section):
                empty.append(path)
        elif tag == "skip":
            skipped.append(path)
    return missing + empty + [path for path in skipped if path not in rows]


def collapsed_sections(chart: Path) -> list[str]:
    """Keys documented as one row although values.schema.json closes them (a fixed set of settings):
    their leaves would have no rows, so each leaf must carry its own `## @param` instead. Open maps
    (resources, quotas, security contexts, airflow.cfg) stay one documented row."""
    text = (chart / "values.yaml").read_text()
    one_row = {
        match[2] for match in map(TAG.match, text.splitlines()) if match and match[1] in ("extra", "skip")
    }
    schema = json.loads((chart / "values.schema.json").read_text())

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
        return node

    found = []

    def walk(mapping: yaml.MappingNode, prefix: str, node: dict[str, Any]) -> None:
        for key, value in mapping.value:
            child = resolve(resolve(node).get("properties", {}).get(key.value, {}))
            closed = child.get("additionalProperties") is False and child.get("properties")
            if isinstance(value, yaml.MappingNode) and value.value and closed:
                if prefix + key.value in one_row:
                    found.append(prefix + key.value)
                walk(value, f"{prefix}{key.value}.", child)

    walk(yaml.compose(text), "", schema)
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
        pytest.param("# -- A helm-docs comment.\nnewKey: 1\n", ["newKey"], id="helm-docs-comment"),
        pytest.param("## @param newKey\nnewKey: 1\n", ["newKey"], id="empty-description"),
        pytest.param("## @param newKey Documented.\nnewKey: 1\n", [], id="documented"),
        pytest.param(
            "newParent:\n  ## @param newParent.known documented\n  known: 1\n  unknown: []\n",
            ["newParent.unknown"],
            id="sibling",
        ),
        pytest.param(
            "## @extra newMap A documented map is one row.\n## @skip newMap\nnewMap:\n  child: {}\n",
            [],
            id="documented-map",
        ),
        pytest.param("## @skip newMap\nnewMap:\n  child: {}\n", ["newMap"], id="skipped-map-without-row"),
    ],
)
def test_undocumented_values_are_found(chart_copy: Path, addition: str, expected: list[str]) -> None:
    """The check can fail: a key added without a `## @param` description is reported by its path."""
    with (chart_copy / "values.yaml").open("a") as values:
        values.write("\n" + addition)
    assert undocumented_rows(chart_copy) == expected


def test_a_row_before_any_section_is_found(chart_copy: Path) -> None:
    """The generator leaves a `## @param` out of the README unless a `## @section` comes before it."""
    values = chart_copy / "values.yaml"
    values.write_text("## @param newKey Documented, but in no section.\nnewKey: 1\n" + values.read_text())
    assert undocumented_rows(chart_copy) == ["newKey"]


def make(target: str, chart: Path) -> subprocess.CompletedProcess[str]:
    """`make TARGET CHART_DIR=chart`, the tools taken as installed (`-o tools`)."""
    return subprocess.run(
        ["make", "--no-print-directory", "-o", "tools", target, f"CHART_DIR={chart}"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_a_stale_readme_fails_the_check_until_regenerated(chart_copy: Path) -> None:
    """`make chart-docs-check` leaves the README alone and fails with the diff; `make chart-docs` fixes it."""
    values, readme = chart_copy / "values.yaml", chart_copy / "README.md"
    committed = readme.read_text()
    assert make("chart-docs-check", chart_copy).returncode == 0
    values.write_text(
        values.read_text().replace("Registry prefix for every image", "Registry prefix of every image", 1)
    )
    check = make("chart-docs-check", chart_copy)
    assert check.returncode != 0
    assert "README.md is stale: run `make chart-docs`" in check.stderr
    assert "+| `images.registry`" in check.stderr and "Registry prefix of every image" in check.stderr
    assert readme.read_text() == committed
    assert make("chart-docs", chart_copy).returncode == 0
    assert "Registry prefix of every image" in readme.read_text()
    assert make("chart-docs-check", chart_copy).returncode == 0
    regenerated = readme.read_text().splitlines()
    changed = [new for old, new in zip(committed.splitlines(), regenerated, strict=True) if old != new]
    assert len(changed) == 1 and changed[0].startswith("| `images.registry`")  # the hand-written parts stay


def test_a_collapsed_settings_section_is_found(chart_copy: Path) -> None:
    values = chart_copy / "values.yaml"
    text = values.read_text()
    values.write_text(text.replace("\nrbac:\n", "\n## @extra rbac RBAC.\n## @skip rbac\nrbac:\n", 1))
    assert collapsed_sections(chart_copy) == ["rbac"]
