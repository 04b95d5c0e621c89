"""Every preflight failure: one clear line on stderr, a distinct exit code, nothing written."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from . import fixture_db
from .conftest import Servers, base_args, run_tool
from .servers import free_port

pytestmark = pytest.mark.usefixtures("destination_snapshot")


def assert_one_line_error(stderr: str, expected: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("clickhouse-migrate: error:"), stderr
    assert expected in lines[0], stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--destination-secure-flag", "maybe"], "expected y or n"),
        (["--execute-query-on", "both"], "invalid choice"),
        (["--parallelism", "0"], "expected 1..64"),
        (["--source-port", "99999"], "not a TCP port"),
    ],
)
def test_bad_flags_fail_before_connecting(servers: Servers, flags: list[str], message: str) -> None:
    # An unroutable source: had the tool tried to connect, it would fail with 3, not 2.
    args = base_args(servers, "never", **{"--source-host": "192.0.2.1"}) + flags
    run = run_tool(args)
    assert run.returncode == 2
    assert message in run.stderr and run.stdout == ""


@pytest.mark.parametrize(
    ("mode", "ignored"),
    [
        ("--data-only", ["--verify"]),
        ("--data-only", ["--strategy", "recreate"]),
        ("--data-only", ["--migrate-dicts", "y"]),
        ("--schema-only", ["--partition-split-min-rows", "1000"]),
        ("--schema-only", ["--verify"]),
        ("--schema-only", ["--strategy", "swap"]),
        ("--schema-only", ["--execute-query-on", "destination"]),
        ("--schema-only", ["--parallelism", "4"]),
        ("--schema-only", ["--setting", "max_threads=1"]),
        ("--schema-only", ["--progress-interval", "10"]),
    ],
)
def test_a_flag_the_mode_ignores_is_refused(servers: Servers, mode: str, ignored: list[str]) -> None:
    """They were accepted and silently ignored (given at its default value, a flag is refused too)."""
    run = run_tool([*base_args(servers, "never", **{"--source-host": "192.0.2.1"}), mode, *ignored])
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"argument {ignored[0]}: not allowed with argument {mode}" in run.stderr and run.stdout == ""


def test_certificate_verification_without_tls_is_refused(servers: Servers) -> None:
    args = base_args(servers, "never", **{"--source-host": "192.0.2.1", "--destination-verify-flag": "y"})
    run = run_tool(args)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "argument --destination-verify-flag: y needs --destination-secure-flag y" in run.stderr


@pytest.mark.parametrize(
    "flags",
    [["--verify", "--strategy", "swap"], ["--data-only", "--migrate-dicts", "n"], ["--schema-only"]],
    ids=["verify-with-swap-documented", "dicts-off-with-data-only", "schema-only-alone"],
)
def test_combinations_that_mean_something_are_accepted(servers: Servers, flags: list[str]) -> None:
    run = run_tool([*base_args(servers, "never"), "--tables", "tiny", "--dry-run", *flags])
    assert run.returncode == 0, run.stdout + run.stderr


def test_missing_required_flag(servers: Servers) -> None:
    args = [arg for arg in base_args(servers, "never") if arg not in ("--source-db", fixture_db.DATABASE)]
    run = run_tool(args)
    assert run.returncode == 2 and "--source-db" in run.stderr


def test_unreachable_destination(servers: Servers) -> None:
    port = free_port()
    run = run_tool(base_args(servers, "never", **{"--destination-port": str(port)}))
    assert run.returncode == 3
    assert_one_line_error(run.stderr, f"cannot reach destination 127.0.0.1:{port}")


def test_unresolvable_source(servers: Servers) -> None:
    run = run_tool(base_args(servers, "never", **{"--source-host": "no-such-host.invalid"}))
    assert run.returncode == 3
    assert_one_line_error(run.stderr, "cannot reach source no-such-host.invalid:")


def test_wrong_destination_password(servers: Servers) -> None:
    run = run_tool(base_args(servers, "never", **{"--destination-password": "wrong"}))
    assert run.returncode == 4
    assert_one_line_error(run.stderr, "authentication failed for user 'migrator' on destination")


def test_wrong_source_password_from_environment(servers: Servers) -> None:
    run = run_tool(base_args(servers, "never"), env={"CLICKHOUSE_SOURCE_PASSWORD": "wrong"})
    assert run.returncode == 4
    assert_one_line_error(run.stderr, "authentication failed for user 'migrator' on source")


def test_destination_password_from_environment(servers: Servers) -> None:
    args = base_args(servers, "never")
    index = args.index("--destination-password")
    del args[index : index + 2]
    run = run_tool([*args, "--dry-run"], env={"CLICKHOUSE_DESTINATION_PASSWORD": "wrong"})
    assert run.returncode == 4 and "on destination" in run.stderr


def test_missing_source_database(servers: Servers) -> None:
    run = run_tool(base_args(servers, "never", **{"--source-db": "no_such_db"}))
    assert run.returncode == 5
    assert_one_line_error(run.stderr, "source database 'no_such_db' does not exist")


def test_destination_is_the_source(servers: Servers) -> None:
    before = servers.source_client().execute("SELECT name FROM system.tables WHERE database = 'shop'")
    same = {"--destination-host": "localhost", "--destination-port": str(servers.source.port)}
    run = run_tool(base_args(servers, fixture_db.DATABASE, **same))
    assert run.returncode == 6
    assert_one_line_error(run.stderr, "(the servers report the same identity): refusing to copy onto it")
    assert servers.source_client().execute("SELECT name FROM system.tables WHERE database = 'shop'") == before


def test_unknown_table_in_filter(servers: Servers) -> None:
    run = run_tool([*base_args(servers, "never"), "--tables", "events", "nope"])
    assert run.returncode == 8
    assert_one_line_error(run.stderr, "--tables names objects not in the source: nope")


def test_empty_skip_pattern_list_is_accepted(servers: Servers) -> None:
    """A DAG that expands an empty pattern list passes `--skip-patterns` alone: it means skip nothing."""
    run = run_tool([*base_args(servers, "never"), "--tables", "tiny", "--skip-patterns", "--dry-run"])
    assert run.returncode == 0, run.stderr
    assert "object=tiny" in run.lines("plan")[0]


@pytest.fixture
def damaged_db(servers: Servers) -> Iterator[str]:
    """A source table whose data file is gone (a damaged disk): the source fails to read it."""
    client = servers.source.client()
    client.execute("DROP DATABASE IF EXISTS damaged")
    client.execute("CREATE DATABASE damaged")
    client.execute("CREATE TABLE damaged.t (x UInt32) ENGINE = TinyLog")
    client.execute("INSERT INTO damaged.t SELECT number FROM numbers(10)")
    (servers.source.root / "data" / "data" / "damaged" / "t" / "x.bin").unlink()
    yield "damaged"
    client.execute("DROP DATABASE damaged")


def test_an_unexpected_server_error_names_its_cause_on_the_first_line(
    servers: Servers, damaged_db: str
) -> None:
    """It used to be one line: `unexpected error: ServerException: Code: 1000.\\nDB::Exception: ...` with the
    server's whole stack trace escaped into it. Now: the step, the server, the code and message first; the
    server's whole message and the tool's traceback on the lines after it."""
    run = run_tool(base_args(servers, "never", **{"--source-db": damaged_db}))
    assert run.returncode == 1, run.stdout + run.stderr
    first, *detail = run.stderr.splitlines()
    address = f"{servers.source.host}:{servers.source.port}"
    assert re.fullmatch(
        rf"clickhouse-migrate: error: unexpected error while estimating the source's rows \(plan\), "
        rf"on source {re.escape(address)}: ClickHouse error \d+ \([A-Z_]+\): [^\\]*/damaged/t/x\.bin",
        first,
    ), first
    assert detail[0].startswith("clickhouse-migrate: detail"), run.stderr
    assert all(line.startswith("    ") for line in detail[1:]), run.stderr
    text = "\n".join(detail)
    assert "Traceback (most recent call last):" in text  # where in the tool
    assert "Stack trace:" in text and "\n    0. " in text  # the server's stack trace, a line per frame
