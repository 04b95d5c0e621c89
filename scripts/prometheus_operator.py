"""prometheus-operator's CRDs, as the chart's ServiceMonitor (metrics.serviceMonitor) is checked against.

The chart installs no CRD and no operator. The tests need the real ServiceMonitor CRD: tests/chart
validate the rendered object against its openAPIV3Schema, tests/e2e/test_service_monitor.py applies it
to the kind cluster. It comes from the Go module zip of github.com/prometheus-operator/prometheus-operator
at PROMETHEUS_OPERATOR_VERSION (versions.env), fetched once from the Go module proxy (the first http(s)
entry of $GOPROXY, else proxy.golang.org: GitHub may be unreachable where the proxy answers), checked
against PROMETHEUS_OPERATOR_ZIP_SHA256 and kept in .cache/prometheus-operator/<version>/.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from scripts import config

MODULE = "github.com/prometheus-operator/prometheus-operator"
VERSION = config.VERSIONS["PROMETHEUS_OPERATOR_VERSION"]
ZIP_SHA256 = config.VERSIONS["PROMETHEUS_OPERATOR_ZIP_SHA256"]
CACHE = config.CACHE / "prometheus-operator" / VERSION
CRD_FOLDER = "example/prometheus-operator-crd"  # the CRDs as the project publishes them, one file each


def proxy_url() -> str:
    """The Go module proxy `go` itself would ask first (GOPROXY's first http(s) entry)."""
    for entry in os.environ.get("GOPROXY", "").replace("|", ",").split(","):
        if entry.startswith(("https://", "http://")):
            return entry.rstrip("/")
    return "https://proxy.golang.org"


def module_zip() -> Path:
    """The module zip in the cache, downloaded and checked against the pinned sha256 on first use."""
    path = CACHE / f"prometheus-operator-{VERSION}.zip"
    if path.is_file():
        return path
    url = f"{proxy_url()}/{MODULE}/@v/{VERSION}.zip"
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=CACHE, suffix=".part", delete=False) as part:
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                while chunk := response.read(1 << 20):
                    part.write(chunk)
        except OSError as error:
            Path(part.name).unlink(missing_ok=True)
            raise RuntimeError(f"cannot download {url}: {error}") from error
    digest = hashlib.sha256(Path(part.name).read_bytes()).hexdigest()
    if digest != ZIP_SHA256:
        Path(part.name).unlink(missing_ok=True)
        raise RuntimeError(
            f"{url} has sha256 {digest}, versions.env pins PROMETHEUS_OPERATOR_ZIP_SHA256={ZIP_SHA256}"
        )
    os.chmod(part.name, 0o644)
    os.replace(part.name, path)  # atomic: a concurrent reader sees the whole zip or none
    return path


def crd_file(plural: str = "servicemonitors") -> Path:
    """The CRD file `monitoring.coreos.com_<plural>.yaml`, extracted into the cache (for kubectl apply)."""
    name = f"monitoring.coreos.com_{plural}.yaml"
    path = CACHE / name
    if not path.is_file():
        with zipfile.ZipFile(module_zip()) as archive:
            data = archive.read(f"{MODULE}@{VERSION}/{CRD_FOLDER}/{name}")
        with tempfile.NamedTemporaryFile(dir=CACHE, suffix=".part", delete=False) as part:
            part.write(data)
        os.chmod(part.name, 0o644)
        os.replace(part.name, path)
    return path


def crd(plural: str = "servicemonitors") -> dict[str, Any]:
    """The CRD as a mapping."""
    return config.load_yaml(crd_file(plural))


def openapi_schema(plural: str = "servicemonitors", version: str = "v1") -> dict[str, Any]:
    """The openAPIV3Schema of one served version of the CRD."""
    versions = {entry["name"]: entry for entry in crd(plural)["spec"]["versions"]}
    return versions[version]["schema"]["openAPIV3Schema"]
