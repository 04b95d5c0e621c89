"""metrics.serviceMonitor with real Prometheus processes, no Kubernetes: a relay Prometheus receives
OTLP as the chart's Prometheus does, and a second Prometheus scrapes its /federate with exactly the
request the rendered ServiceMonitor makes (path, params, honor_labels, interval, timeout). The
prefix's series arrive with the labels the relay gave them; other series stay behind; Airflow's timers
(native histograms) only reach a scraper with scrape_native_histograms, as the README says.

Needs .tools/bin/prometheus (`make tools`); skipped without it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from tests.chart.rendering import of_kind, render
from tests.dags.live_airflow import wait_until

from .prometheus_server import CONFIG, PROMETHEUS, Prometheus, prometheus_server
from .service_monitor import scrape_job

POD = "airflow-platform-scheduler-0"
SERVICE = "airflow-platform"
COUNTER, OTHER = "airflow_federation_probe_total", "other_federation_probe_total"
TIMER = "airflow_probe_milliseconds"


def push(relay: Prometheus) -> None:
    """One export, as an Airflow pod sends it: an `airflow.` counter and timer (a native histogram, as
    Airflow's timers arrive), and a counter of another prefix."""
    resource = Resource.create({"service.name": SERVICE, "service.instance.id": POD, "k8s.pod.name": POD})
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=relay.otlp_endpoint), 3_600_000)
    exponential = View(instrument_type=Histogram, aggregation=ExponentialBucketHistogramAggregation())
    provider = MeterProvider(resource=resource, metric_readers=[reader], views=[exponential])
    meter = provider.get_meter("federation-test")
    meter.create_counter("airflow.federation_probe").add(3, {"pool": "general"})
    meter.create_histogram("airflow.probe", unit="ms").record(12.0)
    meter.create_counter("other.federation_probe").add(1)
    provider.shutdown()  # flushes the export


@pytest.fixture(scope="module")
def monitor() -> dict[str, Any]:
    manifests = render(
        "values.yaml",
        "--set", "metrics.enabled=true",
        "--set", "metrics.testPrometheus.enabled=true",
        "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.serviceMonitor.interval=2s",
        "--set", "metrics.serviceMonitor.scrapeTimeout=1s",
    )  # fmt: skip
    (service_monitor,) = of_kind(manifests, "ServiceMonitor")
    return service_monitor


@pytest.fixture(scope="module")
def relay() -> Iterator[Prometheus]:
    if not PROMETHEUS.exists():
        pytest.skip(f"{PROMETHEUS} is missing: run `make tools` to federate between real Prometheus")
    with prometheus_server() as server:
        push(server)
        wait_until(lambda: server.query(COUNTER) and server.query(TIMER), "the OTLP push in the relay", 30)
        yield server


def scraper_config(job: dict[str, Any]) -> str:
    return yaml.safe_dump(yaml.safe_load(CONFIG) | {"scrape_configs": [job]})


def test_the_scraper_gets_the_relayed_series_as_the_service_monitor_asks(
    monitor: dict[str, Any], relay: Prometheus
) -> None:
    job = scrape_job(monitor, relay.url.removeprefix("http://"))
    with prometheus_server(scraper_config(job)) as scraper:
        wait_until(lambda: scraper.query(COUNTER), "the federated series", 60)
        (series,) = scraper.query(COUNTER)
        assert series["value"][1] == "3"
        labels = series["metric"]
        # honor_labels: the relay's job and instance (the pod) win over the scraper's own.
        assert (labels["job"], labels["instance"], labels["pool"]) == (SERVICE, POD, "general")
        assert labels["k8s_pod_name"] == POD
        assert scraper.query(OTHER) == [] and relay.query(OTHER)  # match[] leaves it in the relay
        assert scraper.query(TIMER) == []  # native histograms need scrape_native_histograms
        (up,) = scraper.query(f'up{{job="{job["job_name"]}"}}')
        assert up["value"][1] == "1"


def test_timers_arrive_with_scrape_native_histograms(monitor: dict[str, Any], relay: Prometheus) -> None:
    job = scrape_job(monitor, relay.url.removeprefix("http://")) | {"scrape_native_histograms": True}
    with prometheus_server(scraper_config(job)) as scraper:
        count = f"histogram_count({TIMER})"
        wait_until(lambda: scraper.query(count), "the federated native histogram", 60)
        (series,) = scraper.query(count)
        assert (series["metric"]["instance"], series["value"][1]) == (POD, "1")
