"""Scans rendered manifests with checkov's Kubernetes runner, one file at a time, in one process.

Run by scripts/checkov_chart.py with the Python of checkov's own venv (.tools/checkov), since checkov
cannot be imported into .venv. The checkov CLI takes ~5 s to start and load every framework's checks;
nine scenarios cost 45 s of `make test` that way, against ~6 s here. Each file gets a runner of its own,
so a graph check (a Pod without a NetworkPolicy, for example) sees only its own scenario's resources,
as `checkov --file` did; `checkov --directory` would join them into one graph.

Usage: python checkov_scan.py MANIFEST...   Prints {manifest: [[check id, check name, resource], ...]}.
"""

from __future__ import annotations

import json
import sys

from checkov.kubernetes.runner import Runner
from checkov.runner_filter import RunnerFilter


def failed_checks(manifest: str) -> list[list[str]]:
    reports = Runner().run(
        root_folder=None,
        files=[manifest],
        runner_filter=RunnerFilter(framework=["kubernetes"], download_external_modules=False),
    )
    reports = reports if isinstance(reports, list) else [reports]
    return [
        [record.check_id, record.check_name, record.resource]
        for report in reports
        for record in report.failed_checks
    ]


def main(manifests: list[str]) -> None:
    json.dump({manifest: failed_checks(manifest) for manifest in manifests}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
