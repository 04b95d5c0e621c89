"""Issue #10, class by class, against two real 18.16 servers: each case fails on the seed's code."""

from __future__ import annotations

import json

import pytest
from clickhouse_driver import Client
from clickhouse_migrate.connection import Endpoint, Identity, Server, same_server
from clickhouse_migrate.sql import qualified

from .conftest import Servers, base_args, databases, run_tool
from .servers import ALIAS_ADDRESS, LIMITED_PASSWORD, LIMITED_USER, MIGRATOR_PASSWORD


def load(client: Client, database: str, *statements: str) -> None:
    client.execute(f"DROP DATABASE IF EXISTS `{database}`")
    client.execute(f"CREATE DATABASE `{database}`")
    for statement in statements:
        client.execute(statement, settings={"allow_experimental_low_cardinality_type": 1})


def table_state(client: Client, database: str) -> dict[str, list[tuple]]:
    """Every table's rows (sorted), views excluded: what a user would lose."""
    names = client.execute(
        "SELECT name FROM system.tables WHERE database = %(db)s"
        " AND engine NOT IN ('View', 'MaterializedView', 'Set')",
        {"db": database},
    )
    return {
        name: sorted(client.execute(f"SELECT * FROM {qualified(database, name)}"), key=repr)
        for (name,) in names
    }


def args_for(servers: Servers, source_db: str, destination_db: str, *extra: str, **flags: str) -> list[str]:
    return [*base_args(servers, destination_db, **{"--source-db": source_db, **flags}), *extra]


# --- server identity -------------------------------------------------------------------------------


@pytest.fixture
def identity_db(servers: Servers) -> str:
    load(
        servers.source.client(),
        "ident",
        "CREATE TABLE ident.t (x UInt32) ENGINE = MergeTree ORDER BY x",
        "INSERT INTO ident.t SELECT number FROM numbers(1000)",
    )
    return "ident"


@pytest.mark.parametrize(
    "alias",
    ["::ffff:127.0.0.1", ALIAS_ADDRESS, "localhost"],
    ids=["ipv4-mapped-ipv6", "second-loopback-address", "dns-name"],
)
@pytest.mark.parametrize("strategy", ["swap", "recreate"])
def test_any_alias_of_the_source_is_refused_before_writing(
    servers: Servers, identity_db: str, alias: str, strategy: str
) -> None:
    source = servers.source.client()
    before = (databases(source), table_state(source, identity_db))
    same = {"--destination-host": alias, "--destination-port": str(servers.source.port)}
    run = run_tool(args_for(servers, identity_db, identity_db, "--strategy", strategy, **same))
    assert run.returncode == 6, run.stdout + run.stderr
    assert "the servers report the same identity" in run.stderr
    assert (databases(source), table_state(source, identity_db)) == before


def test_tls_port_of_the_same_server_is_refused(servers: Servers) -> None:
    """The destination server's plain and TLS ports are one server: refuse to copy it onto itself."""
    destination = servers.destination.client()
    load(
        destination,
        "tls_self",
        "CREATE TABLE tls_self.t (x UInt32) ENGINE = Log",
        "INSERT INTO tls_self.t SELECT number FROM numbers(10)",
    )
    before = (databases(destination), table_state(destination, "tls_self"))
    flags = {
        "--source-host": servers.destination.host,
        "--source-port": str(servers.destination.port),
        "--destination-port": str(servers.destination.secure_port),
        "--destination-secure-flag": "y",
    }
    run = run_tool(args_for(servers, "tls_self", "tls_self", **flags))
    assert run.returncode == 6, run.stdout + run.stderr
    assert (databases(destination), table_state(destination, "tls_self")) == before


def test_same_server_other_database_is_allowed(servers: Servers, identity_db: str) -> None:
    """Identity only refuses copying a database onto itself: a copy next to it on one server works."""
    same = {"--destination-host": ALIAS_ADDRESS, "--destination-port": str(servers.source.port)}
    run = run_tool(args_for(servers, identity_db, "ident_copy", **same))
    assert run.returncode == 0, run.stdout + run.stderr
    source = servers.source.client()
    assert table_state(source, "ident_copy") == table_state(source, identity_db)
    source.execute("DROP DATABASE ident_copy")


@pytest.mark.parametrize(
    "name", ["system", "SYSTEM", "default", "Default", "INFORMATION_SCHEMA", "information_schema"]
)
def test_reserved_destination_database_is_refused_at_parsing(servers: Servers, name: str) -> None:
    # An unroutable source: had the tool connected, it would exit 3.
    run = run_tool(base_args(servers, name, **{"--source-host": "192.0.2.1"}))
    assert run.returncode == 2, run.stdout + run.stderr
    assert "is a server database" in run.stderr


@pytest.mark.parametrize("name", ["system", "SYSTEM", "INFORMATION_SCHEMA", "information_schema"])
def test_server_database_as_source_is_refused_at_parsing(servers: Servers, name: str) -> None:
    """`--source-db system` used to run: it planned nothing and reported success."""
    run = run_tool(args_for(servers, name, "from_system", **{"--source-host": "192.0.2.1"}))
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"argument --source-db: {name!r} is a server database" in run.stderr and run.stdout == ""


def test_default_is_an_ordinary_source_database(servers: Servers) -> None:
    """Only the destination refuses `default` (other users' tables live there); reading it is fine."""
    run = run_tool(args_for(servers, "default", "from_default", "--dry-run"))
    assert run.returncode == 0, run.stdout + run.stderr


# --- least privilege -------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["swap", "recreate"])
def test_user_restricted_to_its_databases(servers: Servers, strategy: str) -> None:
    load(
        servers.source.client(),
        "limited_src",
        "CREATE TABLE limited_src.t (x UInt32, s String) ENGINE = MergeTree ORDER BY x",
        "INSERT INTO limited_src.t SELECT number, toString(number) FROM numbers(500)",
        "CREATE VIEW limited_src.v AS SELECT count() AS n FROM limited_src.t",
    )
    servers.destination.client().execute("DROP DATABASE IF EXISTS limited_dst")
    flags = {"--source-user": LIMITED_USER, "--destination-user": LIMITED_USER}
    flags["--destination-password"] = LIMITED_PASSWORD
    args = args_for(servers, "limited_src", "limited_dst", "--strategy", strategy, **flags)
    run = run_tool(args, env={"CLICKHOUSE_SOURCE_PASSWORD": LIMITED_PASSWORD})
    assert run.returncode == 0, run.stdout + run.stderr
    destination = servers.destination.client()
    assert table_state(destination, "limited_dst") == table_state(servers.source.client(), "limited_src")
    assert destination.execute("SELECT n FROM limited_dst.v") == [(500,)]


# --- column kinds ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def columns_db(servers: Servers) -> str:
    load(
        servers.source.client(),
        "kinds",
        """CREATE TABLE kinds.t (
            id UInt64,
            noise UInt64 MATERIALIZED rand64(),
            stamp DateTime MATERIALIZED now(),
            doubled UInt64 ALIAS id * 2,
            label String DEFAULT concat('id-', toString(id)),
            maybe Nullable(String),
            tags Array(String),
            pair Tuple(UInt8, String),
            category LowCardinality(String),
            nest Nested(k String, v UInt32)
        ) ENGINE = MergeTree ORDER BY id""",
        """INSERT INTO kinds.t (id, maybe, tags, pair, category, `nest.k`, `nest.v`)
           SELECT number, if(number % 2 = 0, NULL, 'x'), [toString(number)], (1, 'a'), 'c',
           ['a', 'b'], [number, 1] FROM numbers(2000)""",
    )
    return "kinds"


def stored_rows(client: Client, database: str) -> list[tuple]:
    return sorted(
        client.execute(
            f"SELECT id, noise, stamp, doubled, label, maybe, tags, pair, category, nest.k, nest.v "
            f"FROM `{database}`.t"
        )
    )


@pytest.mark.parametrize("strategy", ["swap", "recreate"])
def test_materialized_columns_are_copied_as_stored(servers: Servers, columns_db: str, strategy: str) -> None:
    # rand64() and now(): a recomputed column can never equal the source.
    run = run_tool(args_for(servers, columns_db, f"kinds_{strategy}", "--strategy", strategy, "--verify"))
    assert run.returncode == 0, run.stdout + run.stderr
    expected = stored_rows(servers.source.client(), columns_db)
    assert stored_rows(servers.destination.client(), f"kinds_{strategy}") == expected


def test_push_with_materialized_columns_is_refused_on_18_16(servers: Servers, columns_db: str) -> None:
    before = databases(servers.destination.client())
    run = run_tool(args_for(servers, columns_db, "kinds_push", **{"--execute-query-on": "source"}))
    assert run.returncode == 7, run.stdout + run.stderr
    assert "cannot push MATERIALIZED columns" in run.stderr
    assert databases(servers.destination.client()) == before


# --- partitions ------------------------------------------------------------------------------------


def test_string_partition_keys_that_look_like_numbers(servers: Servers) -> None:
    load(
        servers.source.client(),
        "numeric_strings",
        "CREATE TABLE numeric_strings.t (k String, n UInt32) ENGINE = MergeTree PARTITION BY k ORDER BY n",
        """INSERT INTO numeric_strings.t SELECT arrayElement(['123', '0123', '1e3', 'abc'], number % 4 + 1),
           number FROM numbers(4000)""",
    )
    run = run_tool(args_for(servers, "numeric_strings", "numeric_strings", "--partition-split-min-rows", "1"))
    assert run.returncode == 0, run.stdout + run.stderr
    partitions = run.lines("partition")
    assert len(partitions) == 4 and all("rows=1000 " in line for line in partitions), partitions
    assert table_state(servers.destination.client(), "numeric_strings") == table_state(
        servers.source.client(), "numeric_strings"
    )


def test_a_partition_copy_reads_only_its_partition(servers: Servers) -> None:
    """18.16 prunes parts by `_part`, not by `_partition_id`: each per-partition copy must read its own
    partition's rows only (it read the whole table once per partition), also for the legacy
    `MergeTree(date, ...)` format whose part names start with a date, not with the partition id."""
    load(
        servers.source.client(),
        "pruned",
        "CREATE TABLE pruned.modern (ts DateTime, n UInt32) ENGINE = MergeTree PARTITION BY toYYYYMM(ts)"
        " ORDER BY n",
        "INSERT INTO pruned.modern SELECT toDateTime('2024-01-01 00:00:00') + number * 3600, number"
        " FROM numbers(2400)",
        "CREATE TABLE pruned.legacy (d Date, n UInt32) ENGINE = MergeTree(d, n, 8192)",
        "INSERT INTO pruned.legacy SELECT toDate('2024-01-01') + intDiv(number, 20), number"
        " FROM numbers(1800)",
    )
    run = run_tool(args_for(servers, "pruned", "pruned", "--partition-split-min-rows", "1"))
    assert run.returncode == 0, run.stdout + run.stderr
    partitions = [line.split("object=")[1].split()[0] for line in run.lines("partition")]
    assert sorted(partitions) == ["legacy"] * 3 + ["modern"] * 4, run.stdout
    for name, rows in (("modern", 2400), ("legacy", 1800)):
        (table,) = [line for line in run.lines("table") if f"object={name} " in line]
        assert f"rows_written={rows} " in table and f"rows_read={rows} " in table, table
    assert table_state(servers.destination.client(), "pruned") == table_state(
        servers.source.client(), "pruned"
    )


def test_rows_written_are_reported(servers: Servers) -> None:
    """The summary table reports rows written (counted on the target) next to rows read."""
    load(
        servers.source.client(),
        "written",
        "CREATE TABLE written.t (k UInt32, v String) ENGINE = MergeTree ORDER BY k",
        "INSERT INTO written.t SELECT number, 'x' FROM numbers(300)",
    )
    run = run_tool(args_for(servers, "written", "written"))
    assert run.returncode == 0, run.stdout + run.stderr
    (table,) = [line for line in run.lines("table") if "object=t " in line]
    assert "rows_written=300 " in table and "rows_read=300 " in table


# --- names ------------------------------------------------------------------------------------------

ODD_TABLES = ("dot.ted", "quo'te", "back`tick", "new\nline")


@pytest.fixture(scope="module")
def dotted_db(servers: Servers) -> str:
    source = servers.source.client()
    statements = []
    for name in ODD_TABLES:
        quoted = "`" + name.replace("`", "\\`") + "`"
        statements += [
            f"CREATE TABLE `we.ird`.{quoted} (x UInt32) ENGINE = MergeTree ORDER BY x",
            f"INSERT INTO `we.ird`.{quoted} SELECT number FROM numbers(7)",
        ]
    statements += [
        "CREATE VIEW `we.ird`.`v.iew` AS SELECT count() AS n FROM `we.ird`.`dot.ted`",
        "CREATE TABLE `we.ird`.buf (x UInt32) ENGINE = Buffer(`we.ird`, `dot.ted`, 1, 1, 1, 1, 1, 1, 1)",
        "CREATE TABLE `we.ird`.merged (x UInt32) ENGINE = Merge(`we.ird`, '^dot')",
    ]
    load(source, "we.ird", *statements)
    return "we.ird"


def test_dotted_database_in_pull_mode_is_refused_before_writing(servers: Servers, dotted_db: str) -> None:
    before = databases(servers.destination.client())
    run = run_tool(args_for(servers, dotted_db, "weird_pull"))
    assert run.returncode == 7, run.stdout + run.stderr
    assert "--execute-query-on source" in run.stderr
    assert databases(servers.destination.client()) == before


def test_odd_names_are_copied_and_escaped_in_logs(servers: Servers, dotted_db: str) -> None:
    run = run_tool(args_for(servers, dotted_db, "weird_push", **{"--execute-query-on": "source"}))
    assert run.returncode == 0, run.stdout + run.stderr
    destination = servers.destination.client()
    assert table_state(destination, "weird_push") == table_state(servers.source.client(), dotted_db)
    assert destination.execute("SELECT n FROM weird_push.`v.iew`") == [(7,)]
    assert destination.execute("SELECT count() FROM weird_push.merged") == [(7,)]
    engine = destination.execute(
        "SELECT engine_full FROM system.tables WHERE database = 'weird_push' AND name = 'buf'"
    )
    assert "weird_push" in engine[0][0]
    # Every line is one event: the newline in a name is escaped, it cannot start a line of its own.
    assert all(line.startswith("[") for line in run.stdout.splitlines()), run.stdout
    assert r"new\nline" in run.stdout


def test_json_log_lines(servers: Servers, dotted_db: str) -> None:
    args = args_for(
        servers, dotted_db, "weird_json", "--log-format", "json", **{"--execute-query-on": "source"}
    )
    run = run_tool(args)
    assert run.returncode == 0, run.stdout + run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert "new\nline" in {event.get("object") for event in events}
    assert events[-1]["event"] == "summary"


def test_forged_log_line_in_a_table_name(servers: Servers) -> None:
    load(
        servers.source.client(),
        "forge",
        "CREATE TABLE forge.`x\n[summary] created=0 failed=0` (a UInt8) ENGINE = Log",
        "CREATE TABLE forge.`y\u2028[failed] object=z` (a UInt8) ENGINE = Log",
    )
    run = run_tool(args_for(servers, "forge", "forge"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(run.lines("summary")) == 1 and run.lines("failed") == []


def test_qualified_column_references_survive_the_rewrite(servers: Servers) -> None:
    # A table named like its database: `q.x` is table.column (18.16 has no three-part names).
    load(
        servers.source.client(),
        "q",
        "CREATE TABLE q.q (x UInt32) ENGINE = Log",
        "INSERT INTO q.q SELECT number FROM numbers(5)",
        "CREATE VIEW q.v AS SELECT q.x AS a, x AS b FROM q.q WHERE q.x < 100",
    )
    run = run_tool(args_for(servers, "q", "q_copy"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(servers.destination.client().execute("SELECT a, b FROM q_copy.v")) == [
        (i, i) for i in range(5)
    ]


def test_materialized_view_into_a_database_the_destination_lacks(servers: Servers) -> None:
    source = servers.source.client()
    load(source, "mv_elsewhere_target", "CREATE TABLE mv_elsewhere_target.t (x UInt32) ENGINE = Log")
    load(
        source,
        "mv_elsewhere",
        "CREATE TABLE mv_elsewhere.src (x UInt32) ENGINE = Log",
        "CREATE MATERIALIZED VIEW mv_elsewhere.mv TO mv_elsewhere_target.t AS SELECT x FROM mv_elsewhere.src",
    )
    before = databases(servers.destination.client())
    run = run_tool(args_for(servers, "mv_elsewhere", "mv_elsewhere"))
    assert run.returncode == 8, run.stdout + run.stderr
    assert "mv -> mv_elsewhere_target.t" in run.stderr
    assert databases(servers.destination.client()) == before


# --- engines without copy --------------------------------------------------------------------------


def test_join_is_copied_and_set_is_reported(servers: Servers) -> None:
    load(
        servers.source.client(),
        "setjoin",
        "CREATE TABLE setjoin.j (k UInt32, v String) ENGINE = Join(ANY, LEFT, k)",
        "INSERT INTO setjoin.j SELECT number, toString(number) FROM numbers(50)",
        "CREATE TABLE setjoin.s (k UInt32) ENGINE = Set",
        "INSERT INTO setjoin.s SELECT number FROM numbers(50)",
    )
    run = run_tool(args_for(servers, "setjoin", "setjoin"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert servers.destination.client().execute("SELECT count() FROM setjoin.j") == [(50,)]
    (notice,) = [line for line in run.lines("notice") if "object=s " in line]
    assert "cannot be read back" in notice
    assert any("object=s " in line and "status=not_copied" in line for line in run.lines("table"))
    assert "not_copied=1 " in run.lines("summary")[0]


# --- secrets ----------------------------------------------------------------------------------------


def test_password_flags_warn_and_environment_does_not(servers: Servers, identity_db: str) -> None:
    with_flag = run_tool(args_for(servers, identity_db, "ident_pw", "--dry-run"))
    assert any("--destination-password is visible" in line for line in with_flag.lines("warning"))
    args = args_for(servers, identity_db, "ident_pw", "--dry-run")
    index = args.index("--destination-password")
    del args[index : index + 2]
    quiet = run_tool(args, env={"CLICKHOUSE_DESTINATION_PASSWORD": MIGRATOR_PASSWORD})
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert not any("password" in line for line in quiet.lines("warning"))
    assert MIGRATOR_PASSWORD not in quiet.stdout + with_flag.stdout


@pytest.mark.parametrize(("alias", "same"), [(ALIAS_ADDRESS, True), (None, False)])
def test_identity_probe_when_the_cheap_identity_agrees(
    servers: Servers, monkeypatch: pytest.MonkeyPatch, alias: str | None, same: bool
) -> None:
    """Servers that report the same host, version, start and path are told apart by a running query."""
    other = servers.source if alias else servers.destination
    source = Server(
        Endpoint("source", "127.0.0.1", servers.source.port, "default", "", "default"), writable=False
    )
    target = Server(
        Endpoint("destination", alias or other.host, other.port, "default", "", "default"), writable=True
    )
    alike = Identity(host_name="h", version="18.16.1", started=1, data_path="/same/")
    monkeypatch.setattr(Server, "identity", lambda _self: alike)
    try:
        assert same_server(source, target) is same
    finally:
        source.close()
        target.close()


def test_rerun_detects_a_destination_changed_behind_its_back(servers: Servers) -> None:
    """The remembered state is only a shortcut: a changed destination partition is found and re-copied,
    the equal partitions are reused locally."""
    load(
        servers.source.client(),
        "drift",
        "CREATE TABLE drift.t (p UInt8, x UInt32) ENGINE = MergeTree PARTITION BY p ORDER BY x",
        "INSERT INTO drift.t SELECT number % 3, number FROM numbers(3000)",
    )
    servers.destination.client().execute("DROP DATABASE IF EXISTS drift")
    first = run_tool(args_for(servers, "drift", "drift"))
    assert first.returncode == 0, first.stdout + first.stderr
    unchanged = run_tool(args_for(servers, "drift", "drift"))
    assert [line.split()[1] for line in unchanged.lines("unchanged")] == ["object=t"]
    destination = servers.destination.client()
    destination.execute("ALTER TABLE drift.t DELETE WHERE x = 4")  # partition 1, behind the tool's back
    for _ in range(100):
        if destination.execute("SELECT count() FROM drift.t WHERE x = 4") == [(0,)]:
            break
    again = run_tool(args_for(servers, "drift", "drift"))
    assert again.returncode == 0, again.stdout + again.stderr
    (resume,) = again.lines("resume")
    assert "reused_from_destination=2 to_copy=1 " in resume, resume
    assert table_state(destination, "drift") == table_state(servers.source.client(), "drift")
