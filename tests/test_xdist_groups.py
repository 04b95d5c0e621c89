"""`make test` and `make e2e` on pytest-xdist workers (tests/conftest.py): what runs side by side and what
never does."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import (
    E2E_LANES,
    KIND_RELEASE_EXCLUSIVE,
    KIND_RELEASE_FINAL,
    KIND_RELEASE_SHARED,
    SHARED_SERVERS,
    TESTS,
    e2e_rank,
    relative_to_tests,
    xdist_group,
)

SHARERS_LANE = "lane: docker, nodes and release sharers"

# Session- or package-scoped conftest fixtures that may run once per worker: they start no server and
# write only into the worker's own temporary directory. (Directories of SHARED_SERVERS run whole on
# one worker; e2e and cluster tests run only in `make e2e`, whose session fixtures run once per lane and
# only read the cluster, except sync_run: one sync DAG run per lane that uses it.)
PER_WORKER = {
    "chart": {"values_file", "manifests", "scenario", "scenario_manifests", "kind_manifests"},  # renders
    "dags": {"presets", "presets_file"},  # a render, and its presets.json in the worker's tmp dir
    "images": {"image_refs"},  # Docker builds: `docker` marker, so `make e2e` only
}
SERIAL_ONLY = {"e2e", "cluster"}


@pytest.mark.parametrize(
    ("path", "group"),
    [
        ("chart/test_render.py", None),
        ("clickhouse/test_migrate.py", "clickhouse"),
        ("ops/test_dashboard.py", "ops"),
        ("dags/test_bundles_live.py", "dags/test_bundles_live.py"),
        ("dags/test_airflow_live.py", "dags/test_airflow_live.py"),
        ("scripts/test_up.py", "scripts/test_up.py"),
        ("test_xdist_groups.py", "test_xdist_groups.py"),
        ("e2e/test_sync_dag.py", "lane: kind release"),
        ("e2e/test_zz_helm_lifecycle.py", "lane: kind release"),
        ("cluster/test_diagnostics.py", "lane: production release"),
        ("e2e/test_server_dry_run.py", "lane: production release"),
        ("e2e/test_zzz_production_scenario.py", "lane: production release"),
        ("cluster/test_cluster.py", SHARERS_LANE),
        ("chart/test_containers.py", SHARERS_LANE),
        ("e2e/test_bundles.py", SHARERS_LANE),
        ("e2e/test_worker_killed.py", SHARERS_LANE),
        ("e2e/test_quota_wait.py", "lane: kind release"),
    ],
)
def test_chart_tests_spread_and_server_tests_stay_together(path: str, group: str | None) -> None:
    assert xdist_group(TESTS / path) == group


def _wide_fixtures(conftest: Path) -> set[str]:
    """Names of the session- and package-scoped fixtures a conftest defines."""
    names = set()
    for node in ast.walk(ast.parse(conftest.read_text())):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            scope = next((kw.value for kw in getattr(decorator, "keywords", []) if kw.arg == "scope"), None)
            if isinstance(scope, ast.Constant) and scope.value in ("session", "package"):
                names.add(node.name)
    return names


def test_every_directory_wide_fixture_is_placed() -> None:
    """A new session fixture that starts a server must be shared by one worker (SHARED_SERVERS), not
    started on each: every such fixture outside SHARED_SERVERS is listed as harmless per worker."""
    unplaced = {}
    for conftest in sorted(TESTS.glob("*/conftest.py")):
        directory = conftest.parent.name
        if directory in SHARED_SERVERS or directory in SERIAL_ONLY:
            continue
        extra = _wide_fixtures(conftest) - PER_WORKER.get(directory, set())
        if extra:
            unplaced[directory] = sorted(extra)
    assert unplaced == {}
    assert _wide_fixtures(TESTS / "ops" / "conftest.py") >= {"ops_airflow"}  # the check reads scopes


def _pytest(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}  # not this run's
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_a_distributed_run_keeps_each_module_on_one_worker() -> None:
    modules = ("tests/scripts/test_down.py", "tests/scripts/test_up.py", "tests/chart/test_helpers.py")
    result = _pytest("-n", "2", "--dist", "loadgroup", "-v", *modules)
    assert result.returncode == 0, result.stdout[-3000:]
    workers = defaultdict(set)
    for worker, module in re.findall(r"^\[(gw\d+)\] \[ *\d+%\] PASSED (\S+?)::", result.stdout, re.M):
        workers[module].add(worker)
    assert set(workers) == set(modules)
    assert len(workers["tests/scripts/test_down.py"]) == 1
    assert len(workers["tests/scripts/test_up.py"]) == 1


@pytest.mark.parametrize("dist", ["load", "worksteal", "loadfile"])
def test_a_distribution_that_splits_modules_is_refused(dist: str) -> None:
    result = _pytest("-n", "2", "--dist", dist, "tests/scripts/test_down.py")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"--dist {dist} would split the server-starting test modules" in result.stderr


def test_chart_tests_alone_may_use_any_distribution() -> None:
    result = _pytest("-n", "2", "--dist", "worksteal", "tests/chart/test_helpers.py")
    assert result.returncode == 0, result.stdout[-3000:]


MARKED_FOR_E2E = re.compile(r"pytest\.mark\.(cluster|docker)\b")


def _e2e_files() -> list[Path]:
    """Test files `make e2e` selects (a `cluster` or `docker` mark), in the order they run (collection order,
    then tests/conftest.py's stable sort by e2e_rank)."""
    files = sorted(path for path in TESTS.rglob("test_*.py") if MARKED_FOR_E2E.search(path.read_text()))
    return sorted(files, key=lambda path: e2e_rank(relative_to_tests(path)))


def test_every_e2e_file_runs_in_a_lane() -> None:
    """A test file outside the lanes would be a scope of its own, free to run beside any lane."""
    assert len(_e2e_files()) > 20  # the check found them
    outside = [str(path.relative_to(TESTS)) for path in _e2e_files() if xdist_group(path) not in E2E_LANES]
    assert outside == []


def test_make_e2e_runs_one_worker_per_lane() -> None:
    makefile = (TESTS.parent / "Makefile").read_text()
    workers = re.search(r"^E2E_WORKERS \?= (\d+)$", makefile, re.M)
    assert workers and int(workers.group(1)) == len(E2E_LANES)
    assert re.search(r"^E2E_ARGS \?= -n \$\(E2E_WORKERS\) --dist loadgroup ", makefile, re.M)


def _lane_files(lane: str) -> list[str]:
    return [path.name for path in _e2e_files() if xdist_group(path) == lane]


def test_the_kind_release_is_uninstalled_last_in_its_lane() -> None:
    files = _lane_files("lane: kind release")
    assert files[-1] == Path(KIND_RELEASE_FINAL).name
    assert "test_diagnostics.py" not in files  # its `make up` must never run beside the uninstall


def test_the_kind_lane_runs_its_exclusive_modules_last() -> None:
    """The sharers of the other lane overlap the kind lane's first part, not its disruptions."""
    files = _lane_files("lane: kind release")
    exclusive = [Path(path).name for path in KIND_RELEASE_EXCLUSIVE]
    assert sorted(files[-len(exclusive) :]) == sorted(exclusive)
    assert not set(files) & {Path(path).name for path in KIND_RELEASE_SHARED}


def test_the_sharers_run_first_in_their_lane() -> None:
    files = _lane_files(SHARERS_LANE)
    assert files[: len(KIND_RELEASE_SHARED)] == [Path(path).name for path in KIND_RELEASE_SHARED]


def test_the_kind_release_lists_name_real_e2e_files() -> None:
    """A renamed module would silently lose its lock (and its place in the order)."""
    listed = {*KIND_RELEASE_SHARED, *KIND_RELEASE_EXCLUSIVE, KIND_RELEASE_FINAL}
    assert [path for path in listed if not (TESTS / path).is_file()] == []
    assert KIND_RELEASE_FINAL in KIND_RELEASE_EXCLUSIVE


def test_a_collected_e2e_session_runs_in_that_order() -> None:
    """The real collection (`pytest --collect-only`), not only the rank function, puts the kind lane's
    exclusive modules after its others."""
    result = _pytest("--collect-only", "-q", "-m", "cluster or docker", "tests/e2e")
    assert result.returncode == 0, result.stdout[-3000:]
    modules = list(dict.fromkeys(line.split("::")[0] for line in result.stdout.splitlines() if "::" in line))
    ranks = [e2e_rank(module.removeprefix("tests/")) for module in modules]
    assert ranks == sorted(ranks), modules


def test_the_production_lane_runs_diagnostics_then_the_dry_run_then_its_release() -> None:
    """Diagnostics first (tests/cluster collects before tests/e2e), in the kind lane's harmless first
    minutes; the dry run removes its namespaces before the production release needs them."""
    assert _lane_files("lane: production release") == [
        "test_diagnostics.py",
        "test_server_dry_run.py",
        "test_zzz_production_scenario.py",
    ]
