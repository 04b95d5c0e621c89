"""checkov on every values scenario of the chart, with the justified exceptions of
charts/airflow-platform/checkov-allowlist.yaml (one reason each, narrowed to resources).

Run by `make lint`. Installs the pinned checkov (requirements/checkov.txt) into its own venv
.tools/checkov on first use: its dependency pins clash with Airflow's, so it cannot share .venv.
Exit 0 when every failed check is allow-listed, 1 otherwise (each unexpected failure printed),
2 when the allow-list itself is malformed.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "airflow-platform"
ALLOWLIST = CHART / "checkov-allowlist.yaml"
LOCK = ROOT / "requirements" / "checkov.txt"
VENV = ROOT / ".tools" / "checkov"
BYTECODE_STAMP = "# site-packages compiled to bytecode\n"
CHECKOV = VENV / "bin" / "checkov"
SCAN = Path(__file__).resolve().parent / "checkov_scan.py"
HELM = ROOT / ".tools" / "bin" / "helm"
VALUES_FILES = ("values.yaml", "values-kind.yaml", "values-production.yaml")


def scenarios() -> list[str]:
    return [*VALUES_FILES, *(f"ci/{p.name}" for p in sorted((CHART / "ci").glob("*-values.yaml")))]


def ensure_checkov() -> None:
    """The pinned checkov in .tools/checkov, (re)installed when the lock changed."""
    stamp = VENV / ".lock"
    # The lock plus how the venv was made: a venv made before bytecode was compiled is made again.
    wanted = LOCK.read_text() + BYTECODE_STAMP
    if CHECKOV.exists() and stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"[checkov] installing {LOCK.relative_to(ROOT)} into {VENV.relative_to(ROOT)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    # .venv's uv (scripts/venv.sh) installs the same pins as pip, several times faster.
    uv = Path(sys.executable).parent / "uv"
    installer = [str(uv), "pip", "install", "--python", str(VENV / "bin" / "python")] if uv.exists() else [
        str(VENV / "bin" / "pip"), "install"
    ]  # fmt: skip
    subprocess.run([*installer, "-q", "-r", str(LOCK)], check=True)
    # Bytecode for checkov and its ~6,000 modules: neither uv nor Python (PYTHONDONTWRITEBYTECODE=1 on the
    # CI machine) writes any, so each scan compiled what it imported (import alone: 3.6 s of CPU, 1.6 s
    # with bytecode), as scripts/venv.sh says for .venv.
    site_packages = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", site_packages], check=True, capture_output=True, text=True
    ).stdout.strip()
    subprocess.run([str(VENV / "bin" / "python"), "-m", "compileall", "-q", "-j", "0", purelib], check=True)
    stamp.write_text(wanted)


def load_allowlist() -> list[dict]:
    entries = yaml.safe_load(ALLOWLIST.read_text())["exceptions"]
    for index, entry in enumerate(entries):
        missing = {"check", "resources", "reason"} - set(entry)
        if missing or not str(entry.get("reason", "")).strip():
            sys.exit(
                f"{ALLOWLIST.name}: exceptions[{index}] needs check, resources and a reason "
                f"({sorted(missing)})"
            )
    return entries


def render(scenario: str, workdir: Path) -> Path:
    """The chart rendered with one scenario's values, written to a file of its own."""
    rendered = subprocess.run(
        [str(HELM), "template", "airflow-platform", str(CHART), "--namespace", "airflow",
         "--values", str(CHART / scenario)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    manifest = workdir / (scenario.replace("/", "-") + ".rendered.yaml")
    manifest.write_text(rendered)
    return manifest


def failed_checks(manifests: list[Path]) -> dict[str, list[tuple[str, str, str]]]:
    """(check id, check name, resource) of every failed check, per manifest, from one checkov process."""
    result = subprocess.run(
        [str(VENV / "bin" / "python"), str(SCAN), *map(str, manifests)],
        capture_output=True, text=True,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_COLOR": "1", "LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    if result.returncode != 0:
        sys.exit(f"[checkov] scan failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return {path: [tuple(check) for check in checks] for path, checks in json.loads(result.stdout).items()}


def allowed(check: str, resource: str, entries: list[dict]) -> dict | None:
    for entry in entries:
        if entry["check"] == check and any(fnmatch.fnmatchcase(resource, p) for p in entry["resources"]):
            return entry
    return None


def main() -> int:
    if not HELM.exists():
        sys.exit(f"{HELM} is missing: run `make tools`")
    ensure_checkov()
    entries = load_allowlist()
    used: set[int] = set()
    unexpected: list[str] = []
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:
        manifests = {scenario: render(scenario, Path(workdir)) for scenario in scenarios()}
        findings = failed_checks(list(manifests.values()))
    for scenario, manifest in manifests.items():
        failures = findings[str(manifest)]
        for check, name, resource in failures:
            entry = allowed(check, resource, entries)
            if entry is None:
                unexpected.append(f"{scenario}: {check} {name}: {resource}")
            else:
                used.add(entries.index(entry))
        refused = sum(1 for line in unexpected if line.startswith(scenario + ":"))
        print(f"[checkov] {scenario}: {len(failures)} findings, all but {refused} allow-listed", flush=True)
    print(f"[checkov] {len(manifests)} scenarios scanned in {time.monotonic() - start:.0f} s", flush=True)
    for index, entry in enumerate(entries):
        if index not in used:
            print(f"[checkov] note: allow-list entry {entry['check']} matched nothing (stale?)")
    for line in unexpected:
        print(f"[checkov] NOT ALLOWED {line}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
