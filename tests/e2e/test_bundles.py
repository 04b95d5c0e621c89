"""DAGs delivered through git on the live platform: push, parse, run, versioned runs, import errors.

values-kind.yaml deploys the test git server (dags.testGitServer, NodePort 30418) with an `e2e`
repository and registers it as the bundle `e2e`. The test pushes over the NodePort with the writer
account; Airflow reads with the read-only account. No image is rebuilt and no `helm upgrade` runs:
every change reaches Airflow through git alone.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client as k8s

from scripts import platform_api
from tests.bundle_dags import GREETING, broken_dag, hello_dag, variable_gate, versioned_dag
from tests.facts import NAMESPACE, RELEASE

pytestmark = pytest.mark.cluster

GIT_SECRET = f"{RELEASE}-git-server"
GIT_SERVICE = f"{RELEASE}-git-server"
BUNDLE = "e2e"
REFRESH_BUDGET = 180  # seconds: bundle refresh (20 s) + re-parse + the api-server seeing it, with margin
GATE_VARIABLE = "e2e_bundle_gate"

# A template other e2e modules format with their own dag_id.
HELLO_DAG = hello_dag("{dag_id}", BUNDLE)


def _versioned(version: str) -> str:
    return versioned_dag("e2e_versioned", BUNDLE, version, variable_gate(GATE_VARIABLE))


class Repository:
    """A working clone of the e2e repository, pushing over the NodePort as the writer."""

    def __init__(self, url: str, workdir: Path) -> None:
        self.path = workdir / "e2e"
        self._git("clone", "--quiet", url, str(self.path), cwd=workdir)

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "e2e",
            "GIT_AUTHOR_EMAIL": "e2e@example.com",
            "GIT_COMMITTER_NAME": "e2e",
            "GIT_COMMITTER_EMAIL": "e2e@example.com",
        }
        result = subprocess.run(["git", *args], cwd=cwd or self.path, env=env, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"git {args[0]}: {result.stderr.strip()}")
        return result.stdout.strip()

    def push(self, files: dict[str, str | None], message: str) -> str:
        self._git("pull", "--quiet", "--ff-only")
        for name, content in files.items():
            if content is None:
                (self.path / name).unlink()
            else:
                (self.path / name).parent.mkdir(parents=True, exist_ok=True)
                (self.path / name).write_text(content)
        self._git("add", "--all")
        self._git("commit", "--quiet", "--allow-empty", "-m", message)
        self._git("push", "--quiet", "origin", "HEAD:main")
        return self._git("rev-parse", "HEAD")


def wait_until(check: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException as error:
            last = str(error)
        time.sleep(3)
    raise TimeoutError(f"{what}: not after {timeout:.0f} s {last}")


class Api:
    def __init__(self) -> None:
        platform_api.wait_for_api_server()
        self.base = platform_api.ui_url()
        self.session = requests.Session()
        token = platform_api.access_token(self.base, platform_api.admin_password())
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base}/api/v2{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def exists(self, dag_id: str) -> bool:
        return self.session.get(f"{self.base}/api/v2/dags/{dag_id}", timeout=30).status_code == 200

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        return self.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})[
            "dag_run_id"
        ]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def finished(self, dag_id: str, run_id: str, timeout: float = 600) -> dict[str, Any]:
        wait_until(
            lambda: self.run(dag_id, run_id)["state"] in {"success", "failed"}, f"{dag_id} {run_id}", timeout
        )
        return self.run(dag_id, run_id)

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")["state"]

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.call("GET", path)["value"]

    def versions(self, dag_id: str) -> list[dict[str, Any]]:
        return self.call("GET", f"/dags/{dag_id}/dagVersions", params={"order_by": "version_number"})[
            "dag_versions"
        ]

    def import_errors(self) -> list[dict[str, Any]]:
        return self.call("GET", "/importErrors", params={"limit": 100})["import_errors"]

    def set_variable(self, key: str, value: str) -> None:
        if self.session.get(f"{self.base}/api/v2/variables/{key}", timeout=30).status_code == 200:
            self.call("PATCH", f"/variables/{key}", json={"key": key, "value": value})
        else:
            self.call("POST", "/variables", json={"key": key, "value": value})


@pytest.fixture(scope="module")
def api() -> Api:
    return Api()


@pytest.fixture(scope="module")
def repository(core: k8s.CoreV1Api) -> Iterator[Repository]:
    data = core.read_namespaced_secret(GIT_SECRET, NAMESPACE).data
    user = "writer"  # the test git server's account that may push
    password = base64.b64decode(data["writer-password"]).decode()
    service = core.read_namespaced_service(GIT_SERVICE, NAMESPACE)
    node_port = next(port.node_port for port in service.spec.ports if port.node_port)
    address = platform_api.ui_url().split("//")[1].split(":")[0]
    url = f"http://{user}:{password}@{address}:{node_port}/{BUNDLE}.git"
    with tempfile.TemporaryDirectory(prefix="e2e-bundle-") as workdir:
        yield Repository(url, Path(workdir))


def test_pushed_dag_appears_and_runs(api: Api, repository: Repository) -> None:
    dag_id = f"e2e_hello_{int(time.time())}"
    commit = repository.push({f"{dag_id}.py": hello_dag(dag_id, BUNDLE)}, f"add {dag_id}")
    wait_until(lambda: api.exists(dag_id), f"{dag_id} parsed from git", REFRESH_BUDGET)
    run_id = api.trigger(dag_id)
    run = api.finished(dag_id, run_id)
    assert run["state"] == "success"
    assert run["bundle_version"] == commit
    assert api.xcom(dag_id, run_id, "hello") == GREETING


def test_run_in_flight_keeps_its_version(api: Api, repository: Repository) -> None:
    api.set_variable(GATE_VARIABLE, "closed")
    v1_code, v2_code = f"v1-{time.time()}", f"v2-{time.time()}"
    v1 = repository.push({"e2e_versioned.py": _versioned(v1_code)}, "v1")
    wait_until(
        lambda: api.exists("e2e_versioned") and api.versions("e2e_versioned")[-1]["bundle_version"] == v1,
        "e2e_versioned v1",
        REFRESH_BUDGET,
    )
    v1_number = api.versions("e2e_versioned")[-1]["version_number"]
    first = api.trigger("e2e_versioned", {"gate": True})
    wait_until(
        lambda: api.task_state("e2e_versioned", first, "wait_for_gate") == "running", "the run in flight", 300
    )

    v2 = repository.push({"e2e_versioned.py": _versioned(v2_code)}, "v2")
    wait_until(
        lambda: api.versions("e2e_versioned")[-1]["bundle_version"] == v2, "e2e_versioned v2", REFRESH_BUDGET
    )
    v2_number = api.versions("e2e_versioned")[-1]["version_number"]
    assert v2_number > v1_number
    api.set_variable(GATE_VARIABLE, "open")
    run = api.finished("e2e_versioned", first)
    assert run["state"] == "success"
    assert run["bundle_version"] == v1
    assert api.xcom("e2e_versioned", first, "report") == v1_code, "the run in flight switched to new code"

    second = api.trigger("e2e_versioned")
    run = api.finished("e2e_versioned", second)
    assert run["state"] == "success"
    assert run["bundle_version"] == v2
    assert api.xcom("e2e_versioned", second, "report") == v2_code
    assert [v["version_number"] for v in api.run("e2e_versioned", first)["dag_versions"]] == [v1_number]
    assert [v["version_number"] for v in run["dag_versions"]] == [v2_number]


def test_import_error_is_reported_and_the_rest_keeps_running(api: Api, repository: Repository) -> None:
    repository.push({"e2e_broken.py": broken_dag("e2e_broken")}, "a broken DAG")

    def reported() -> list[dict[str, Any]]:
        return [e for e in api.import_errors() if e["filename"].endswith("e2e_broken.py")]

    try:
        wait_until(reported, "import error of e2e_broken.py", REFRESH_BUDGET)
        error = reported()[0]
        assert error["bundle_name"] == BUNDLE
        assert "a_module_that_does_not_exist" in error["stack_trace"]
        dag_id = f"e2e_after_break_{int(time.time())}"
        repository.push({f"{dag_id}.py": hello_dag(dag_id, BUNDLE)}, "a good DAG beside the broken one")
        wait_until(lambda: api.exists(dag_id), f"{dag_id} beside the broken file", REFRESH_BUDGET)
        assert api.finished(dag_id, api.trigger(dag_id))["state"] == "success"
        assert api.exists("clickhouse_db_sync"), "the platform's own DAGs stay"
        assert not [e for e in api.import_errors() if e["bundle_name"] != BUNDLE]
    finally:
        repository.push({"e2e_broken.py": None}, "remove the broken DAG")
    wait_until(lambda: not reported(), "the import error to clear", REFRESH_BUDGET)
