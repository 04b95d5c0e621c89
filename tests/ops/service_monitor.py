"""The scrape job prometheus-operator generates from the chart's ServiceMonitor, as a static job.

prometheus-operator turns each ServiceMonitor endpoint into a scrape job `serviceMonitor/<namespace>/
<name>/<index>` whose targets come from Kubernetes service discovery (the selected Service's
EndpointSlices, filtered by port name) and whose HTTP request comes from the endpoint: path, scheme,
params, honor_labels, interval and timeout. The tests without prometheus-operator keep that request and
name the target statically (an address, or the Service's DNS name and port). Used by
tests/ops/test_federation.py and tests/e2e/test_service_monitor.py.
"""

from __future__ import annotations

from typing import Any

# Endpoint fields and the scrape config keys they become; any other field fails loudly, so a template
# change cannot pass unexamined.
FIELDS = {
    "path": "metrics_path",
    "scheme": "scheme",
    "params": "params",
    "honorLabels": "honor_labels",
    "interval": "scrape_interval",
    "scrapeTimeout": "scrape_timeout",
}


def scrape_job(monitor: dict[str, Any], target: str, index: int = 0) -> dict[str, Any]:
    """The scrape job of endpoint `index` of `monitor`, scraping `target` (host:port)."""
    endpoint = monitor["spec"]["endpoints"][index]
    unknown = set(endpoint) - set(FIELDS) - {"port"}
    if unknown:
        raise ValueError(f"ServiceMonitor endpoint fields this job does not reproduce: {sorted(unknown)}")
    metadata = monitor["metadata"]
    job: dict[str, Any] = {"job_name": f"serviceMonitor/{metadata['namespace']}/{metadata['name']}/{index}"}
    job.update({FIELDS[key]: value for key, value in endpoint.items() if key in FIELDS})
    job["static_configs"] = [{"targets": [target]}]
    return job
