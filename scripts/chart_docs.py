"""The Parameters tables of the chart README, generated from the `## @section` / `## @param` /
`## @extra` comments of values.yaml by Bitnami's readme-generator-for-helm (Apache-2.0, npm, pinned
in versions.env, installed by `make tools`). The generator rewrites only the README's `## Parameters`
section; the rest of the README is written by hand.

`make chart-docs` regenerates the README; `make chart-docs-check` (part of `make lint`) generates into
a copy and fails with the diff when the committed README differs (argo-helm's CI check). Both take
the chart folder (CHART_DIR), so a test can point them at a copy. Standard library only.
"""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts import config

GENERATOR = config.TOOLS_BIN / "readme-generator"
MISSING = re.compile(r"^ERROR: Missing metadata for key: (\S+)$", re.MULTILINE)


class MetadataError(RuntimeError):
    """values.yaml and its `## @` comments disagree: `missing` lists the undocumented keys."""

    def __init__(self, values: Path, output: str) -> None:
        self.missing = MISSING.findall(output)
        errors = [line for line in output.splitlines() if line.startswith(("ERROR", "Error"))]
        super().__init__(f"readme-generator refused {values}:\n" + "\n".join(errors or [output.strip()]))


def generate(values: Path, readme: Path) -> None:
    """Rewrite the `## Parameters` section of `readme` from the comments of `values`."""
    if not GENERATOR.exists():
        raise RuntimeError(f"{GENERATOR} is missing: run `make tools`")
    result = subprocess.run(
        [str(GENERATOR), "--values", str(values), "--readme", str(readme)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        # The generator prints its findings on stdout, then throws (the stack trace on stderr).
        raise MetadataError(values, result.stdout + result.stderr)


def render(chart: Path) -> str:
    """The README of `chart` as the generator makes it (the chart itself is left as it is)."""
    with tempfile.TemporaryDirectory(prefix="chart-docs-") as tmp:
        readme = Path(tmp) / "README.md"
        shutil.copyfile(chart / "README.md", readme)
        generate(chart / "values.yaml", readme)
        return readme.read_text()


def main(chart: Path, check: bool) -> None:
    readme = chart / "README.md"
    current, wanted = readme.read_text(), render(chart)
    if current == wanted:
        return
    if not check:
        readme.write_text(wanted)
        print(f"[chart-docs] {readme} regenerated")
        return
    diff = difflib.unified_diff(
        current.splitlines(keepends=True), wanted.splitlines(keepends=True), str(readme), "generated"
    )
    sys.stderr.writelines(diff)
    raise RuntimeError(f"{readme} is stale: run `make chart-docs`")
