"""Hosts: the server-to-server route must not lead back to the server running the copy (else the source
pushes into itself)."""

from __future__ import annotations

import pytest

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
