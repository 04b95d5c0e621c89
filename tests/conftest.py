"""Which tests may run side by side when pytest-xdist runs the suite on several workers (`make test`:
`-n auto --dist loadgroup`); a serial run (`pytest tests/chart/test_x.py`) is left as it is.

Chart tests only run helm on the chart and read what it prints: they spread over the workers one by one.
Every other test starts or talks to real servers (ClickHouse, PostgreSQL, Airflow, git, S3, SMTP) from
module-scoped fixtures, and its tests depend on their order (a DAG pushed by one test runs in the next),
so each such module is one group: it runs whole, in file order, on one worker. A directory whose
conftest starts servers for all its modules is one group too (SHARED_SERVERS), so they start once. Two
groups may run at once on two workers: every server listens on a free port and keeps its files in a
temporary directory of its own, and fixtures that change os.environ end with their directory (package
scope), so the environment one group sets never reaches a test of another.

`make e2e` runs on three workers too, one lane each (E2E_LANES): a lane is a group, so it runs whole, in
file order, on one worker. The kind release lane holds every test of the release `make up` installed
(they restart its scheduler, fill its quota, upgrade and finally uninstall it, so none may run beside
another); the production lane installs its own release in its own namespaces beside it; the third lane
has what needs only Docker or bare cluster nodes. The machine-wide things two lanes share (the registry
container and its logins) are locked by scripts.registry.

The groups are made by the scheduler from the test ids (pytest_xdist_make_scheduler), not by
`xdist_group` marks: pytest-xdist 3.8 marks a group by renaming the test's node id, which pytest 9 no
longer lets a plugin do, so its loadgroup scheduling splits every group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).parent
# Directories whose tests share nothing but read-only inputs: no group, any worker, any order.
UNGROUPED = frozenset({"chart"})
# Directories whose conftest starts servers once for all their modules (the fixture it shares).
SHARED_SERVERS = {
    "clickhouse": "servers: a source and a destination ClickHouse",
    "ops": "ops_airflow: Airflow with S3 remote logs (and Prometheus, where built)",
}


# The release `make up` installed, shared between lanes. A module of KIND_RELEASE_SHARED runs in the
# docker lane, beside the kind lane, each of its tests under a shared lock (tests/e2e/conftest.py); a module
# of KIND_RELEASE_EXCLUSIVE disrupts the release (restarts a component, zeroes the quota, deletes the
# api-server, upgrades or uninstalls it) or measures it at rest, so each of its tests holds the lock alone.
# A lane runs its sharers first and its exclusive modules last (e2e_rank): the sharers' long waits (a git
# refresh, the orphan reaper's schedule) overlap the kind lane's first minutes, and the two kinds seldom
# wait for each other. The final module waits until every sharer of the session is done before it
# uninstalls the release.
KIND_RELEASE_SHARED = ("e2e/test_bundles.py", "e2e/test_worker_killed.py")
KIND_RELEASE_EXCLUSIVE = (
    "e2e/test_platform_figures.py",
    "e2e/test_quota_wait.py",
    "e2e/test_reliability.py",
    "e2e/test_remote_logs.py",
    "e2e/test_service_monitor.py",
    "e2e/test_zz_helm_lifecycle.py",
)
KIND_RELEASE_FINAL = "e2e/test_zz_helm_lifecycle.py"

# `make e2e`'s lanes: the first lane whose prefixes (paths under tests/) a file starts with; in a lane,
# files run in collection order (sorted by e2e_rank). The production lane, shorter than the kind one,
# starts with the diagnostics test: its nested `make e2e` re-runs `make up` (an unchanged install),
# harmless in the kind lane's first minutes (DAG deliveries, checks), never beside its uninstall at the
# end. The dry run comes next: it removes the namespaces it made before the production release needs them.
E2E_LANES = {
    "lane: production release": (
        "cluster/test_diagnostics.py",
        "e2e/test_server_dry_run.py",
        "e2e/test_zzz_production_scenario.py",
    ),
    "lane: docker, nodes and release sharers": (
        "cluster/",
        "images/",
        "registry/",
        "chart/test_containers.py",
        *KIND_RELEASE_SHARED,
    ),
    "lane: kind release": ("e2e/",),
}


def kind_release_use(relative: str) -> str | None:
    """How the test file at `relative` (a path under tests/) uses the kind release beside other lanes:
    "shared", "exclusive" or None (only in the kind lane's own order)."""
    if relative in KIND_RELEASE_SHARED:
        return "shared"
    if relative in KIND_RELEASE_EXCLUSIVE:
        return "exclusive"
    return None


def e2e_rank(relative: str) -> int:
    """Where the test file at `relative` runs in its lane: sharers first, exclusive modules last."""
    return {"shared": 0, None: 1, "exclusive": 2}[kind_release_use(relative)]


def relative_to_tests(path: Path) -> str:
    """`path` as a path under tests/ ("e2e/test_x.py"); a file elsewhere (a test's own generated test
    file) keeps its absolute path, which no lane or rank names."""
    resolved = path.resolve()
    return "/".join(resolved.relative_to(TESTS).parts) if resolved.is_relative_to(TESTS) else str(resolved)


def e2e_lane(relative: str) -> str | None:
    """The e2e lane of the test file at `relative` (a path under tests/), or None."""
    return next((lane for lane, prefixes in E2E_LANES.items() if relative.startswith(prefixes)), None)


def xdist_group(path: Path) -> str | None:
    """The group of the tests in file `path`: its e2e lane, None (ungrouped), its directory or the file
    itself."""
    parts = path.resolve().relative_to(TESTS).parts
    lane = e2e_lane("/".join(parts))
    if lane:
        return lane
    if len(parts) > 1 and parts[0] in UNGROUPED:
        return None
    if len(parts) > 1 and parts[0] in SHARED_SERVERS:
        return parts[0]
    return "/".join(parts)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Sharers of the kind release first, its exclusive modules last (a stable sort: every other test
    keeps its collection order; every xdist worker sorts the same way)."""
    items.sort(key=lambda item: e2e_rank(relative_to_tests(item.path)))


def pytest_configure(config: pytest.Config) -> None:
    """Only --dist loadgroup (the scheduler below) keeps a module's ordered tests on one worker: another
    distribution is refused, unless only chart tests run."""
    dist = config.getoption("dist", "no")  # "no" also without pytest-xdist, and in a worker
    if dist not in ("no", "loadgroup") and not _only_chart_tests(config):
        raise pytest.UsageError(
            f"--dist {dist} would split the server-starting test modules over the workers: "
            "use --dist loadgroup (as `make test` does), or run tests/chart alone"
        )


def _only_chart_tests(config: pytest.Config) -> bool:
    here = config.invocation_params.dir
    paths = [(here / arg.split("::")[0]).resolve() for arg in config.args]
    return all(path.is_relative_to(TESTS / "chart") for path in paths)


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's own; no error without xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") != "loadgroup":
        return None
    return _group_scheduler(config, log)


def _group_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scope scheduler (a scope runs whole on one worker; the largest scopes are handed out
    first, so the long server groups start while chart tests fill the gaps) with xdist_group's scopes."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            group = xdist_group(config.rootpath / nodeid.split("::", 1)[0])
            return nodeid if group is None else group

    return GroupScheduling(config, log)
