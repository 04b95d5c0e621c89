"""The fixture database: every object type the tool handles, generated server-side with numbers()."""

from __future__ import annotations

from clickhouse_driver import Client

DATABASE = "shop"
SKIP_PATTERNS = ("copy", "test", "backup", "dict")
# Objects the tool must skip: names matching a pattern, and a view reading a skipped table.
SKIPPED_BY_PATTERN = ("events_copy", "test_data", "backup_2024", "dict_source")
SKIPPED_BY_DEPENDENCY = ("v_on_skipped",)
MIGRATED = (
    "audit_log",
    "by_day",
    "by_region",
    "customers",
    "daily_totals",
    "empty_table",
    "events",
    "mv_daily_to",
    "mv_inner",
    "odd-name",
    "sessions_mem",
    "tiny",
    "v_daily",
    "v_on_view",
)
DATA_OBJECTS = tuple(name for name in MIGRATED if not name.startswith("v_") and name != "mv_daily_to")


def low_cardinality_settings(client: Client) -> dict[str, int]:
    """18.16 needs an opt-in for LowCardinality columns; newer servers do not know the setting."""
    setting = "allow_experimental_low_cardinality_type"
    rows = client.execute("SELECT name FROM system.settings WHERE name = %(name)s", {"name": setting})
    return {setting: 1} if rows else {}


def load(client: Client, database: str = DATABASE) -> None:
    db = f"`{database}`"
    statements = [
        f"DROP DATABASE IF EXISTS {db}",
        f"CREATE DATABASE {db}",
        f"""CREATE TABLE {db}.events (
            id UInt64, day Date, ts DateTime, name String, amount Decimal(12, 2), tags Array(String),
            comment Nullable(String), category LowCardinality(String), score Float64
        ) ENGINE = MergeTree PARTITION BY toYYYYMM(day) ORDER BY (day, id)""",
        f"""CREATE TABLE {db}.customers (id UInt64, name String, version UInt32)
            ENGINE = ReplacingMergeTree(version) ORDER BY id""",
        f"CREATE TABLE {db}.audit_log (at DateTime, message String) ENGINE = Log",
        f"""CREATE TABLE {db}.tiny (
            n Nullable(Int32), a Array(Nullable(UInt8)), u UUID, e Enum8('red' = 1, 'green' = 2),
            f FixedString(4), d Decimal(9, 3), t Tuple(UInt8, String)
        ) ENGINE = TinyLog""",
        # Partition values 18.16 prints unquoted (Date, String with a quote): the per-partition copy
        # must turn them into literals.
        f"CREATE TABLE {db}.by_day (day Date, n UInt32) ENGINE = MergeTree PARTITION BY day ORDER BY n",
        f"""CREATE TABLE {db}.by_region (region String, n UInt32) ENGINE = MergeTree
            PARTITION BY region ORDER BY n""",
        f"CREATE TABLE {db}.sessions_mem (id UInt32, started DateTime) ENGINE = Memory",
        f"CREATE TABLE {db}.empty_table (id UInt64, label String) ENGINE = MergeTree ORDER BY id",
        f"""CREATE TABLE {db}.`odd-name` (`key with space` UInt32, value String)
            ENGINE = MergeTree ORDER BY tuple()""",
        f"""CREATE TABLE {db}.daily_totals (day Date, events UInt64, amount Decimal(38, 2))
            ENGINE = SummingMergeTree ORDER BY day""",
        f"""CREATE MATERIALIZED VIEW {db}.mv_daily_to TO {db}.daily_totals AS
            SELECT day, count() AS events, sum(amount) AS amount FROM {db}.events GROUP BY day""",
        f"""CREATE MATERIALIZED VIEW {db}.mv_inner ENGINE = MergeTree ORDER BY (category, id) AS
            SELECT id, category, amount FROM {db}.events WHERE id % 3 = 0""",
        f"CREATE VIEW {db}.v_daily AS SELECT day, count() AS n FROM {db}.events GROUP BY day",
        f"CREATE VIEW {db}.v_on_view AS SELECT max(n) AS busiest FROM {db}.v_daily",
        f"CREATE TABLE {db}.events_copy (id UInt64) ENGINE = MergeTree ORDER BY id",
        f"CREATE TABLE {db}.test_data (id UInt64) ENGINE = Log",
        f"CREATE TABLE {db}.backup_2024 (id UInt64) ENGINE = TinyLog",
        f"CREATE TABLE {db}.dict_source (id UInt64, name String) ENGINE = Memory",
        f"CREATE VIEW {db}.v_on_skipped AS SELECT count() AS n FROM {db}.events_copy",
        # Data: inserted after the materialized views exist, so they fill daily_totals and mv_inner.
        f"""INSERT INTO {db}.events SELECT number, toDate('2024-01-01') + number % 120,
            toDateTime('2024-01-01 00:00:00') + number * 37, concat('event-', toString(number)),
            toDecimal64(number % 1000, 2) / 7, arrayMap(x -> toString(x), range(number % 4)),
            if(number % 5 = 0, NULL, concat('c', toString(number % 11))), concat('cat', toString(number % 6)),
            number / 3 FROM numbers(20000)""",
        f"""INSERT INTO {db}.events SELECT number + 20000, toDate('2024-06-01') + number % 30, now(), 'late',
            toDecimal64(1, 2), [], NULL, 'cat0', 0.5 FROM numbers(5000)""",
        f"""INSERT INTO {db}.customers SELECT number % 500, concat('c', toString(number)), number
            FROM numbers(2000)""",
        f"""INSERT INTO {db}.audit_log SELECT toDateTime('2024-03-01 00:00:00') + number, 'x'
            FROM numbers(300)""",
        f"""INSERT INTO {db}.tiny SELECT if(number % 2 = 0, NULL, toInt32(number) - 50),
            [toUInt8(number), NULL], generateUUIDv4(), if(number % 2 = 0, 'red', 'green'), 'abcd',
            toDecimal32(number, 3) / 8,
            (toUInt8(number), toString(number)) FROM numbers(64)""",
        f"INSERT INTO {db}.by_day SELECT toDate('2024-02-27') + number % 4, number FROM numbers(400)",
        f"""INSERT INTO {db}.by_region SELECT arrayElement(['eu west', 'it''s', 'us'], number % 3 + 1), number
            FROM numbers(300)""",
        f"INSERT INTO {db}.sessions_mem SELECT number, toDateTime('2024-01-01 00:00:00') FROM numbers(1000)",
        f"INSERT INTO {db}.`odd-name` SELECT number, 'it''s' FROM numbers(10)",
        f"INSERT INTO {db}.events_copy SELECT number FROM numbers(100)",
        f"INSERT INTO {db}.test_data SELECT number FROM numbers(100)",
        # Merged now, so background merges (Replacing/Summing) cannot change counts during the tests.
        f"OPTIMIZE TABLE {db}.customers FINAL",
        f"OPTIMIZE TABLE {db}.daily_totals FINAL",
    ]
    settings = low_cardinality_settings(client)
    for statement in statements:
        client.execute(statement, settings=settings)
