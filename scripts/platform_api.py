"""Talks to the installed platform: helm release, api-server address, admin token, DAG runs.

Shared by `make up` (scripts/up.py) and the end-to-end tests (tests/e2e), so both drive the platform
the same way a user would: Helm for install, the Airflow REST API v2 (official client) for DAG runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time

import airflow_client.client as airflow_client
import requests
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from scripts import config
from scripts.common import run

CHART = config.CHART
RELEASE = config.RELEASE
NAMESPACE = config.AIRFLOW_NAMESPACE
API_SERVICE = f"{RELEASE}-api-server"
ADMIN_SECRET = f"{RELEASE}-admin"
ADMIN_USER = "admin"
FINISHED_STATES = {"success", "failed"}


def install_fingerprint(tag: str, extra_args: list[str]) -> str:
    """A digest of everything an install depends on: chart files, kind values, image tag, extra args."""
    digest = hashlib.sha256()
    for path in sorted(p for p in CHART.rglob("*") if p.is_file()):  # follows the node-pools symlink
        digest.update(str(path.relative_to(CHART)).encode() + b"\0" + path.read_bytes())
    digest.update("\0".join([tag, *extra_args]).encode())
    return digest.hexdigest()[:16]


def registry_install_args() -> list[str]:
    """In registry mode the release's images come from the local registry, with its credential."""
    if not config.registry_mode():
        return []
    from scripts import registry  # only in registry mode: it needs the registry's files

    return ["--values", str(registry.pull_values_file())]


def deployed_description() -> str | None:
    result = subprocess.run(
        ["helm", "status", RELEASE, "--namespace", NAMESPACE, "-o", "json"],
        capture_output=True, text=True, env=config.tool_env(),
    )  # fmt: skip
    if result.returncode:
        return None
    info = json.loads(result.stdout)["info"]
    return info.get("description") if info.get("status") == "deployed" else None


def helm_upgrade_install(tag: str, extra_args: list[str] | None = None, timeout: str = "20m") -> bool:
    """Installs or upgrades the release with images `tag`; skips it (returns False) when nothing it
    depends on changed. The fingerprint travels as the release description, so a second `make up`
    changes nothing.
    """
    extra_args = [*registry_install_args(), *(extra_args or [])]
    description = f"airflow-platform fingerprint {install_fingerprint(tag, extra_args)}"
    if deployed_description() == description:
        print(f"    release {RELEASE} is deployed and unchanged: nothing to do", flush=True)
        return False
    command = [
        "helm", "upgrade", "--install", RELEASE, str(CHART),
        "--namespace", NAMESPACE, "--create-namespace",
        "--values", str(config.KIND_VALUES),
        "--set", f"images.tag={tag}",
        "--description", description,
        "--wait", "--timeout", timeout,
        *extra_args,
    ]  # fmt: skip
    run(*command, cwd=config.ROOT)
    return True


def core_api() -> k8s.CoreV1Api:
    k8s_config.load_kube_config(config_file=str(config.KUBECONFIG))
    return k8s.CoreV1Api()


def admin_password() -> str:
    secret = core_api().read_namespaced_secret(ADMIN_SECRET, NAMESPACE)
    return base64.b64decode(secret.data["password"]).decode()


def admin_password_command() -> str:
    return f"kubectl -n {NAMESPACE} get secret {ADMIN_SECRET} -o jsonpath='{{.data.password}}' | base64 -d"


def _control_plane_address() -> str:
    result = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
         f"{config.CLUSTER_NAME}-control-plane"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return result.stdout.strip()


def ui_url() -> str:
    """The api-server's NodePort on the control-plane node (reachable from the Docker host)."""
    service = core_api().read_namespaced_service(API_SERVICE, NAMESPACE)
    node_port = next(port.node_port for port in service.spec.ports if port.node_port)
    return f"http://{_control_plane_address()}:{node_port}"


def wait_for_api_server(timeout_seconds: float = 300) -> None:
    url = f"{ui_url()}/api/v2/monitor/health"
    deadline = time.monotonic() + timeout_seconds
    last_error = ""
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=5)
            if response.ok:
                return
            last_error = f"HTTP {response.status_code}"
        except requests.RequestException as error:
            last_error = str(error)
        time.sleep(3)
    raise TimeoutError(f"api-server at {url} not healthy after {timeout_seconds:.0f} s: {last_error}")


def access_token(base_url: str, password: str, user: str = ADMIN_USER) -> str:
    response = requests.post(
        f"{base_url}/auth/token", json={"username": user, "password": password}, timeout=30
    )
    response.raise_for_status()
    return response.json()["access_token"]


def api_client(base_url: str | None = None) -> airflow_client.ApiClient:
    base_url = base_url or ui_url()
    configuration = airflow_client.Configuration(host=base_url)
    configuration.access_token = access_token(base_url, admin_password())
    return airflow_client.ApiClient(configuration)


def trigger_dag(api: airflow_client.ApiClient, dag_id: str) -> str:
    airflow_client.DAGApi(api).patch_dag(dag_id, airflow_client.DAGPatchBody(is_paused=False))
    body = airflow_client.TriggerDAGRunPostBody(logical_date=None)
    return airflow_client.DagRunApi(api).trigger_dag_run(dag_id, body).dag_run_id


def wait_for_dag_run(
    api: airflow_client.ApiClient, dag_id: str, run_id: str, timeout_seconds: float = 1800
) -> str:
    runs = airflow_client.DagRunApi(api)
    deadline = time.monotonic() + timeout_seconds
    last_state = ""
    while time.monotonic() < deadline:
        state = str(runs.get_dag_run(dag_id, run_id).state.value)
        if state != last_state:
            print(f"    {dag_id} {run_id}: {state}", flush=True)
            last_state = state
        if state in FINISHED_STATES:
            return state
        time.sleep(5)
    raise TimeoutError(f"{dag_id} run {run_id} not finished after {timeout_seconds:.0f} s")


def run_dag_once(dag_id: str) -> str:
    with api_client() as api:
        return wait_for_dag_run(api, dag_id, trigger_dag(api, dag_id))
