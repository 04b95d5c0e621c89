"""Post-copy verification: row counts always, an order-independent checksum with --verify."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_driver import Client

from .connection import Server
from .sql import partition_filter, qualified, quote_identifier

# Types cityHash64 accepts on every supported version (18.16 rejects UUID, Decimal, Tuple and
# Array(Nullable(...))); other columns are hashed through their text form.
_HASHABLE_SCALAR = r"(?:U?Int\d+|Float\d+|String|FixedString\(\d+\)|Date|DateTime|Enum\d+\(.*\))"
_HASHABLE = re.compile(
    rf"^(?:{_HASHABLE_SCALAR}|Nullable\({_HASHABLE_SCALAR}\)|LowCardinality\((?:Nullable\()?String\)?\)"
    rf"|Array\({_HASHABLE_SCALAR}\))$"
)


@dataclass(frozen=True)
class Fingerprint:
    rows: int
    checksum: int | None


def column_hash_expression(name: str, type_name: str) -> str:
    column = quote_identifier(name)
    return column if _HASHABLE.match(type_name) else f"toString({column})"


def checksum_expression(columns: Sequence[tuple[str, str]]) -> str:
    """Sum of per-row hashes: independent of row order and of how rows are split into parts."""
    hashed = ", ".join(column_hash_expression(name, type_name) for name, type_name in columns)
    return f"sum(cityHash64({hashed}))" if hashed else "toUInt64(0)"


# Columns computed on read (ALIAS) or never stored (EPHEMERAL): neither copied nor hashed.
UNSTORED_KINDS = ("ALIAS", "EPHEMERAL")


def column_kinds(server: Server, database: str, table: str) -> list[tuple[str, str, str]]:
    """(name, type, default kind) of every column, in table order."""
    return [
        (name, type_name, kind)
        for name, type_name, kind in server.query(
            "SELECT name, type, default_kind FROM system.columns WHERE database = %(db)s AND table = %(t)s",
            {"db": database, "t": table},
        )
    ]


def stored_columns(server: Server, database: str, table: str) -> list[tuple[str, str]]:
    """Columns holding data, MATERIALIZED included (their stored values are copied as they are)."""
    return [
        (name, type_name)
        for name, type_name, kind in column_kinds(server, database, table)
        if kind not in UNSTORED_KINDS
    ]


def fingerprint(server: Server, database: str, table: str, *, with_checksum: bool) -> Fingerprint:
    source = qualified(database, table)
    if not with_checksum:
        return Fingerprint(rows=_scalar(server.query(f"SELECT count() FROM {source}")), checksum=None)
    expression = checksum_expression(stored_columns(server, database, table))
    rows, checksum = server.query(f"SELECT count(), {expression} FROM {source}")[0]
    return Fingerprint(rows=int(rows), checksum=int(checksum or 0))


def partition_fingerprints(
    server: Server,
    database: str,
    table: str,
    columns: Sequence[tuple[str, str]],
    *,
    by_partition: bool,
    only: Collection[str] | None = None,
    client: Client | None = None,
) -> dict[str, Fingerprint]:
    """partition id -> rows and checksum (one entry "" for the whole table when not by partition).

    Empty partitions do not appear, so an empty table has no entries on either side. `only`: just these
    partitions (the others are known from the remembered state). `client`: a connection of this thread
    (the server's own one belongs to the main thread).
    """

    def query(sql: str) -> Sequence[Sequence[Any]]:
        return server.run(client, sql) if client is not None else server.query(sql)

    expression = checksum_expression(columns)
    source = qualified(database, table)
    if by_partition:
        if only is not None and not only:
            return {}
        condition = f" WHERE {partition_filter(only)}" if only else ""
        rows = query(
            f"SELECT _partition_id, count(), {expression} FROM {source}{condition} GROUP BY _partition_id"
        )
        return {pid: Fingerprint(int(count), int(checksum or 0)) for pid, count, checksum in rows}
    count, checksum = query(f"SELECT count(), {expression} FROM {source}")[0]
    return {"": Fingerprint(int(count), int(checksum or 0))} if count else {}


@dataclass(frozen=True)
class Part:
    """An active MergeTree part as system.parts describes it (block numbers are never reused)."""

    min_block: int
    max_block: int
    rows: int
    mutation: int  # 0: never mutated (data_version is the min block then)


def active_parts(
    server: Server, client: Client, database: str, table: str, only: Collection[str] | None = None
) -> dict[str, list[Part]]:
    """partition id -> its active parts (metadata only)."""
    if only is not None and not only:
        return {}
    condition = " AND partition_id IN %(ids)s" if only is not None else ""
    rows = server.run(
        client,
        "SELECT partition_id, min_block_number, max_block_number, rows, data_version FROM system.parts"
        f" WHERE database = %(db)s AND table = %(t)s AND active{condition}",
        {"db": database, "t": table, "ids": tuple(only or ())},
    )
    parts: dict[str, list[Part]] = {}
    for partition_id, min_block, max_block, count, version in rows:
        mutation = int(version) if int(version) != int(min_block) else 0
        parts.setdefault(partition_id, []).append(Part(int(min_block), int(max_block), int(count), mutation))
    return parts


def only_merged(before: Sequence[Part], after: Sequence[Part]) -> bool:
    """True when `after` can only have come from `before` through merges, i.e. holds the same rows.

    Every insert (also REPLACE/ATTACH PARTITION) gets new block numbers and every mutation (UPDATE,
    DELETE) a new data version, so anything but a merge leaves a block or a version `before` lacks; a
    merge covers exactly the block ranges of the parts it merged and keeps their highest version. Merges
    that combine rows (Replacing, Summing, Collapsing... engines) change the row count: also refused.
    """
    if not before or sum(part.rows for part in before) != sum(part.rows for part in after):
        return False
    covered: set[int] = set()
    for merged in after:
        inside = [
            part
            for part in before
            if merged.min_block <= part.min_block <= part.max_block <= merged.max_block
        ]
        if (
            not inside
            or min(part.min_block for part in inside) != merged.min_block
            or max(part.max_block for part in inside) != merged.max_block
            or max(part.mutation for part in inside) != merged.mutation
        ):
            return False
        covered.update(id(part) for part in inside)
    return len(covered) == len(before)


def total(fingerprints: dict[str, Fingerprint]) -> Fingerprint:
    """The whole table's fingerprint: counts add up, and so do the per-row hash sums (mod 2^64)."""
    rows = sum(entry.rows for entry in fingerprints.values())
    checksum = sum(entry.checksum or 0 for entry in fingerprints.values()) % (1 << 64)
    return Fingerprint(rows, checksum)


def _scalar(rows: Sequence[Sequence[Any]]) -> int:
    return int(rows[0][0])


def compare(name: str, source: Fingerprint, destination: Fingerprint) -> str | None:
    """A one-line description of the mismatch, or None."""
    if source.rows != destination.rows:
        return f"{name}: rows source={source.rows} destination={destination.rows}"
    if source.checksum != destination.checksum:
        return f"{name}: checksum source={source.checksum} destination={destination.checksum}"
    return None
