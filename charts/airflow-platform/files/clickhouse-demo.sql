-- Demo data for the clickhouse_db_sync DAG (ClickHouse 18.16 syntax). Idempotent: objects are
-- created if missing; rows are inserted by the loader only when demo.events is empty.
CREATE DATABASE IF NOT EXISTS demo;

CREATE TABLE IF NOT EXISTS demo.users (
    id UInt32, name String, country String, created DateTime
) ENGINE = MergeTree() ORDER BY id;

CREATE TABLE IF NOT EXISTS demo.events (
    event_date Date, id UInt64, user_id UInt32, kind String, value Float64
) ENGINE = MergeTree() PARTITION BY toYYYYMM(event_date) ORDER BY (event_date, id);

CREATE TABLE IF NOT EXISTS demo.daily_totals (
    event_date Date, kind String, events UInt64, value Float64
) ENGINE = SummingMergeTree() ORDER BY (event_date, kind);

CREATE MATERIALIZED VIEW IF NOT EXISTS demo.daily_totals_mv TO demo.daily_totals AS
    SELECT event_date, kind, count() AS events, sum(value) AS value FROM demo.events GROUP BY event_date, kind;

CREATE VIEW IF NOT EXISTS demo.big_spenders AS
    SELECT user_id, sum(value) AS total FROM demo.events GROUP BY user_id HAVING total > 1000;

-- Tables the sync skips by name (skip patterns copy, test, backup, dict).
CREATE TABLE IF NOT EXISTS demo.events_backup (
    event_date Date, id UInt64, user_id UInt32, kind String, value Float64
) ENGINE = MergeTree() ORDER BY (event_date, id);

CREATE TABLE IF NOT EXISTS demo.test_table (id UInt32, note String) ENGINE = TinyLog;
