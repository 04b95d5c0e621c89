"""The kill test of issue #10: SIGTERM mid-copy stops the copy on both servers, keeps the previous copy,
and the re-run copies only what differs."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time

import pytest
from clickhouse_driver import Client

from .conftest import TOOL, Servers, base_args, run_tool
from .servers import MIGRATOR_PASSWORD

DATABASE = "killme"
PARTITIONS = 8
ROWS = 2_000_000
# Throttled so that one partition takes about a second: the kill lands in the middle of the copy.
THROTTLE = "max_network_bandwidth=2000000"
KILL_DEADLINE_SECONDS = 5
OUR_QUERIES = "query_id LIKE %(ours)s OR initial_query_id LIKE %(ours)s"


def fingerprint(client: Client, database: str) -> tuple[int, int]:
    return client.execute(f"SELECT count(), sum(cityHash64(id, p, v)) FROM {database}.t")[0]


def our_queries(client: Client, kind: str = "") -> list[tuple]:
    return client.execute(
        f"SELECT query_id, query FROM system.processes WHERE ({OUR_QUERIES}) AND query LIKE %(kind)s",
        {"kind": kind + "%", "ours": "clickhouse-migrate-%"},
    )


def args(servers: Servers, *extra: str) -> list[str]:
    flags = base_args(servers, DATABASE, **{"--source-db": DATABASE})
    return [*flags, "--partition-split-min-rows", "1", "--parallelism", "1", *extra]


def start_and_kill(servers: Servers, partitions_before_kill: int) -> tuple[int, str]:
    """Start a throttled copy, SIGTERM the tool after some partitions are in; (exit code, output)."""
    environment = {**os.environ, "CLICKHOUSE_SOURCE_PASSWORD": MIGRATOR_PASSWORD}
    process = subprocess.Popen(
        [str(TOOL), *args(servers, "--setting", THROTTLE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )
    assert process.stdout is not None
    output: list[str] = []
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not selector.select(timeout=1):
            continue
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if sum(1 for text in output if text.startswith("[partition]")) >= partitions_before_kill:
            break
    assert process.poll() is None, "".join(output)
    process.send_signal(signal.SIGTERM)
    killed_at = time.monotonic()
    try:
        rest, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    output.append(rest)
    text = "".join(output)
    # No query of the tool may run on either server a few seconds after the signal.
    for client in (servers.source.client(), servers.destination.client()):
        while our_queries(client) and time.monotonic() - killed_at < KILL_DEADLINE_SECONDS:
            time.sleep(0.1)
        assert our_queries(client) == [], text
    return process.returncode, text


@pytest.fixture
def previous_copy(servers: Servers) -> tuple[int, int]:
    """A first complete copy on the destination, then the source changes in every partition."""
    source = servers.source.client()
    source.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    source.execute(f"CREATE DATABASE {DATABASE}")
    source.execute(
        f"CREATE TABLE {DATABASE}.t (id UInt64, p UInt8, v String) ENGINE = MergeTree"
        " PARTITION BY p ORDER BY id"
    )
    source.execute(
        f"INSERT INTO {DATABASE}.t SELECT number, number % {PARTITIONS}, toString(number)"
        f" FROM numbers({ROWS})"
    )
    servers.destination.client().execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    first = run_tool(args(servers))
    assert first.returncode == 0, first.stdout + first.stderr
    copied = fingerprint(servers.destination.client(), DATABASE)
    assert copied == fingerprint(source, DATABASE)
    source.execute(
        f"INSERT INTO {DATABASE}.t SELECT number + {ROWS}, number % {PARTITIONS}, 'new'"
        f" FROM numbers({PARTITIONS})"
    )
    return copied


def test_sigterm_kills_the_copy_on_both_servers_and_keeps_the_previous_copy(
    servers: Servers, previous_copy: tuple[int, int]
) -> None:
    code, output = start_and_kill(servers, partitions_before_kill=2)
    assert code == 130, output
    assert "interrupted (SIGTERM)" in output
    destination = servers.destination.client()
    assert fingerprint(destination, DATABASE) == previous_copy, "the previous copy changed"
    # The re-run resumes: partitions the killed run completed in staging are kept, only the rest is copied.
    again = run_tool(args(servers))
    assert again.returncode == 0, again.stdout + again.stderr
    (resume,) = again.lines("resume")
    kept = int(resume.split("kept_from_staging=")[1].split()[0])
    to_copy = int(resume.split("to_copy=")[1].split()[0])
    assert kept >= 2 and kept + to_copy == PARTITIONS, resume
    assert len(again.lines("partition")) == to_copy
    assert fingerprint(destination, DATABASE) == fingerprint(servers.source.client(), DATABASE)
    databases = {row[0] for row in destination.execute("SELECT name FROM system.databases")}
    assert not {f"{DATABASE}__migrate_staging", f"{DATABASE}__migrate_previous"} & databases


def test_sigint_in_recreate_mode_stops_the_queries(servers: Servers, previous_copy: tuple[int, int]) -> None:
    environment = {**os.environ, "CLICKHOUSE_SOURCE_PASSWORD": MIGRATOR_PASSWORD}
    process = subprocess.Popen(
        [str(TOOL), *args(servers, "--setting", THROTTLE, "--strategy", "recreate")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )
    destination = servers.destination.client()
    deadline = time.monotonic() + 60
    while not our_queries(destination, "INSERT") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert our_queries(destination, "INSERT"), "the copy never started"
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 130, output
    time.sleep(0.5)
    assert our_queries(destination) == [] and our_queries(servers.source.client()) == []
