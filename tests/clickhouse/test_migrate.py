"""End to end against two real 18.16 servers: the destination equals the source object by object."""

from __future__ import annotations

import pytest
from clickhouse_driver import Client

from . import fixture_db
from .conftest import Servers, ToolRun, base_args, run_tool

# (--execute-query-on, --strategy): both routes with the default strategy, and the seed's behaviour.
MODES = ("destination-swap", "source-swap", "destination-recreate")


def objects(client: Client, database: str) -> dict[str, tuple[str, str]]:
    """name -> (engine, DDL with the database name replaced by a placeholder); inner tables excluded."""
    rows = client.execute(
        "SELECT name, engine, create_table_query FROM system.tables WHERE database = %(db)s", {"db": database}
    )
    return {
        name: (engine, query.replace(f"{database}.", "DB."))
        for name, engine, query in rows
        if not name.startswith(".inner")
    }


def content(client: Client, database: str, name: str) -> list[tuple]:
    """Every row, order-independent (the fixture tables are small enough to compare exactly)."""
    return sorted(client.execute(f"SELECT * FROM `{database}`.`{name}`"), key=repr)


def migrate(servers: Servers, mode: str, *extra: str) -> ToolRun:
    route, strategy = mode.split("-")
    args = base_args(servers, database_for(mode), **{"--execute-query-on": route, "--strategy": strategy})
    skip = ["--skip-patterns", *fixture_db.SKIP_PATTERNS]
    # Split every partitioned table (the default threshold is 1M rows) to cover per-partition copies.
    split = ["--partition-split-min-rows", "1"]
    return run_tool([*args, *skip, *split, "--verify", "--parallelism", "3", *extra])


def source_state(servers: Servers) -> dict[str, tuple[tuple[str, str], list[tuple]]]:
    """DDL and content of every object of the source database (inner tables included)."""
    client = servers.source.client()
    rows = client.execute(
        "SELECT name, engine, create_table_query FROM system.tables WHERE database = 'shop'"
    )
    state = {}
    for name, engine, query in rows:
        data = content(client, "shop", name) if engine not in ("View",) else []
        state[name] = ((engine, query), data)
    return state


@pytest.fixture(scope="module")
def source_before(servers: Servers) -> dict[str, tuple[tuple[str, str], list[tuple]]]:
    return source_state(servers)


@pytest.fixture(scope="module", params=MODES)
def migrated(request: pytest.FixtureRequest, servers: Servers, source_before: dict) -> tuple[str, ToolRun]:
    mode = request.param
    return mode, migrate(servers, mode)


def database_for(mode: str) -> str:
    return "shop_" + mode.replace("-", "_")


def copied_names(mode: str) -> list[str]:
    """Swap copies the inner table of a materialized view itself (to stage and swap it in)."""
    if mode.endswith("swap"):
        return sorted(".inner.mv_inner" if name == "mv_inner" else name for name in fixture_db.DATA_OBJECTS)
    return sorted(fixture_db.DATA_OBJECTS)


def assert_destination_equals_source(servers: Servers, destination_db: str) -> None:
    source, destination = servers.source_client(), servers.destination_client()
    source_objects = objects(source, fixture_db.DATABASE)
    destination_objects = objects(destination, destination_db)
    assert sorted(destination_objects) == sorted(fixture_db.MIGRATED)
    for name in fixture_db.MIGRATED:
        assert destination_objects[name] == source_objects[name], f"DDL of {name} differs"
        assert content(destination, destination_db, name) == content(source, fixture_db.DATABASE, name), name


def test_destination_equals_source_object_by_object(servers: Servers, migrated: tuple[str, ToolRun]) -> None:
    mode, run = migrated
    assert run.returncode == 0, run.stdout + run.stderr
    assert_destination_equals_source(servers, database_for(mode))


def test_source_is_untouched(servers: Servers, migrated: tuple[str, ToolRun], source_before: dict) -> None:
    assert migrated[1].returncode == 0
    assert source_state(servers) == source_before


def test_inner_table_materialized_view_has_its_rows(servers: Servers, migrated: tuple[str, ToolRun]) -> None:
    mode, run = migrated
    assert run.returncode == 0, run.stderr
    destination = servers.destination_client()
    inner = destination.execute(f"SELECT count() FROM `{database_for(mode)}`.`.inner.mv_inner`")[0][0]
    source_rows = servers.source_client().execute("SELECT count() FROM shop.mv_inner")[0][0]
    assert inner == source_rows > 0


def test_skips_are_reported(migrated: tuple[str, ToolRun]) -> None:
    _, run = migrated
    skipped = {line.split("object=")[1].split()[0]: line for line in run.lines("skip")}
    assert sorted(skipped) == sorted(fixture_db.SKIPPED_BY_PATTERN + fixture_db.SKIPPED_BY_DEPENDENCY)
    assert "depends on skipped events_copy" in skipped["v_on_skipped"]
    assert "skip pattern 'copy'" in skipped["events_copy"]


def test_progress_lines_and_summary(migrated: tuple[str, ToolRun]) -> None:
    mode, run = migrated
    print(run.stdout)
    copies = {line.split("object=")[1].split()[0]: line for line in run.lines("copy")}
    assert sorted(copies) == copied_names(mode)
    for field in ("rows=", "bytes=", "seconds=", "rows_per_s=", "status=ok"):
        assert all(field in line for line in copies.values()), field
    assert "rows=25000 " in copies["events"]
    verified = run.lines("verify")
    assert len(verified) == len(fixture_db.DATA_OBJECTS)
    assert all("status=ok" in line for line in verified)
    (summary,) = run.lines("summary")
    assert f"created={len(fixture_db.MIGRATED)} " in summary
    assert f"copied={len(fixture_db.DATA_OBJECTS)} " in summary and "failed=0 " in summary


def test_partitioned_tables_are_copied_partition_by_partition(migrated: tuple[str, ToolRun]) -> None:
    _, run = migrated
    partitions: dict[str, list[str]] = {}
    for line in run.lines("partition"):
        assert "status=ok" in line, line
        partitions.setdefault(line.split("object=")[1].split()[0], []).append(line)
    assert {name: len(lines) for name, lines in partitions.items()} == {
        "events": 5,
        "by_day": 4,
        "by_region": 3,
    }


def test_dependency_order(migrated: tuple[str, ToolRun]) -> None:
    _, run = migrated
    created = [line.split("object=")[1].split()[0] for line in run.lines("create")]
    position = {name: index for index, name in enumerate(created)}
    if "mv_inner" not in position:
        print(run.stdout)
    assert position["events"] < position["v_daily"] < position["v_on_view"]
    assert position["daily_totals"] < position["mv_daily_to"]
    assert position["events"] < position["mv_inner"]


def test_rerun_is_idempotent(servers: Servers, migrated: tuple[str, ToolRun]) -> None:
    mode, _ = migrated
    again = migrate(servers, mode)
    assert again.returncode == 0, again.stdout + again.stderr
    if mode.endswith("swap"):
        # Nothing changed: every table is compared (counts + checksums per partition) and left as it is.
        unchanged = sorted(line.split("object=")[1].split()[0] for line in again.lines("unchanged"))
        assert unchanged == copied_names(mode)
        assert again.lines("copy") == []
    else:
        assert len(again.lines("drop")) == len(fixture_db.MIGRATED)
    assert_destination_equals_source(servers, database_for(mode))


def test_tables_filter_and_dry_run(servers: Servers, destination_snapshot: None) -> None:
    args = base_args(servers, "shop_filtered")
    run = run_tool([*args, "--tables", "events", "v_daily", "v_on_skipped", "--dry-run"])
    assert run.returncode == 0, run.stderr
    planned = [line.split("object=")[1].split()[0] for line in run.lines("plan")]
    assert planned == ["events", "v_daily"]
    assert "estimated_rows=25000" in run.lines("plan")[0]
    skipped = " ".join(run.lines("skip"))
    assert 'object=customers reason="not listed in --tables"' in skipped
    assert 'object=v_on_skipped reason="depends on skipped events_copy"' in skipped


def test_tables_filter_copies_only_listed(servers: Servers) -> None:
    run = run_tool([*base_args(servers, "shop_filtered"), "--tables", "events", "v_daily"])
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(objects(servers.destination_client(), "shop_filtered")) == ["events", "v_daily"]


def test_dictionaries_on_18_16_are_reported_not_failed(servers: Servers) -> None:
    run = run_tool([*base_args(servers, "shop_dicts"), "--tables", "tiny", "--migrate-dicts", "y"])
    assert run.returncode == 0, run.stdout + run.stderr
    (notice,) = run.lines("notice")
    assert "has no DDL dictionaries" in notice and "18.16" in notice


def tls_destination(servers: Servers) -> dict[str, str]:
    """base_args overrides that make the tool reach the destination over TLS."""
    assert servers.destination.secure_port
    return {"--destination-port": str(servers.destination.secure_port), "--destination-secure-flag": "y"}


def destination_databases(servers: Servers) -> set[str]:
    return {row[0] for row in servers.destination_client().execute("SHOW DATABASES")}


def test_tls_destination(servers: Servers) -> None:
    """--destination-secure-flag y: the tool talks TLS to the destination, which pulls from the source."""
    tls = tls_destination(servers)
    run = run_tool([*base_args(servers, "shop_tls", **tls), "--tables", "events", "tiny", "--verify"])
    assert run.returncode == 0, run.stdout + run.stderr
    destination = servers.destination_client()
    assert content(destination, "shop_tls", "tiny") == content(servers.source_client(), "shop", "tiny")


def test_tls_destination_with_certificate_verification(servers: Servers) -> None:
    """The test certificate is self-signed: verification must refuse it, before any write."""
    tls = {**tls_destination(servers), "--destination-verify-flag": "y"}
    run = run_tool(base_args(servers, "shop_tls_verified", **tls))
    assert run.returncode == 3, run.stdout + run.stderr
    assert "certificate verify failed" in run.stderr
    assert "shop_tls_verified" not in destination_databases(servers)


def test_push_to_tls_destination_needs_remote_secure(servers: Servers) -> None:
    """18.16 has no remoteSecure(): pushing to a TLS destination is refused in preflight."""
    tls = {**tls_destination(servers), "--execute-query-on": "source"}
    run = run_tool(base_args(servers, "shop_tls_push", **tls))
    assert run.returncode == 7, run.stdout + run.stderr
    assert "has no remoteSecure() table function" in run.stderr
    assert "shop_tls_push" not in destination_databases(servers)
