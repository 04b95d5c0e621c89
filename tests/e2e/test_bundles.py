"""DAGs delivered through git on the live platform: push, parse, run, versioned runs, import errors.

values-kind.yaml deploys the test git server (dags.testGitServer, NodePort 30418) with an `e2e`
repository and registers it as the bundle `e2e`. The test pushes over the NodePort with the writer
account; Airflow reads with the read-only account. No image is rebuilt and no `helm upgrade` runs:
every change reaches Airflow through git alone. This module runs in another lane than the kind lane's
modules that push to the same repository (tests/conftest.py KIND_RELEASE_SHARED), so a run's bundle version
is checked to include the test's commit (and not a later one of its own), not to equal it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.bundle_dags import GREETING, broken_dag, hello_dag, variable_gate, versioned_dag

from .bundle_repo import BUNDLE, REFRESH_BUDGET, Api, Repository, wait_until

pytestmark = pytest.mark.cluster

GATE_VARIABLE = "e2e_bundle_gate"


def _versioned(version: str) -> str:
    return versioned_dag("e2e_versioned", BUNDLE, version, variable_gate(GATE_VARIABLE))


def test_pushed_dag_appears_and_runs(api: Api, repository: Repository) -> None:
    dag_id = f"e2e_hello_{int(time.time())}"
    commit = repository.push({f"{dag_id}.py": hello_dag(dag_id, BUNDLE)}, f"add {dag_id}")
    wait_until(lambda: api.exists(dag_id), f"{dag_id} parsed from git", REFRESH_BUDGET)
    run_id = api.trigger(dag_id)
    run = api.finished(dag_id, run_id)
    assert run["state"] == "success"
    assert repository.contains(commit, run["bundle_version"])
    assert api.xcom(dag_id, run_id, "hello") == GREETING


def test_run_in_flight_keeps_its_version(api: Api, repository: Repository) -> None:
    api.set_variable(GATE_VARIABLE, "closed")
    v1_code, v2_code = f"v1-{time.time()}", f"v2-{time.time()}"
    v1 = repository.push({"e2e_versioned.py": _versioned(v1_code)}, "v1")
    wait_until(
        lambda: (
            api.exists("e2e_versioned")
            and repository.contains(v1, api.versions("e2e_versioned")[-1]["bundle_version"])
        ),
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
        lambda: repository.contains(v2, api.versions("e2e_versioned")[-1]["bundle_version"]),
        "e2e_versioned v2",
        REFRESH_BUDGET,
    )
    v2_number = api.versions("e2e_versioned")[-1]["version_number"]
    assert v2_number > v1_number
    api.set_variable(GATE_VARIABLE, "open")
    run = api.finished("e2e_versioned", first)
    assert run["state"] == "success"
    assert repository.contains(v1, run["bundle_version"])
    assert not repository.contains(v2, run["bundle_version"]), "the run in flight moved to v2"
    assert api.xcom("e2e_versioned", first, "report") == v1_code, "the run in flight switched to new code"

    second = api.trigger("e2e_versioned")
    run = api.finished("e2e_versioned", second)
    assert run["state"] == "success"
    assert repository.contains(v2, run["bundle_version"])
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
