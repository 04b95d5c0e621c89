"""--schema-only, --data-only, --setting, and a failed swap-mode copy leaving the previous copy intact."""

from __future__ import annotations

import time

import pytest

from .conftest import Servers, base_args, databases, run_tool
from .servers import MIGRATOR_PASSWORD


def load(servers: Servers, database: str, rows: int) -> None:
    source = servers.source.client()
    source.execute(f"DROP DATABASE IF EXISTS {database}")
    source.execute(f"CREATE DATABASE {database}")
    source.execute(
        f"CREATE TABLE {database}.t (p UInt8, x UInt64, s String) ENGINE = MergeTree"
        " PARTITION BY p ORDER BY x"
    )
    source.execute(
        f"INSERT INTO {database}.t SELECT number % 4, number, toString(number) FROM numbers({rows})"
    )
    source.execute(f"CREATE VIEW {database}.v AS SELECT count() AS n FROM {database}.t")
    servers.destination.client().execute(f"DROP DATABASE IF EXISTS {database}")


def args(servers: Servers, database: str, *extra: str) -> list[str]:
    return [*base_args(servers, database, **{"--source-db": database}), *extra]


def test_schema_only_creates_missing_objects_and_keeps_rows(servers: Servers) -> None:
    load(servers, "modes_schema", 100)
    run = run_tool(args(servers, "modes_schema", "--schema-only"))
    assert run.returncode == 0, run.stdout + run.stderr
    destination = servers.destination.client()
    assert destination.execute("SELECT count() FROM modes_schema.t") == [(0,)]
    assert destination.execute("SELECT n FROM modes_schema.v") == [(0,)]
    destination.execute("INSERT INTO modes_schema.t SELECT 1, 1, 'kept'")
    again = run_tool(args(servers, "modes_schema", "--schema-only"))
    assert again.returncode == 0 and again.lines("drop") == [], again.stdout
    assert destination.execute("SELECT s FROM modes_schema.t") == [("kept",)]


def test_data_only_appends_into_existing_tables(servers: Servers) -> None:
    load(servers, "modes_data", 100)
    assert run_tool(args(servers, "modes_data", "--schema-only")).returncode == 0
    for expected in (100, 200):
        run = run_tool(args(servers, "modes_data", "--data-only"))
        assert run.returncode == 0, run.stdout + run.stderr
        assert servers.destination.client().execute("SELECT count() FROM modes_data.t") == [(expected,)]


def test_unknown_setting_is_refused_before_writing(servers: Servers) -> None:
    load(servers, "modes_setting", 10)
    before = databases(servers.destination.client())
    run = run_tool(args(servers, "modes_setting", "--setting", "no_such_setting=1"))
    assert run.returncode == 7, run.stdout + run.stderr
    assert "no_such_setting" in run.stderr
    assert databases(servers.destination.client()) == before


@pytest.mark.parametrize("bad", ["max_threads", "max_threads=1;DROP", "max threads=1"])
def test_malformed_setting_is_a_usage_error(servers: Servers, bad: str) -> None:
    run = run_tool(args(servers, "never", "--setting", bad))
    assert run.returncode == 2 and "expected NAME=VALUE" in run.stderr


def test_failed_copy_in_swap_mode_keeps_the_previous_copy(servers: Servers) -> None:
    load(servers, "modes_fail", 400_000)
    assert run_tool(args(servers, "modes_fail")).returncode == 0
    destination = servers.destination.client()
    previous = destination.execute("SELECT count(), sum(cityHash64(p, x, s)) FROM modes_fail.t")
    servers.source.client().execute(
        "INSERT INTO modes_fail.t SELECT number % 4, number, 'new' FROM numbers(10)"
    )
    # A real server-side failure mid-copy: the throttled copy runs into the execution time limit.
    slow = ("--setting", "max_network_bandwidth=300000", "--setting", "max_execution_time=1")
    run = run_tool(args(servers, "modes_fail", *slow))
    assert run.returncode == 9, run.stdout + run.stderr
    assert "status=not_started" in " ".join(run.lines("swap"))
    assert destination.execute("SELECT count(), sum(cityHash64(p, x, s)) FROM modes_fail.t") == previous
    assert destination.execute("SELECT n FROM modes_fail.v") == [(previous[0][0],)]
    assert run_tool(args(servers, "modes_fail")).returncode == 0
    assert destination.execute("SELECT count() FROM modes_fail.t") == [(400_010,)]


def test_long_copies_report_progress(servers: Servers) -> None:
    load(servers, "modes_progress", 400_000)
    slow = ("--setting", "max_network_bandwidth=1000000", "--progress-interval", "0.5", "--parallelism", "1")
    run = run_tool(args(servers, "modes_progress", *slow))
    assert run.returncode == 0, run.stdout + run.stderr
    progress = run.lines("progress")
    assert progress, run.stdout
    for field in ("object=t ", "rows=", "total_rows=", "bytes=", "rows_per_s=", "eta_s="):
        assert all(field in line for line in progress), field
    assert "progress=1/1" in run.lines("copy")[0]


def test_failure_during_the_swap_keeps_the_previous_copies(servers: Servers) -> None:
    """A view that cannot be recreated fails the run (9): the previous copy of the swapped table is kept."""
    source = servers.source.client()
    load(servers, "modes_swapfail", 100)
    source.execute("CREATE DATABASE IF NOT EXISTS swapfail_elsewhere")
    source.execute("CREATE TABLE IF NOT EXISTS swapfail_elsewhere.t (x UInt64) ENGINE = Memory")
    source.execute("CREATE VIEW modes_swapfail.v_bad AS SELECT x FROM swapfail_elsewhere.t")
    first = run_tool(args(servers, "modes_swapfail"))
    assert first.returncode == 9, first.stdout + first.stderr
    source.execute("INSERT INTO modes_swapfail.t SELECT 9, 100000 + number, 'new' FROM numbers(5)")
    again = run_tool(args(servers, "modes_swapfail"))
    assert again.returncode == 9, again.stdout + again.stderr
    destination = servers.destination.client()
    assert destination.execute("SELECT count() FROM modes_swapfail.t") == [(105,)]
    assert destination.execute("SELECT count() FROM modes_swapfail__migrate_previous.t") == [(100,)]


@pytest.mark.parametrize("copy", ["by_partition", "one_query"])
@pytest.mark.parametrize("moment", ["after_copy", "after_check"])
@pytest.mark.parametrize("corruption", ["extra_row", "changed_row"])
def test_a_staged_partition_that_differs_is_not_swapped_in(
    servers: Servers,
    corruption: str,
    moment: str,
    copy: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The staging copy of a partition is altered (one row more, or the same count with one row's
    content changed) right after its copy, or right after the checksum the tool reads of it while the
    copy still runs: verification refuses it, nothing is swapped in. by_partition: a re-run copies the
    one partition that changed (2) in its own query, checked as soon as that query finished;
    one_query: a first run copies the whole table in one query, checked as soon as it finished."""
    from clickhouse_migrate import cli, swap
    from clickhouse_migrate import copy as copy_module

    database = f"modes_corrupt_{corruption}_{moment}_{copy}"
    staging = f"{database}__migrate_staging"
    destination = servers.destination.client()
    partition = "2" if copy == "by_partition" else "1"  # x = partition is a row of it (p = x % 4)
    check = [partition] if copy == "by_partition" else None  # what the tool checks after the copy
    load(servers, database, 4000)
    if copy == "by_partition":
        assert run_tool(args(servers, database)).returncode == 0
        servers.source.client().execute(
            f"INSERT INTO {database}.t SELECT 2, 100000 + number, 'n' FROM numbers(8)"
        )
        extra: tuple[str, ...] = ("--partition-split-min-rows", "1")
    else:
        extra = ("--partition-split-min-rows", "0")

    def destination_table() -> list[tuple[int, int]] | None:
        if not destination.execute(f"EXISTS TABLE {database}.t")[0][0]:
            return None  # a first run: nothing to keep
        return destination.execute(f"SELECT count(), sum(cityHash64(p, x, s)) FROM {database}.t")

    previous = destination_table()

    def corrupt() -> None:
        if corruption == "extra_row":
            destination.execute(f"INSERT INTO {staging}.t SELECT {partition}, 999999, 'extra'")
        else:
            destination.execute(f"ALTER TABLE {staging}.t UPDATE s = 'tampered' WHERE x = {partition}")
            while destination.execute(
                "SELECT count() FROM system.mutations WHERE database = %(db)s AND NOT is_done",
                {"db": staging},
            )[0][0]:
                time.sleep(0.05)

    real_copy_task = copy_module.copy_task
    real_staged_side = swap.Verifier._staged_side
    checked: list[list[str] | None] = []

    def corrupting_copy_task(route, task, settings, reporter):  # type: ignore[no-untyped-def]
        result = real_copy_task(route, task, settings, reporter)
        if moment == "after_copy" and task.target_database == staging and task.partition in (partition, None):
            corrupt()
        return result

    def corrupting_staged_side(verifier, table, only):  # type: ignore[no-untyped-def]
        fingerprints = real_staged_side(verifier, table, only)
        checked.append(only)
        if moment == "after_check" and only == check:
            assert fingerprints.fingerprints[partition].rows > 0  # the partition was checked
            corrupt()
        return fingerprints

    monkeypatch.setattr(swap.Verifier, "_staged_side", corrupting_staged_side)
    monkeypatch.setattr(copy_module, "copy_task", corrupting_copy_task)
    monkeypatch.setenv("CLICKHOUSE_SOURCE_PASSWORD", MIGRATOR_PASSWORD)
    code = cli.main([*args(servers, database), *extra])
    captured = capsys.readouterr()
    output = captured.out
    assert code == 10, output + captured.err
    kind = "rows" if corruption == "extra_row" else "checksum"
    mismatches = [line for line in output.splitlines() if line.startswith("[mismatch]")]
    assert any(f"t: {kind} source=" in line for line in mismatches), output
    assert "status=not_started" in output
    assert destination_table() == previous
    assert check in checked, checked  # the staged check that the corruption came after


def test_partitions_checked_during_the_copy_are_not_read_again(
    servers: Servers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each staged partition is checksummed once, as soon as its copy finished; the verification before
    the swap then only reads part metadata (the source is read once as well)."""
    from clickhouse_migrate import cli, swap

    database = "modes_checked_once"
    load(servers, database, 4000)
    reads: list[tuple[str, tuple[str, ...] | None]] = []
    real = swap.partition_fingerprints

    def recording(server, database, table, columns, **kwargs):  # type: ignore[no-untyped-def]
        only = kwargs.get("only")
        reads.append((database, None if only is None else tuple(sorted(only))))
        return real(server, database, table, columns, **kwargs)

    monkeypatch.setattr(swap, "partition_fingerprints", recording)
    monkeypatch.setenv("CLICKHOUSE_SOURCE_PASSWORD", MIGRATOR_PASSWORD)
    code = cli.main([*args(servers, database), "--partition-split-min-rows", "1"])
    output = capsys.readouterr().out
    assert code == 0, output
    staged = sorted(only or () for db, only in reads if db == f"{database}__migrate_staging")
    assert staged == [("0",), ("1",), ("2",), ("3",)], reads
    assert [only for db, only in reads if db == database] == [None], reads


def writer_blocks(servers: Servers) -> tuple[int, int]:
    """(insert blocks written, of which already sorted) on the destination since it started."""
    events = dict(
        servers.destination.client().execute(
            "SELECT event, value FROM system.events WHERE event IN "
            "('MergeTreeDataWriterBlocks', 'MergeTreeDataWriterBlocksAlreadySorted')"
        )
    )
    return events.get("MergeTreeDataWriterBlocks", 0), events.get("MergeTreeDataWriterBlocksAlreadySorted", 0)


@pytest.mark.parametrize("execute_on", ["destination", "source"])
def test_copy_arrives_in_sorting_key_order(servers: Servers, execute_on: str) -> None:
    """A MergeTree table is read in one stream, part after part in its sorting key's order, so the
    destination writes every insert block without sorting it again. Read as the server likes (one stream
    per core, 2 on the test machine), the parts' ranges arrive interleaved and blocks need a sort."""
    database = f"modes_in_order_{execute_on}"
    source = servers.source.client()
    source.execute(f"DROP DATABASE IF EXISTS {database}")
    source.execute(f"CREATE DATABASE {database}")
    source.execute(
        f"CREATE TABLE {database}.t (p UInt8, k UInt32, x UInt64, s String) ENGINE = MergeTree"
        " PARTITION BY p ORDER BY (k, x)"
    )
    source.execute(
        f"INSERT INTO {database}.t SELECT number % 2, number % 1000, number, toString(number)"
        " FROM numbers(2000000)"
    )
    source.execute(f"OPTIMIZE TABLE {database}.t FINAL")  # one part per partition, sorted by (k, x)
    blocks_before, sorted_before = writer_blocks(servers)
    run = run_tool(args(servers, database, "--execute-query-on", execute_on))
    assert run.returncode == 0, run.stdout + run.stderr
    blocks, already_sorted = writer_blocks(servers)
    assert blocks - blocks_before >= 2, "the copy wrote no MergeTree blocks"
    assert already_sorted - sorted_before == blocks - blocks_before
