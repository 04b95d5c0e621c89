"""Modern-only DDL (DDL dictionaries, Atomic `.inner_id.` materialized views, Map columns) read,
ordered and rewritten by the tool, then executed in chDB (an in-process ClickHouse 26.x)."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from clickhouse_migrate import ddl
from clickhouse_migrate.catalog import ObjectKind, read_catalog
from clickhouse_migrate.migrate import Outcome, creation_blocker
from clickhouse_migrate.plan import Selection, build_plan
from clickhouse_migrate.sql import qualified, quote_identifier, quote_string
from clickhouse_migrate.verify import partition_fingerprints, stored_columns

chdb_session = pytest.importorskip("chdb.session")

SOURCE_DB = "src"
DESTINATION_DB = "dst"
SOURCE_OBJECTS = [
    f"CREATE DATABASE {SOURCE_DB}",
    f"""CREATE TABLE {SOURCE_DB}.events (id UInt64, kind LowCardinality(String), attrs Map(String, UInt64),
        note String DEFAULT 'copied from src.events') ENGINE = MergeTree ORDER BY id""",
    f"CREATE TABLE {SOURCE_DB}.totals (kind String, n UInt64) ENGINE = SummingMergeTree ORDER BY kind",
    f"""CREATE MATERIALIZED VIEW {SOURCE_DB}.mv_to TO {SOURCE_DB}.totals AS
        SELECT kind, count() AS n FROM {SOURCE_DB}.events GROUP BY kind""",
    f"""CREATE MATERIALIZED VIEW {SOURCE_DB}.mv_inner ENGINE = MergeTree ORDER BY id AS
        SELECT id, kind FROM {SOURCE_DB}.events WHERE id % 2 = 0""",
    f"CREATE VIEW {SOURCE_DB}.v_inner AS SELECT count() AS n FROM {SOURCE_DB}.mv_inner",
    f"CREATE TABLE {SOURCE_DB}.names (id UInt64, name String) ENGINE = MergeTree ORDER BY id",
    f"""CREATE DICTIONARY {SOURCE_DB}.names_dict (id UInt64, name String) PRIMARY KEY id
        SOURCE(CLICKHOUSE(TABLE 'names' DB '{SOURCE_DB}')) LAYOUT(HASHED()) LIFETIME(0)""",
    f"INSERT INTO {SOURCE_DB}.events (id, kind, attrs) SELECT number, toString(number % 3), map('a', number)"
    " FROM numbers(100)",
]


class Chdb:
    """A chDB session with the tool's QueryRunner signature (rows as lists)."""

    def __init__(self, path: str) -> None:
        self.session = chdb_session.Session(path)

    def __call__(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        for name, value in (params or {}).items():
            sql = sql.replace(f"%({name})s", quote_string(str(value)))
        result = self.session.query(sql, "JSONCompact")
        text = result.bytes().decode() if hasattr(result, "bytes") else str(result)
        return json.loads(text)["data"] if text.strip() else []

    def close(self) -> None:
        self.session.close()


@pytest.fixture(scope="module")
def chdb() -> Iterator[Chdb]:
    with tempfile.TemporaryDirectory(prefix="chdb-") as path:
        engine = Chdb(path)
        for statement in SOURCE_OBJECTS:
            engine(statement)
        try:
            yield engine
        finally:
            engine.close()


@pytest.fixture(scope="module")
def migrated(chdb: Chdb) -> list[str]:
    """Every source object recreated in the destination database, in the tool's order."""
    plan = build_plan(read_catalog(chdb, SOURCE_DB), Selection(migrate_dicts=True))
    chdb(f"CREATE DATABASE {DESTINATION_DB}")
    for obj in plan.ordered:
        chdb(ddl.rewrite_database(obj.create_query, SOURCE_DB, DESTINATION_DB))
    return [obj.name for obj in plan.ordered]


def as_source(destination_query: str) -> str:
    """The destination DDL with its database renamed back (the name `dst` appears nowhere else)."""
    return re.sub(rf"\b{DESTINATION_DB}\b", SOURCE_DB, destination_query)


def test_modern_server_features(chdb: Chdb) -> None:
    version = chdb("SELECT version()")[0][0]
    settings = frozenset(row[0] for row in chdb("SELECT name FROM system.settings"))
    features = ddl.ServerFeatures(version=version, settings=settings)
    assert features.version_tuple >= (26,)
    assert features.ddl_dictionaries
    assert features.insert_settings()["optimize_on_insert"] == 0


def test_catalog_kinds_and_order(chdb: Chdb, migrated: list[str]) -> None:
    catalog = {obj.name: obj for obj in read_catalog(chdb, SOURCE_DB)}
    assert not [name for name in catalog if name.startswith(".inner")]
    assert catalog["names_dict"].kind is ObjectKind.DICTIONARY
    assert catalog["names_dict"].depends_on == {"names"}
    assert catalog["mv_to"].mv_target == "totals" and not catalog["mv_to"].has_data
    assert catalog["mv_inner"].mv_target is None and catalog["mv_inner"].has_data
    position = {name: index for index, name in enumerate(migrated)}
    assert position["events"] < position["mv_inner"] < position["v_inner"]
    assert position["totals"] < position["mv_to"] and position["names"] < position["names_dict"]


def test_rewritten_ddl_recreates_every_object(chdb: Chdb, migrated: list[str]) -> None:
    source = {obj.name: obj for obj in read_catalog(chdb, SOURCE_DB)}
    destination = {obj.name: obj for obj in read_catalog(chdb, DESTINATION_DB)}
    assert sorted(destination) == sorted(source) == sorted(migrated)
    for name, obj in source.items():
        assert as_source(destination[name].create_query) == obj.create_query, name
    # The string literal that merely mentions src.events is data, not a reference: untouched.
    assert "'copied from src.events'" in destination["events"].create_query


def test_destination_objects_point_at_the_destination(chdb: Chdb, migrated: list[str]) -> None:
    assert migrated
    chdb(f"INSERT INTO {DESTINATION_DB}.names VALUES (1, 'from-destination')")
    chdb(f"INSERT INTO {SOURCE_DB}.names VALUES (1, 'from-source')")
    assert (
        chdb(f"SELECT dictGet('{DESTINATION_DB}.names_dict', 'name', toUInt64(1))")[0][0]
        == "from-destination"
    )
    # Copy through the inner-table view as the tool does: it lands in the new `.inner_id.<uuid>` table.
    chdb(f"INSERT INTO {DESTINATION_DB}.mv_inner SELECT * FROM {SOURCE_DB}.mv_inner")
    inner = chdb(
        f"SELECT name FROM system.tables WHERE database = '{DESTINATION_DB}' AND name LIKE '.inner_id.%'"
    )
    assert len(inner) == 1
    assert chdb(f"SELECT n FROM {DESTINATION_DB}.v_inner")[0][0] == 50
    # The destination's materialized view feeds the destination's TO table.
    chdb(f"INSERT INTO {DESTINATION_DB}.events (id, kind, attrs) VALUES (7, 'x', map())")
    assert chdb(f"SELECT n FROM {DESTINATION_DB}.totals WHERE kind = 'x'")[0][0] == 1
    assert chdb(f"SELECT count() FROM {SOURCE_DB}.totals WHERE kind = 'x'")[0][0] == 0


def test_unreplicated_ddl_executes(chdb: Chdb) -> None:
    """chDB has no ZooKeeper: the replicated source DDL cannot run there, its rewrite must."""
    source = (
        f"CREATE TABLE {SOURCE_DB}.replicated (id UInt64, v UInt32) ENGINE = "
        f"ReplicatedReplacingMergeTree('/tables/{{shard}}/{SOURCE_DB}/replicated', '{{replica}}', v) "
        "ORDER BY id"
    )
    chdb(ddl.unreplicate(ddl.rewrite_database(source, SOURCE_DB, DESTINATION_DB)))
    engine = chdb(
        f"SELECT engine FROM system.tables WHERE database = '{DESTINATION_DB}' AND name = 'replicated'"
    )
    assert engine == [["ReplacingMergeTree"]]


def test_masked_secrets_block_recreation(chdb: Chdb) -> None:
    """Current servers print dictionary passwords as '[HIDDEN]': such DDL must not be replayed."""
    chdb(
        f"""CREATE DICTIONARY {SOURCE_DB}.secret_dict (id UInt64, name String) PRIMARY KEY id
        SOURCE(CLICKHOUSE(TABLE 'names' DB '{SOURCE_DB}' USER 'default' PASSWORD 'p4ss')) LAYOUT(HASHED())
        LIFETIME(0)"""
    )
    try:
        obj = next(obj for obj in read_catalog(chdb, SOURCE_DB) if obj.name == "secret_dict")
        assert ddl.HIDDEN_SECRET in obj.create_query and "p4ss" not in obj.create_query
        assert "masks secrets" in (creation_blocker(obj, Outcome()) or "")
    finally:
        chdb(f"DROP DICTIONARY {SOURCE_DB}.secret_dict")


class ChdbServer:
    """The tool's Server interface (`query`) over the chDB session, for the fingerprint helpers."""

    def __init__(self, chdb: Chdb) -> None:
        self.query = chdb


MODERN_COLUMNS = f"""CREATE TABLE {SOURCE_DB}.kinds (
    id UInt64,
    raw String EPHEMERAL '',
    parsed String DEFAULT upper(raw),
    noise UInt64 MATERIALIZED rand64(),
    doubled UInt64 ALIAS id * 2,
    attrs Map(String, UInt64),
    packed UInt64 CODEC(Delta, ZSTD(3)),
    ts DateTime DEFAULT toDateTime('2024-01-01 00:00:00') + id,
    expiring String TTL ts + INTERVAL 100 YEAR
) ENGINE = MergeTree PARTITION BY id % 150 ORDER BY id TTL ts + INTERVAL 100 YEAR"""


def test_modern_column_kinds_copy_as_stored(chdb: Chdb) -> None:
    """EPHEMERAL/ALIAS are neither copied nor hashed; MATERIALIZED, Map, codec and TTL columns are copied
    by name with insert_allow_materialized_columns, over more than 100 partitions in one insert."""
    chdb(MODERN_COLUMNS)
    chdb(
        f"INSERT INTO {SOURCE_DB}.kinds (id, raw, attrs, packed, expiring) "
        "SELECT number, toString(number), map('k', number), number * 3, 'e' FROM numbers(3000) "
        "SETTINGS max_partitions_per_insert_block = 0"
    )
    try:
        chdb(
            ddl.rewrite_database(
                chdb(f"SHOW CREATE TABLE {SOURCE_DB}.kinds")[0][0], SOURCE_DB, DESTINATION_DB
            )
        )
        server = ChdbServer(chdb)
        columns = stored_columns(server, SOURCE_DB, "kinds")  # type: ignore[arg-type]
        names = [name for name, _ in columns]
        assert "raw" not in names and "doubled" not in names
        assert {"noise", "attrs", "packed", "expiring", "parsed"} <= set(names)
        listed = ", ".join(quote_identifier(name) for name in names)
        chdb(
            f"INSERT INTO {DESTINATION_DB}.kinds ({listed}) SELECT {listed} FROM {SOURCE_DB}.kinds "
            "SETTINGS insert_allow_materialized_columns = 1, max_partitions_per_insert_block = 0"
        )
        by_partition = {
            side: partition_fingerprints(server, side, "kinds", columns, by_partition=True)  # type: ignore[arg-type]
            for side in (SOURCE_DB, DESTINATION_DB)
        }
        assert len(by_partition[SOURCE_DB]) == 150
        assert by_partition[SOURCE_DB] == by_partition[DESTINATION_DB]
    finally:
        chdb(f"DROP TABLE IF EXISTS {DESTINATION_DB}.kinds")
        chdb(f"DROP TABLE IF EXISTS {SOURCE_DB}.kinds")


def test_exchange_tables_swaps_on_atomic(chdb: Chdb) -> None:
    """What --strategy swap runs on an Atomic destination: the old copy ends up in the staging database."""
    staging = f"{DESTINATION_DB}__migrate_staging"
    chdb(f"CREATE DATABASE IF NOT EXISTS {staging}")
    chdb(f"CREATE TABLE {DESTINATION_DB}.swapped (v String) ENGINE = MergeTree ORDER BY v")
    chdb(f"CREATE TABLE {staging}.swapped (v String) ENGINE = MergeTree ORDER BY v")
    chdb(f"INSERT INTO {DESTINATION_DB}.swapped VALUES ('old')")
    chdb(f"INSERT INTO {staging}.swapped VALUES ('new')")
    assert chdb(f"SELECT engine FROM system.databases WHERE name = '{DESTINATION_DB}'") == [["Atomic"]]
    chdb(f"EXCHANGE TABLES {qualified(staging, 'swapped')} AND {qualified(DESTINATION_DB, 'swapped')}")
    assert chdb(f"SELECT v FROM {DESTINATION_DB}.swapped") == [["new"]]
    assert chdb(f"SELECT v FROM {staging}.swapped") == [["old"]]
    chdb(f"DROP DATABASE {staging}")
    chdb(f"DROP TABLE {DESTINATION_DB}.swapped")
