"""The rendered pods run on the real images (Docker, no cluster): bundled Postgres, migrations, api-server,
dag-processor, triggerer with their commands, probes and restricted security context, the admin password
from the generated Secret, and the demo ClickHouse pair with its loader Job."""

from __future__ import annotations

import subprocess
import time

import pytest
import requests

from scripts.images import image_tag
from tests.facts import CLICKHOUSE_NAMESPACE, IMAGE_REPOSITORIES, image_ref

from .pod_runner import PodRunner
from .rendering import NAMESPACE, RELEASE, Manifest, find, render

pytestmark = pytest.mark.docker

JOBS = CLICKHOUSE_NAMESPACE


@pytest.fixture(scope="module")
def kind_render() -> list[Manifest]:
    tag = image_tag()
    missing = [
        name for name in IMAGE_REPOSITORIES
        if subprocess.run(["docker", "image", "inspect", image_ref(name, tag)],
                          capture_output=True, check=False).returncode != 0
    ]  # fmt: skip
    assert not missing, f"images {missing} with tag {tag} are not built: run `make images`"
    return render("values-kind.yaml", "--set", f"images.tag={tag}")


def _container(spec_owner: Manifest) -> dict:
    return spec_owner["spec"]["template"]["spec"]["containers"][0]


def _wait_http(url: str, timeout: float = 240) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=5)
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(3)


def test_control_plane_runs_from_the_rendered_pods(kind_render: list[Manifest]) -> None:
    with PodRunner(kind_render) as runner:
        postgres = f"{RELEASE}-postgres"
        (db,) = runner.run_pod(
            "StatefulSet", postgres, NAMESPACE, runner.service_aliases(postgres, NAMESPACE)
        ).values()
        runner.exec_probe(db, _container(find(kind_render, "StatefulSet", postgres))["readinessProbe"])

        migrate = next(m for m in kind_render if m["kind"] == "Job" and "-migrate-" in m["metadata"]["name"])
        assert "Database migration done" in runner.run_job(migrate["metadata"]["name"], NAMESPACE)

        api = f"{RELEASE}-api-server"
        api_containers = runner.run_pod("Deployment", api, NAMESPACE, runner.service_aliases(api, NAMESPACE))
        for component in ("dag-processor", "triggerer"):
            (container,) = runner.run_pod("Deployment", f"{RELEASE}-{component}", NAMESPACE).values()
            probe = _container(find(kind_render, "Deployment", f"{RELEASE}-{component}"))["livenessProbe"]
            runner.exec_probe(container, probe)

        api_probe = _container(find(kind_render, "Deployment", api))["readinessProbe"]
        runner.exec_probe(api_containers["api-server"], api_probe)
        base = f"http://{runner.container_ip(api_containers['api-server'])}:8080"
        health = _wait_http(f"{base}/api/v2/monitor/health")
        assert health.ok
        parts = health.json()
        assert parts["metadatabase"]["status"] == "healthy"
        assert parts["dag_processor"]["status"] == "healthy"
        assert parts["triggerer"]["status"] == "healthy"

        password = runner._secret_value(NAMESPACE, f"{RELEASE}-admin", "password")
        token = requests.post(
            f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30
        )
        assert token.ok, token.text
        wrong = requests.post(
            f"{base}/auth/token", json={"username": "admin", "password": "wrong"}, timeout=30
        )
        assert wrong.status_code == 401
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        dags = requests.get(f"{base}/api/v2/dags", headers=headers, timeout=30)
        assert dags.ok, dags.text


def test_demo_clickhouse_pair_from_the_rendered_pods(kind_render: list[Manifest]) -> None:
    with PodRunner(kind_render) as runner:
        servers = {}
        for side in ("source", "destination"):
            name = f"clickhouse-{side}"
            (servers[side],) = runner.run_pod(
                "Deployment", name, JOBS, runner.service_aliases(name, JOBS)
            ).values()
            runner.exec_probe(
                servers[side], _container(find(kind_render, "Deployment", name))["startupProbe"]
            )
        loader = next(
            m
            for m in kind_render
            if m["kind"] == "Job" and m["metadata"]["name"].startswith("clickhouse-demo")
        )
        output = runner.run_job(loader["metadata"]["name"], JOBS)
        for table in (
            "events",
            "users",
            "daily_totals",
            "daily_totals_mv",
            "big_spenders",
            "events_backup",
            "test_table",
        ):
            assert table in output, output
        # the password from the Secret is enforced: no access without it
        anonymous = subprocess.run(
            ["docker", "exec", servers["source"], "clickhouse-client", "--query", "SELECT 1"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert anonymous.returncode != 0
        # idempotent: a second run (next helm upgrade) keeps the data and does not duplicate it
        assert "demo rows already present" in runner.run_job(loader["metadata"]["name"], JOBS)
