"""Post-copy verification: row counts always, an order-independent checksum with --verify."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

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
) -> dict[str, Fingerprint]:
    """partition id -> rows and checksum (one entry "" for the whole table when not by partition).

    Empty partitions do not appear, so an empty table has no entries on either side. `only`: just these
    partitions (the others are known from the remembered state).
    """
    expression = checksum_expression(columns)
    source = qualified(database, table)
    if by_partition:
        if only is not None and not only:
            return {}
        condition = f" WHERE {partition_filter(only)}" if only else ""
        rows = server.query(
            f"SELECT _partition_id, count(), {expression} FROM {source}{condition} GROUP BY _partition_id"
        )
        return {pid: Fingerprint(int(count), int(checksum or 0)) for pid, count, checksum in rows}
    count, checksum = server.query(f"SELECT count(), {expression} FROM {source}")[0]
    return {"": Fingerprint(int(count), int(checksum or 0))} if count else {}


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
