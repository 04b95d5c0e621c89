"""Git DAG bundles in a real Airflow, configured exactly as the chart renders them.

The bundle list, the git connections and which component gets which credential come from `helm
template` of the chart (values `dags.bundles`); the repositories live on the platform's own git server
(images/git-server, run as a local process). The scheduler holds no git credential, like the chart's
worker pods: its task processes check out their run's bundle version with the connection the
api-server's execution API hands them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.bundle_dags import FILE_GATE, GREETING, broken_dag, hello_dag, versioned_dag
from tests.chart.rendering import NAMESPACE, RELEASE, airflow_cfg, find, render
from tests.clickhouse.servers import free_port

from .conftest import DAGS
from .git_server import GitServer, git_server
from .live_airflow import LiveAirflow, airflow_processes, postgres_server, wait_until

TEAM = "team"
REFRESH = 10
GOOD_SECRET = "team-dags-git"
WRONG_SECRET = "wrong-dags-git"
SYNC_DAG = "clickhouse_db_sync"


def _versioned(version: str) -> str:
    return versioned_dag("team_versioned", TEAM, version, FILE_GATE)


def bundles_values(git: GitServer, closed_port: int) -> list[dict[str, Any]]:
    """One working bundle and one per failure class of the issue (each must fail alone)."""
    token = {"secretName": GOOD_SECRET, "type": "token", "username": "airflow"}
    http = {"allowPlainHttp": True, "refreshInterval": REFRESH}
    return [
        {"name": TEAM, "url": git.url(TEAM), "subdir": "dags", "credentials": token, **http},
        {
            "name": "wrong-credentials",
            "url": git.url(TEAM),
            "credentials": {**token, "secretName": WRONG_SECRET},
            **http,
        },
        {
            "name": "missing-secret",
            "url": git.url(TEAM),
            "credentials": {**token, "secretName": "no-such-secret"},
            **http,
        },
        {
            "name": "missing-branch",
            "url": git.url(TEAM),
            "ref": "no-such-branch",
            "credentials": token,
            **http,
        },
        {"name": "unreachable", "url": f"http://127.0.0.1:{closed_port}/team.git", **http},
        # fails until the test pushes its branch: recovery without a restart
        {"name": "late", "url": git.url(TEAM), "ref": "late", "subdir": "late", "credentials": token, **http},
    ]


def resolved_env(container: dict[str, Any], secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The git-related env of a rendered container as the kubelet would set it (secretKeyRef, $(VAR))."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if not item["name"].startswith(("AIRFLOW_CONN_GIT_", "AIRFLOW_PLATFORM_GIT_")):
            continue
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            if (ref["name"], ref["key"]) in secrets:
                env[item["name"]] = secrets[(ref["name"], ref["key"])]
            else:
                assert ref.get("optional"), f"{item['name']}: a missing Secret would stop the pod"
            continue
        env[item["name"]] = re.sub(
            r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), item["value"]
        )
    return env


@pytest.fixture(scope="module")
def git() -> Iterator[GitServer]:
    with git_server([TEAM]) as server:
        yield server


@pytest.fixture(scope="module")
def commits(git: GitServer) -> dict[str, str]:
    """v1 of the team's DAGs, pushed before Airflow starts (v2 is pushed by a test)."""
    first = git.push(
        TEAM,
        {"dags/team_versioned.py": _versioned("v1"), "dags/team_hello.py": hello_dag("team_hello", TEAM)},
        "v1",
    )
    return {"v1": first}


@pytest.fixture(scope="module")
def live(
    git: GitServer, commits: dict[str, str], presets_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAirflow]:
    manifests = render(
        "values.yaml", "--set-json", f"dags.bundles={json.dumps(bundles_values(git, free_port()))}"
    )
    bundle_list = airflow_cfg(manifests)["dag_processor"]["dag_bundle_config_list"]
    secrets = {(GOOD_SECRET, "token"): git.reader_password, (WRONG_SECRET, "token"): "not-the-password"}

    def component(name: str) -> dict[str, str]:
        deployment = find(manifests, "Deployment", f"{RELEASE}-{name}", NAMESPACE)
        return resolved_env(deployment["spec"]["template"]["spec"]["containers"][0], secrets)

    component_env = {name: component(name) for name in ("api-server", "scheduler", "dag-processor")}
    assert not component_env["scheduler"], (
        "the scheduler (and its task processes) must hold no git credential"
    )
    home = tmp_path_factory.mktemp("airflow-home")
    extra_env = {
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": bundle_list.replace("/opt/airflow/dags", str(DAGS)),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(home / "bundles"),
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # a loaded 2-core test machine answers the execution API slowly; the default 5 s fails tasks
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
    }
    with (
        postgres_server(migrated=True) as sql_alchemy_conn,
        airflow_processes(
            sql_alchemy_conn, DAGS, presets_file, home, extra_env, component_env, migrated=True
        ) as airflow,
    ):
        airflow.wait_healthy()
        yield airflow


class Api:
    """REST API v2 calls the tests need (plain requests: the responses are checked field by field)."""

    def __init__(self, live: LiveAirflow) -> None:
        self.live = live
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {live.token()}"

    def get(self, path: str, **params: Any) -> Any:
        response = self.session.get(f"{self.live.base_url}/api/v2{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def exists(self, dag_id: str) -> bool:
        return self.session.get(f"{self.live.base_url}/api/v2/dags/{dag_id}", timeout=30).status_code == 200

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        response = self.session.post(
            f"{self.live.base_url}/api/v2/dags/{dag_id}/dagRuns",
            json={"logical_date": None, "conf": conf or {}},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")["state"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 240) -> dict[str, Any]:
        wait_until(
            lambda: self.run(dag_id, run_id)["state"] in {"success", "failed"},
            f"run {dag_id}/{run_id}",
            timeout,
            self.live.logs,
        )
        return self.run(dag_id, run_id)

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.get(path)["value"]

    def versions(self, dag_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagVersions", order_by="version_number")["dag_versions"]

    def import_errors(self) -> list[dict[str, Any]]:
        return self.get("/importErrors", limit=100)["import_errors"]


@pytest.fixture(scope="module")
def api(live: LiveAirflow) -> Api:
    client = Api(live)
    # the bundles are parsed independently: the git one can be in before the dags folder is
    wait_until(lambda: client.exists("team_versioned"), "team_versioned from the git bundle", 240, live.logs)
    wait_until(lambda: client.exists(SYNC_DAG), f"{SYNC_DAG} from the dags folder", 240, live.logs)
    return client


def test_dags_from_git_parse_into_their_bundle(api: Api, commits: dict[str, str]) -> None:
    versions = api.versions("team_versioned")
    assert [(v["bundle_name"], v["bundle_version"]) for v in versions] == [(TEAM, commits["v1"])]
    assert api.exists(SYNC_DAG), "the platform's own DAGs (LocalDagBundle) load beside the git bundles"
    assert not [e for e in api.import_errors() if e["bundle_name"] in {TEAM, "dags-folder"}]


def test_pushed_dag_appears_and_runs(api: Api, git: GitServer, live: LiveAirflow) -> None:
    commit = git.push(TEAM, {"dags/team_new.py": hello_dag("team_new", TEAM)}, "a new DAG")
    wait_until(lambda: api.exists("team_new"), "team_new after the push", REFRESH * 6, live.logs)
    run_id = api.trigger("team_new")
    run = api.wait_run("team_new", run_id)
    assert run["state"] == "success", _task_log_hint(live)
    assert run["bundle_version"] == commit
    assert api.xcom("team_new", run_id, "hello") == GREETING


def test_run_in_flight_keeps_its_version_and_the_next_gets_the_new(
    api: Api, git: GitServer, live: LiveAirflow, commits: dict[str, str], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    before = git.heads[(TEAM, "main")]  # the bundle version a run triggered now records
    first = api.trigger("team_versioned", {"gate": str(gate)})
    wait_until(
        lambda: api.task_state("team_versioned", first, "wait_for_gate") == "running",
        "the first run in flight",
        180,
        live.logs,
    )
    v2 = git.push(TEAM, {"dags/team_versioned.py": _versioned("v2")}, "v2")
    wait_until(lambda: len(api.versions("team_versioned")) == 2, "DAG version 2", REFRESH * 9, live.logs)
    gate.touch()
    finished = api.wait_run("team_versioned", first)
    assert finished["state"] == "success", _task_log_hint(live)
    assert api.xcom("team_versioned", first, "report") == "v1", "a run in flight switched to new code"
    assert finished["bundle_version"] == before
    assert [v["version_number"] for v in finished["dag_versions"]] == [1]

    second = api.trigger("team_versioned")
    assert api.wait_run("team_versioned", second)["state"] == "success", _task_log_hint(live)
    assert api.xcom("team_versioned", second, "report") == "v2"
    run = api.run("team_versioned", second)
    assert run["bundle_version"] == v2
    assert [v["version_number"] for v in run["dag_versions"]] == [2]
    versions = api.versions("team_versioned")
    assert [v["version_number"] for v in versions] == [1, 2]
    assert versions[-1]["bundle_version"] == v2


def test_import_error_is_reported_and_other_dags_keep_running(
    api: Api, git: GitServer, live: LiveAirflow
) -> None:
    git.push(TEAM, {"dags/team_broken.py": broken_dag("team_broken")}, "a broken DAG")

    def reported() -> list[dict[str, Any]]:
        return [e for e in api.import_errors() if e["filename"].endswith("team_broken.py")]

    wait_until(lambda: reported(), "the import error of team_broken.py", REFRESH * 6, live.logs)
    error = reported()[0]
    assert error["bundle_name"] == TEAM
    assert "a_module_that_does_not_exist" in error["stack_trace"]
    run_id = api.trigger("team_hello")
    assert api.wait_run("team_hello", run_id)["state"] == "success", _task_log_hint(live)
    assert api.exists(SYNC_DAG)

    git.push(TEAM, {"dags/team_broken.py": None}, "remove the broken DAG")
    wait_until(lambda: not reported(), "the import error to clear after the fix", REFRESH * 6, live.logs)


@pytest.mark.parametrize(
    ("bundle", "cause"),
    [
        ("wrong-credentials", "Authentication failed"),
        ("missing-secret", "Authentication failed"),
        ("missing-branch", "no-such-branch"),
        ("unreachable", "Failed to connect"),
    ],
)
def test_bad_bundle_is_a_clear_error_and_harms_nothing_else(
    api: Api, live: LiveAirflow, git: GitServer, bundle: str, cause: str
) -> None:
    dag_processor_log = next(log for log in live.logs if log.name == "dag-processor.log")

    marker = f"Error initializing bundle {bundle}:"

    def logged() -> bool:
        """The error line, with the cause in its message or traceback."""
        text = dag_processor_log.read_text()
        return any(cause in text[m.start() : m.start() + 8000] for m in re.finditer(re.escape(marker), text))

    wait_until(logged, f"the dag-processor's error for bundle {bundle} ({cause})", 120, live.logs)
    assert git.reader_password not in dag_processor_log.read_text(), "a git token reached the log"

    def reported() -> list[dict[str, Any]]:
        return [e for e in api.import_errors() if e["bundle_name"] == bundle]

    wait_until(reported, f"the import error of bundle {bundle}", 120, live.logs)
    [error] = reported()
    assert error["filename"] == f"<git bundle {bundle}>"
    assert f"DAG bundle {bundle!r} cannot be fetched" in error["stack_trace"]
    assert cause in error["stack_trace"]
    assert git.reader_password not in error["stack_trace"]
    health = api.get("/monitor/health")
    assert health["dag_processor"]["status"] == "healthy"
    assert api.exists(SYNC_DAG) and api.exists("team_hello")
    # the failing bundle retries instead of stopping the processor: its error repeats
    first_count = dag_processor_log.read_text().count(marker)
    wait_until(
        lambda: dag_processor_log.read_text().count(marker) > first_count,
        f"a retry of bundle {bundle}",
        60,
        live.logs,
    )


def _task_log_hint(live: LiveAirflow) -> str:
    time.sleep(1)
    return "".join(f"\n--- {log.name} ---\n{log.read_text()[-3000:]}" for log in live.logs)


def test_bundle_recovers_once_its_branch_exists(api: Api, git: GitServer, live: LiveAirflow) -> None:
    wait_until(
        lambda: [e for e in api.import_errors() if e["bundle_name"] == "late"],
        "the import error of bundle late (no branch yet)",
        120,
        live.logs,
    )
    git.push(TEAM, {"late/late_dag.py": hello_dag("late_dag", TEAM)}, "late branch", branch="late")
    wait_until(lambda: api.exists("late_dag"), "late_dag once its branch exists", 120, live.logs)
    wait_until(
        lambda: not [e for e in api.import_errors() if e["bundle_name"] == "late"],
        "the bundle error to clear",
        60,
        live.logs,
    )
    run_id = api.trigger("late_dag")
    assert api.wait_run("late_dag", run_id)["state"] == "success", _task_log_hint(live)
