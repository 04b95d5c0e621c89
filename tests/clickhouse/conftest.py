"""Two real ClickHouse servers for the session, the fixture database on the source, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from clickhouse_driver import Client

from . import fixture_db
from .servers import MIGRATOR_PASSWORD, MIGRATOR_USER, ServerInfo, clickhouse_pair

TOOL = Path(sys.executable).with_name("clickhouse-migrate")  # the installed console script


@dataclass(frozen=True)
class Servers:
    source: ServerInfo
    destination: ServerInfo

    def source_client(self) -> Client:
        return self.source.client(MIGRATOR_USER, MIGRATOR_PASSWORD)

    def destination_client(self) -> Client:
        return self.destination.client(MIGRATOR_USER, MIGRATOR_PASSWORD)


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with clickhouse_pair(destination_tls=True) as (source, destination):
        fixture_db.load(source.client())
        yield Servers(source, destination)


@dataclass(frozen=True)
class ToolRun:
    returncode: int
    stdout: str
    stderr: str

    def lines(self, kind: str) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith(f"[{kind}]")]


def base_args(servers: Servers, destination_db: str, **overrides: str) -> list[str]:
    """Flags as a DAG passes them; the source password comes from the environment (see run_tool)."""
    values = {
        "--source-host": servers.source.host,
        "--source-port": str(servers.source.port),
        "--source-user": MIGRATOR_USER,
        "--source-db": fixture_db.DATABASE,
        "--destination-host": servers.destination.host,
        "--destination-port": str(servers.destination.port),
        "--destination-user": MIGRATOR_USER,
        "--destination-password": MIGRATOR_PASSWORD,
        "--destination-db": destination_db,
        "--destination-secure-flag": "n",
        "--destination-verify-flag": "n",
    } | overrides
    args: list[str] = []
    for flag, value in values.items():
        args += [flag, value]
    return args


def run_tool(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> ToolRun:
    environment = {**os.environ, "CLICKHOUSE_SOURCE_PASSWORD": MIGRATOR_PASSWORD} | (env or {})
    completed = subprocess.run(
        [str(TOOL), *args], capture_output=True, text=True, env=environment, timeout=timeout, check=False
    )
    return ToolRun(completed.returncode, completed.stdout, completed.stderr)


def databases(client: Client) -> set[str]:
    return {row[0] for row in client.execute("SELECT name FROM system.databases")}


@pytest.fixture
def destination_snapshot(servers: Servers) -> Iterator[None]:
    """Asserts the test wrote nothing to the destination: same databases and tables before and after."""

    def snapshot() -> list[tuple[str, str, str]]:
        return servers.destination.client().execute(
            "SELECT database, name, engine FROM system.tables WHERE database != 'system' "
            "ORDER BY database, name"
        )

    before = (databases(servers.destination.client()), snapshot())
    yield
    assert (databases(servers.destination.client()), snapshot()) == before, "the destination was modified"
