"""Failures during the run (after preflight): reported per object, the rest goes on, distinct exit codes."""

from __future__ import annotations

from .conftest import Servers, base_args, run_tool
from .test_migrate import objects


def test_failed_create_is_reported_and_its_dependents_are_not_created(servers: Servers) -> None:
    # A view over another database that the destination does not have: 18.16 refuses to create it there.
    source = servers.source.client()
    for statement in (
        "CREATE DATABASE IF NOT EXISTS elsewhere",
        "CREATE TABLE IF NOT EXISTS elsewhere.t (x UInt8) ENGINE = Memory",
        "CREATE DATABASE IF NOT EXISTS partly",
        "CREATE TABLE IF NOT EXISTS partly.good (x UInt8) ENGINE = Memory",
        "INSERT INTO partly.good SELECT 1",
        "CREATE VIEW IF NOT EXISTS partly.v_elsewhere AS SELECT x FROM elsewhere.t",
        "CREATE VIEW IF NOT EXISTS partly.v_dependent AS SELECT x FROM partly.v_elsewhere",
    ):
        source.execute(statement)
    run = run_tool(base_args(servers, "partly_copy", **{"--source-db": "partly"}))
    assert run.returncode == 9, run.stdout + run.stderr
    failed = {line.split("object=")[1].split()[0]: line for line in run.lines("failed")}
    assert sorted(failed) == ["v_dependent", "v_elsewhere"]
    assert "Database elsewhere doesn't exist\"" in failed["v_elsewhere"]
    assert "not created: dependency v_elsewhere failed" in failed["v_dependent"]
    assert sorted(objects(servers.destination_client(), "partly_copy")) == ["good"]
    assert servers.destination_client().execute("SELECT x FROM partly_copy.good") == [(1,)]


def test_mismatch_is_named_and_exits_10_in_recreate_mode(servers: Servers) -> None:
    # A materialized view that exists only on the destination fires while events is copied and adds
    # rows to audit_log: the tool warns before copying and verification names the table.
    destination = servers.destination.client()
    for statement in (
        "CREATE DATABASE IF NOT EXISTS shop_foreign_view",
        "CREATE TABLE IF NOT EXISTS shop_foreign_view.events (id UInt64, day Date) ENGINE = Memory",
        "CREATE TABLE IF NOT EXISTS shop_foreign_view.audit_log (at DateTime, message String) ENGINE = Log",
        """CREATE MATERIALIZED VIEW IF NOT EXISTS shop_foreign_view.extra TO shop_foreign_view.audit_log
           AS SELECT toDateTime(day) AS at, 'extra' AS message FROM shop_foreign_view.events""",
    ):
        destination.execute(statement)
    args = [
        *base_args(servers, "shop_foreign_view"),
        "--tables",
        "events",
        "audit_log",
        "--strategy",
        "recreate",
    ]
    run = run_tool(args)
    assert run.returncode == 10, run.stdout + run.stderr
    (warning,) = [line for line in run.lines("warning") if "object=" in line]
    assert "object=extra" in warning and "reads events" in warning
    (mismatch,) = run.lines("mismatch")
    assert "audit_log: rows source=300 destination=25300" in mismatch
