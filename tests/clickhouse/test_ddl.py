"""DDL rewriting and inspection on tricky text (no server needed)."""

from __future__ import annotations

import argparse
import io

import pytest
from clickhouse_driver.errors import ServerException
from clickhouse_migrate import ddl
from clickhouse_migrate.catalog import DbObject, ObjectKind
from clickhouse_migrate.cli import parse_arguments, setting
from clickhouse_migrate.connection import Endpoint
from clickhouse_migrate.copy import (
    CopyTask,
    partition_condition,
    partition_literal,
    remote_function,
    task_settings,
)
from clickhouse_migrate.failure import step, unexpected_error_lines
from clickhouse_migrate.migrate import Outcome, check_estimates
from clickhouse_migrate.plan import Selection, build_plan
from clickhouse_migrate.report import CopyResult, Reporter, escape
from clickhouse_migrate.sql import mask_secret, partition_filter, quote_string
from clickhouse_migrate.verify import Part, checksum_expression, only_merged


def test_rewrites_qualified_names_only() -> None:
    query = (
        "CREATE VIEW shop.v (shop UInt8) AS SELECT shop, 'shop.t' AS s FROM shop.t "
        "JOIN `shop`.`odd-name` USING (id) -- shop.comment\n"
    )
    rewritten = ddl.rewrite_database(query, "shop", "shop copy")
    assert rewritten == (
        "CREATE VIEW `shop copy`.v (shop UInt8) AS SELECT shop, 'shop.t' AS s FROM `shop copy`.t "
        "JOIN `shop copy`.`odd-name` USING (id) -- shop.comment\n"
    )


def test_rewrites_engine_database_arguments_and_local_dictionary_sources() -> None:
    buffer = "CREATE TABLE a.buf (x UInt8) ENGINE = Buffer(a, dest, 16, 10, 100, 10, 100, 10, 100)"
    assert "Buffer(`b`, dest," in ddl.rewrite_database(buffer, "a", "b")
    local = (
        "CREATE DICTIONARY a.d (id UInt64) PRIMARY KEY id SOURCE(CLICKHOUSE(TABLE 't' DB 'a')) LAYOUT(FLAT())"
    )
    assert "DB 'b'" in ddl.rewrite_database(local, "a", "b")
    remote = local.replace("TABLE 't'", "HOST 'other' TABLE 't'")
    assert "DB 'a'" in ddl.rewrite_database(remote, "a", "b")  # another server's database: unchanged


def test_references_and_materialized_view_targets() -> None:
    mv_to = "CREATE MATERIALIZED VIEW shop.mv TO shop.totals (d Date) AS SELECT d FROM shop.events"
    assert ddl.referenced_names(mv_to, "shop") == {"mv", "totals", "events"}
    assert ddl.materialized_view_target(mv_to) == "totals"
    inner = "CREATE MATERIALIZED VIEW shop.mv (d Date) ENGINE = MergeTree ORDER BY d AS SELECT d FROM events"
    assert ddl.materialized_view_target(inner) is None
    assert "events" in ddl.referenced_names(inner, "shop")
    assert "numbers" not in ddl.referenced_names("CREATE VIEW shop.v AS SELECT * FROM numbers(3)", "shop")


def test_version_parsing() -> None:
    assert ddl.parse_version("18.16.1") == (18, 16, 1)
    assert not ddl.ServerFeatures("19.16.3.6", frozenset()).ddl_dictionaries
    assert ddl.ServerFeatures("19.17.1.1", frozenset()).ddl_dictionaries


def test_remote_function_escapes_and_masks_the_password() -> None:
    endpoint = Endpoint("source", "ch", 9000, "u", "it's", "db")
    function = remote_function(endpoint, endpoint.database, ".inner.mv", secure=False)
    assert function == "remote('ch:9000', 'db', '.inner.mv', 'u', 'it\\'s')"
    assert quote_string("it's") not in mask_secret(function, "it's")


def test_checksum_hashes_unsupported_types_through_text() -> None:
    expression = checksum_expression([("a", "UInt64"), ("u", "UUID"), ("n", "Array(Nullable(UInt8))")])
    assert expression == "sum(cityHash64(`a`, toString(`u`), toString(`n`)))"


def test_replicated_engines_lose_their_zookeeper_arguments() -> None:
    cases = {
        "ReplicatedReplacingMergeTree('/tables/{shard}/a/r', '{replica}', v)": "ReplacingMergeTree(v)",
        "ReplicatedMergeTree('/p', '{replica}')": "MergeTree()",
        "ReplicatedMergeTree('/p', 'r1', d, (id, d), 8192)": "MergeTree(d, (id, d), 8192)",
        "ReplicatedMergeTree": "MergeTree",
    }
    for engine, expected in cases.items():
        query = f"CREATE TABLE a.r (d Date, id UInt64, v UInt32) ENGINE = {engine} ORDER BY id"
        assert (
            ddl.unreplicate(query)
            == f"CREATE TABLE a.r (d Date, id UInt64, v UInt32) ENGINE = {expected} ORDER BY id"
        )


def test_stream_consumers_are_skipped() -> None:
    kafka = DbObject("queue", "Kafka", "CREATE TABLE a.queue (x UInt8) ENGINE = Kafka", ObjectKind.TABLE)
    table = DbObject(
        "t", "MergeTree", "CREATE TABLE a.t (x UInt8) ENGINE = MergeTree ORDER BY x", ObjectKind.TABLE
    )
    view = DbObject(
        "v", "View", "CREATE VIEW a.v AS SELECT x FROM a.queue", ObjectKind.VIEW, depends_on={"queue"}
    )
    plan = build_plan([kafka, table, view], Selection())
    assert [obj.name for obj in plan.ordered] == ["t"]
    assert "consumes a stream" in plan.skipped["queue"]
    assert plan.skipped["v"] == "depends on skipped queue"


def test_distributed_database_argument_is_rewritten() -> None:
    query = "CREATE TABLE a.dist (x UInt8) ENGINE = Distributed(cluster, a, local, rand())"
    assert "Distributed(cluster, `b`, local, rand())" in ddl.rewrite_database(query, "a", "b")
    quoted = "CREATE TABLE a.dist (x UInt8) ENGINE = Distributed('cluster', 'a', 'local')"
    assert "Distributed('cluster', 'b', 'local')" in ddl.rewrite_database(quoted, "a", "b")


def test_table_column_references_named_like_the_database_survive() -> None:
    query = "CREATE VIEW q.v AS SELECT q.x AS a, sum(q.y) FROM q.q WHERE q.x IN q.allowed GROUP BY q.x"
    rewritten = ddl.rewrite_database(query, "q", "c")
    assert rewritten == (
        "CREATE VIEW `c`.v AS SELECT q.x AS a, sum(q.y) FROM `c`.q WHERE q.x IN `c`.allowed GROUP BY q.x"
    )
    assert ddl.rewrite_database("CREATE VIEW d.v AS SELECT d.t.c FROM d.t", "d", "e") == (
        "CREATE VIEW `e`.v AS SELECT `e`.t.c FROM `e`.t"
    )


def test_materialized_view_target_database_and_attach() -> None:
    query = "CREATE MATERIALIZED VIEW a.mv TO other.t (x UInt8) AS SELECT x FROM a.s"
    assert ddl.materialized_view_target_qualified(query) == ("other", "t")
    assert ddl.as_attach(query).startswith("ATTACH MATERIALIZED VIEW a.mv")


def test_partition_literals_are_typed() -> None:
    assert partition_literal("123", "String") == "CAST('123' AS String)"
    assert partition_literal("2024-02-27", "Date") == "CAST('2024-02-27' AS Date)"
    assert partition_literal("it's", "String") == "CAST('it\\'s' AS String)"
    assert partition_literal("('a', 1)", "Tuple(String, UInt8)") == "('a', 1)"
    assert partition_literal("NULL", "Nullable(String)") is None
    assert partition_condition("abc", has_partition_id=True, key="k", literal=None) == (
        "_partition_id IN ('abc') AND (substring(_part, 1, 4) IN ('abc_')"
        " OR substring(_part, 1, 6) IN ('abc'))"
    )
    # ids of different lengths: one prefix test per length (a part name is `<id>_...`)
    assert partition_filter(["7", "202401", "abc"]) == (
        "_partition_id IN ('202401', '7', 'abc') AND (substring(_part, 1, 2) IN ('7_')"
        " OR substring(_part, 1, 4) IN ('abc_') OR substring(_part, 1, 7) IN ('202401_')"
        " OR substring(_part, 1, 6) IN ('202401', '7', 'abc'))"
    )
    assert partition_condition("1", has_partition_id=False, key="k", literal="CAST('1' AS String)") == (
        "(k) = CAST('1' AS String)"
    )


def test_rows_far_below_the_estimate_are_a_mismatch() -> None:
    plan = build_plan([DbObject("t", "MergeTree", "CREATE TABLE x.t", ObjectKind.TABLE)], Selection())
    plan.ordered[0].estimated_rows = 1000
    outcome = Outcome(copies=[CopyResult(name="t", rows=0)])
    check_estimates(plan, outcome)
    assert outcome.mismatches == ["t: 0 rows written, far below the plan's estimate of 1000"]
    fine = Outcome(copies=[CopyResult(name="t", rows=990)])
    check_estimates(plan, fine)
    assert fine.mismatches == []


def test_log_values_cannot_forge_lines() -> None:
    stream = io.StringIO()
    Reporter(stream=stream).event("copy", object="x\n[summary] failed=0", other="a\u2028b", plain="ok")
    (line,) = stream.getvalue().splitlines()
    assert line == '[copy] object="x\\n[summary] failed=0" other="a\\u2028b" plain=ok'
    assert escape("bad\nline\ttab") == "bad\\nline\\ttab"


@pytest.mark.parametrize("value", ["max_network_bandwidth", "x=1; DROP TABLE t", "a b=1", "x='1'", "=1"])
def test_setting_flag_is_validated(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        setting(value)
    assert setting("max_network_bandwidth=10000000") == ("max_network_bandwidth", "10000000")


def test_strategy_defaults_to_swap() -> None:
    args = parse_arguments(
        ["--source-host", "a", "--source-db", "s", "--destination-host", "b", "--destination-db", "d"]
    )
    assert args.strategy == "swap" and not args.schema_only and not args.data_only
    assert (args.execute_query_on, args.parallelism, args.progress_interval) == ("destination", 4, 10.0)


def test_only_merges_keep_a_checked_partition_valid() -> None:
    """A partition checksummed during the copy counts if its parts changed by merges alone since."""
    first, second = Part(1, 1, 10, 0), Part(3, 4, 5, 0)
    assert only_merged([first, second], [first, second])
    assert only_merged([first, second], [Part(1, 4, 15, 0)])  # merged
    assert not only_merged([first, second], [first, second, Part(6, 6, 1, 0)])  # an insert since
    assert not only_merged([first, second], [Part(1, 6, 16, 0)])  # an insert, merged in
    assert not only_merged([first, second], [Part(1, 1, 10, 7), second])  # a mutation (UPDATE, DELETE)
    assert not only_merged([first, second], [Part(1, 4, 12, 0)])  # a merge that combined rows
    assert not only_merged([first, second], [Part(9, 9, 15, 0)])  # dropped and written again
    assert not only_merged([first, second], [])  # dropped
    assert not only_merged([], [first])  # nothing was checked


@pytest.mark.parametrize(
    ("max_threads", "flag", "expected"),
    [("2", None, 0), ("1", None, 0), ("auto(16)", None, 1_000_000), ("8", None, 1_000_000), ("2", 5, 5)],
)
def test_partition_split_follows_the_executing_servers_threads(
    max_threads: str, flag: int | None, expected: int
) -> None:
    """By default, tables are split by partition only where the copy can run in parallel (more than 2
    threads per query); an explicit --partition-split-min-rows always applies."""
    from clickhouse_migrate.copy import CopyRoute
    from clickhouse_migrate.migrate import Options, resolve_split

    class FakeServer:
        endpoint = Endpoint(role="destination", host="b", port=9000, user="u", password="", database="d")

        def query(self, sql: str) -> list[tuple[str]]:
            assert "max_threads" in sql
            return [(max_threads,)]

    source = Endpoint(role="source", host="a", port=9000, user="u", password="", database="s")
    big = DbObject(name="t", kind=ObjectKind.TABLE, engine="MergeTree", create_query="", estimated_rows=10**7)
    options = Options(source=source, destination=FakeServer.endpoint, partition_split_min_rows=flag)
    route = CopyRoute(executor=FakeServer(), source=source, destination=FakeServer.endpoint, push=False)  # type: ignore[arg-type]
    out = io.StringIO()
    resolved = resolve_split(options, route, build_plan([big], Selection()), Reporter(stream=out))
    assert resolved.partition_split_min_rows == expected
    assert ("one query" in out.getvalue()) == (flag is None and expected == 0)


@pytest.mark.parametrize(
    ("engine", "given", "expected"),
    [
        ("MergeTree", {}, {"max_threads": 1}),
        (
            "ReplicatedSummingMergeTree",
            {"optimize_on_insert": 0},
            {"max_threads": 1, "optimize_on_insert": 0},
        ),
        ("MergeTree", {"max_threads": "8"}, {"max_threads": "8"}),  # --setting max_threads=8 wins
        # parallel inserts (servers >= 20.x) need parallel reads: the user's choice, left as it is
        ("MergeTree", {"max_insert_threads": "4"}, {"max_insert_threads": "4"}),
        ("Log", {}, {}),  # nothing sorts on insert: read as the server likes
        ("Memory", {"max_threads": "3"}, {"max_threads": "3"}),
    ],
)
def test_mergetree_copies_read_in_one_stream(
    engine: str, given: dict[str, object], expected: dict[str, object]
) -> None:
    """A MergeTree copy reads its rows in one stream (already in the sorting key's order part by part, so
    the destination does not sort them again); a user's max_threads or max_insert_threads turns that
    off, the other settings are kept."""
    obj = DbObject(name="t", kind=ObjectKind.TABLE, engine=engine, create_query="")
    assert task_settings(CopyTask(obj), given) == expected


def test_an_unexpected_error_report_masks_passwords_and_keeps_lines_apart() -> None:
    """A current server's message as the driver composes it (message, ". Stack trace:", the trace): its code
    name at the end, the statement quoted in it with remote()'s password, and a name with a newline that must
    not start a line of its own."""
    message = (
        "DB::Exception: Syntax error in remote('h:9000', 'db', 't\n[summary] failed=0', 'u', "
        f"{quote_string('pa ss')}). (SYNTAX_ERROR). Stack trace:\n\n0. DB::Exception::Exception()\n1. main"
    )
    with pytest.raises(ServerException) as raised, step("checking the copy route (preflight)"):
        raise ServerException(message, code=62)
    first, header, *detail = unexpected_error_lines(raised.value, ["pa ss", ""])
    assert first == (
        "clickhouse-migrate: error: unexpected error while checking the copy route (preflight): "
        "ClickHouse error 62 (SYNTAX_ERROR): Syntax error in remote('h:9000', 'db', 't\\n[summary] "
        "failed=0', 'u', '******')"
    )
    assert header.startswith("clickhouse-migrate: detail")
    assert all(line.startswith("    ") for line in detail)
    assert "    1. main" in detail and "pa ss" not in "".join(detail)
