"""Hosts: the server-to-server route must lead to the server the tool checked, never back to the one
running the copy (else the source pushes into itself); host arguments are host names or IP addresses."""

from __future__ import annotations

import pytest
from clickhouse_migrate.connection import Endpoint
from clickhouse_migrate.copy import remote_function

from .conftest import Servers, base_args, databases, run_tool
from .split_route import split_route
from .test_safety import load, table_state

DATABASE = "routed"


@pytest.fixture(scope="module")
def routed_db(servers: Servers) -> str:
    load(
        servers.source.client(),
        DATABASE,
        f"CREATE TABLE {DATABASE}.t (x UInt32) ENGINE = MergeTree ORDER BY x",
        f"INSERT INTO {DATABASE}.t SELECT number FROM numbers(100)",
    )
    return DATABASE


def snapshot(servers: Servers) -> tuple[object, ...]:
    source, destination = servers.source.client(), servers.destination.client()
    return databases(source), table_state(source, DATABASE), databases(destination)


@pytest.mark.parametrize("extra", [["--strategy", "recreate"], ["--data-only"], ["--dry-run"]])
def test_a_destination_name_that_leads_the_source_back_to_itself_is_refused(
    servers: Servers, routed_db: str, extra: list[str]
) -> None:
    """The tool reaches the destination; the source, pushing to the same address, reaches itself."""
    before = snapshot(servers)
    with split_route(tool_port=servers.destination.port, others_port=servers.source.port) as port:
        flags = {"--source-db": routed_db, "--destination-port": str(port), "--execute-query-on": "source"}
        run = run_tool([*base_args(servers, routed_db, **flags), *extra])
    assert run.returncode == 6, run.stdout + run.stderr
    assert f"source 127.0.0.1:{servers.source.port} reaches itself through remote('127.0.0.1:{port}')" in (
        run.stderr
    )
    assert snapshot(servers) == before  # the source's rows were not doubled, nothing was created


def test_a_source_name_that_leads_the_destination_back_to_itself_is_refused(
    servers: Servers, routed_db: str
) -> None:
    before = snapshot(servers)
    with split_route(tool_port=servers.source.port, others_port=servers.destination.port) as port:
        flags = {"--source-db": routed_db, "--source-port": str(port)}
        run = run_tool([*base_args(servers, "routed_copy", **flags), "--strategy", "recreate"])
    assert run.returncode == 6, run.stdout + run.stderr
    assert "destination 127.0.0.1:" in run.stderr and "reaches itself through remote(" in run.stderr
    assert snapshot(servers) == before


@pytest.mark.parametrize(
    "value",
    [
        "migrator@127.0.0.1",
        "127.0.0.1/shop",
        "127.0.0.1?secure=1",
        "127.0.0.1:9000",
        "127.0.0.1:9000:9000",
        "127.0.0.1 ",
        "127.0.0.1\nevil",
        "127.0.0.1,127.0.0.2",  # remote() would read two shards
        "127.0.0.{1,2}",  # and a pattern
        "127.0.0.1|127.0.0.2",  # and replicas
        "[127.0.0.1]",
    ],
)
@pytest.mark.parametrize("role", ["source", "destination"])
def test_a_host_that_is_no_name_or_address_fails_before_connecting(
    servers: Servers, destination_snapshot: None, role: str, value: str
) -> None:
    """Exit 2 naming the flag (not 3, "cannot reach", which a DAG retries); nothing contacted."""
    other = "destination" if role == "source" else "source"
    args = base_args(servers, "never", **{f"--{role}-host": value, f"--{other}-host": "192.0.2.1"})
    run = run_tool(args)
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"argument --{role}-host: {value!r}" in run.stderr and run.stdout == ""


@pytest.mark.parametrize("value", ["::ffff:127.0.0.1", "[::ffff:127.0.0.1]"])
def test_an_ipv6_source_is_one_clear_refusal_where_remote_cannot_take_it(
    servers: Servers, destination_snapshot: None, routed_db: str, value: str
) -> None:
    """The tool connects to an IPv6 address (bare or in brackets); 18.16's remote() cannot address one,
    which is said as such (exit 7, not retried), before anything is written."""
    run = run_tool(base_args(servers, "routed_v6", **{"--source-host": value, "--source-db": routed_db}))
    assert run.returncode == 7, run.stdout + run.stderr
    assert f"[connect] role=source address=[::ffff:127.0.0.1]:{servers.source.port}" in run.stdout
    assert "cannot address the IPv6 address [::ffff:127.0.0.1]" in run.stderr
    assert "give the source a host name" in run.stderr


def test_remote_takes_an_ipv6_address_in_brackets() -> None:
    """Current servers read `[addr]:port` in remote() (`addr:port` is refused: "Illegal port")."""
    endpoint = Endpoint("source", "::1", 9000, "default", "", "db")
    assert remote_function(endpoint, "db", "t", secure=False).startswith("remote('[::1]:9000', 'db', 't'")
