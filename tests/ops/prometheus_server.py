"""A real Prometheus 3 for tests (built from the Go module proxy by `make tools`), receiving OTLP
metrics on /api/v1/otlp/v1/metrics, with its TSDB in a temporary directory."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.clickhouse.servers import free_port
from tests.dags.live_airflow import wait_until

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / ".tools" / "bin" / "prometheus"
# OTLP resource attributes that become labels of every series (the chart sets them per pod).
CONFIG = """
otlp:
  promote_resource_attributes: [k8s.pod.name]
"""


@dataclass
class Prometheus:
    url: str

    @property
    def otlp_endpoint(self) -> str:
        return f"{self.url}/api/v1/otlp/v1/metrics"

    def query(self, expression: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"query {expression!r} failed: {body.get('error', body)}")
        return body["data"]["result"]

    def metric_names(self) -> list[str]:
        return requests.get(f"{self.url}/api/v1/label/__name__/values", timeout=30).json()["data"]


@contextmanager
def prometheus_server(config: str = CONFIG) -> Iterator[Prometheus]:
    """A Prometheus with its OTLP receiver on; `config` is its prometheus.yml (e.g. scrape jobs added)."""
    if not PROMETHEUS.exists():
        pytest.fail(f"{PROMETHEUS} is missing: run `make tools`")
    workdir = Path(tempfile.mkdtemp(prefix="airflow-platform-prometheus-"))
    (workdir / "prometheus.yml").write_text(config)
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                str(PROMETHEUS), f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-otlp-receiver",
            ],
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        wait_until(lambda: requests.get(f"{server.url}/-/ready", timeout=5).ok, "prometheus", 60, [log])
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
