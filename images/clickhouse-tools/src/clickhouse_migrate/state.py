"""Remembered per-partition fingerprints, so a re-run with nothing changed reads part metadata, not rows.

MergeTree parts are immutable and their names change with every insert, merge, mutation or partition
operation, so the sorted names of a partition's active parts identify its content. After a verified run
the tool stores, per table and partition: the source's part names, the destination's part names and the
verified fingerprint (rows, checksum), in `<destination>__migrate_state.partitions`. The next run reuses a
fingerprint only when both sides still have exactly those parts; anything else is checksummed again. The
state is only a shortcut: losing it (or dropping the database) costs one full comparison, never data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from clickhouse_driver import Client

from .connection import Server
from .sql import qualified, quote_identifier
from .verify import Fingerprint

TABLE = "partitions"


@dataclass(frozen=True)
class PartitionState:
    source_parts: str
    destination_parts: str
    fingerprint: Fingerprint


Remembered = dict[str, dict[str, PartitionState]]  # table -> partition id -> state


def state_database(destination: str) -> str:
    return f"{destination}__migrate_state"


def part_names(server: Server, database: str, table: str, *, client: Client | None = None) -> dict[str, str]:
    """partition id -> its active parts' names, sorted and joined (the partition's content version).

    client: a connection of the calling thread (default: the server's own one, the main thread's)."""
    rows = (server.query if client is None else partial(server.run, client))(
        "SELECT partition_id, arrayStringConcat(arraySort(groupArray(name)), ',') FROM system.parts"
        " WHERE database = %(db)s AND table = %(t)s AND active GROUP BY partition_id",
        {"db": database, "t": table},
    )
    return {partition_id: names for partition_id, names in rows}


def load(server: Server, destination: str) -> Remembered:
    database = state_database(destination)
    exists = server.query(
        "SELECT count() FROM system.tables WHERE database = %(db)s AND name = %(t)s",
        {"db": database, "t": TABLE},
    )
    if not exists[0][0]:
        return {}
    remembered: Remembered = {}
    for table, partition_id, source_parts, destination_parts, rows, checksum in server.query(
        "SELECT table, partition_id, source_parts, destination_parts, rows, checksum "
        f"FROM {qualified(database, TABLE)}"
    ):
        remembered.setdefault(table, {})[partition_id] = PartitionState(
            source_parts, destination_parts, Fingerprint(int(rows), int(checksum))
        )
    return remembered


def save(server: Server, destination: str, remembered: Remembered, replaced: Iterable[str]) -> None:
    """Rewrite the state: `remembered` for its tables, earlier entries kept for the others, `replaced`
    tables without a new entry forgotten."""
    database = state_database(destination)
    target = qualified(database, TABLE)
    previous = load(server, destination)
    merged = {table: entries for table, entries in previous.items() if table not in set(replaced)}
    merged.update(remembered)
    server.query(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
    server.query(f"DROP TABLE IF EXISTS {target}")
    server.query(
        f"CREATE TABLE {target} (table String, partition_id String, source_parts String, "
        "destination_parts String, rows UInt64, checksum UInt64) ENGINE = TinyLog"
    )
    rows = [
        (
            table,
            partition_id,
            entry.source_parts,
            entry.destination_parts,
            entry.fingerprint.rows,
            entry.fingerprint.checksum or 0,
        )
        for table, entries in merged.items()
        for partition_id, entry in entries.items()
    ]
    if rows:
        server.query(f"INSERT INTO {target} VALUES", rows)  # type: ignore[arg-type]
