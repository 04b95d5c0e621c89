"""Server-to-server data copy: one `INSERT ... SELECT` per object, run by one of the two servers.

- executed on the destination (pull): INSERT INTO dst.t SELECT * FROM remote('source', db, t, user, pw)
- executed on the source (push):      INSERT INTO FUNCTION remote[Secure]('dest', db, t, user, pw)
                                       SELECT * FROM src.t
Rows never pass through this process. A big partitioned MergeTree table is copied as one query per
partition (`... WHERE <partition key> = <value>`), so the bounded pool also parallelizes a database
that is mostly one table. Materialized views with an inner table are copied through the
view itself on both sides (reading a view reads its inner table, inserting into it writes there), so
`.inner.<name>` (old servers) and `.inner_id.<uuid>` (Atomic databases) need no special casing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from .catalog import DbObject, ObjectKind
from .connection import Endpoint, Server, first_line
from .errors import MigrationError
from .report import CopyResult, Reporter
from .sql import mask_secret, qualified, quote_string

PROGRESS_INTERVAL_SECONDS = 10.0
_INTEGER = re.compile(r"^-?\d+$")


@dataclass(frozen=True)
class CopyTask:
    """One INSERT ... SELECT: a whole object, or one partition of a table."""

    obj: DbObject
    where: str | None = None
    partition: str | None = None
    estimated_rows: int = 0


@dataclass(frozen=True)
class CopyRoute:
    """Who runs the copy and how that server reaches the other one."""

    executor: Server  # the server that runs INSERT ... SELECT
    source: Endpoint
    destination: Endpoint
    push: bool  # True: the source pushes with INSERT INTO FUNCTION remote()

    def statement(self, table: str, where: str | None = None) -> str:
        condition = f" WHERE {where}" if where else ""
        if self.push:
            target = remote_function(self.destination, table, secure=self.destination.secure)
            source = qualified(self.source.database, table)
            return f"INSERT INTO FUNCTION {target} SELECT * FROM {source}{condition}"
        origin = remote_function(self.source, table, secure=self.source.secure)
        return f"INSERT INTO {qualified(self.destination.database, table)} SELECT * FROM {origin}{condition}"


def remote_function(endpoint: Endpoint, table: str, *, secure: bool) -> str:
    function = "remoteSecure" if secure else "remote"
    arguments = (endpoint.address, endpoint.database, table, endpoint.user, endpoint.password)
    return f"{function}({', '.join(quote_string(argument) for argument in arguments)})"


def partition_literal(text: str) -> str | None:
    """system.parts.partition as an SQL literal; None when it cannot be expressed safely.

    18.16 prints integers bare, tuples as quoted literals, but single strings/dates unquoted.
    """
    if "NULL" in text:
        return None  # `key = NULL` matches nothing
    if _INTEGER.match(text) or text.startswith("("):
        return text
    return quote_string(text)


def partition_tasks(source: Server, database: str, obj: DbObject, min_rows: int) -> list[CopyTask]:
    """One task per partition for a big partitioned MergeTree table, else one task for the object."""
    whole = [CopyTask(obj, estimated_rows=obj.estimated_rows or 0)]
    partitioned = obj.kind is ObjectKind.TABLE and obj.engine.endswith("MergeTree")
    if min_rows <= 0 or not partitioned or (obj.estimated_rows or 0) < min_rows:
        return whole
    keys = source.query(
        "SELECT partition_key FROM system.tables WHERE database = %(db)s AND name = %(t)s",
        {"db": database, "t": obj.name},
    )
    key = keys[0][0] if keys else ""
    rows = source.query(
        "SELECT partition, sum(rows) FROM system.parts WHERE database = %(db)s AND table = %(t)s AND active"
        " GROUP BY partition ORDER BY partition",
        {"db": database, "t": obj.name},
    )
    literals = [(partition_literal(text), text, int(count)) for text, count in rows]
    if not key or len(literals) < 2 or any(literal is None for literal, _, _ in literals):
        return whole
    return [
        CopyTask(obj, where=f"({key}) = {literal}", partition=text, estimated_rows=count)
        for literal, text, count in literals
    ]


def copy_task(route: CopyRoute, task: CopyTask, settings: dict[str, int], reporter: Reporter) -> CopyResult:
    name = task.obj.name
    result = CopyResult(name=name, started=time.monotonic())
    client = route.executor.new_client()
    last_report = result.started
    try:
        for rows, total in route.executor.progress_run(client, route.statement(name, task.where), settings):
            now = time.monotonic()
            if now - last_report >= PROGRESS_INTERVAL_SECONDS:
                seconds = now - result.started
                reporter.event(
                    "progress",
                    object=name,
                    partition=task.partition or "-",
                    rows=rows,
                    total_rows=total,
                    seconds=seconds,
                )
                last_report = now
        progress = client.last_query.progress if client.last_query else None
        result.rows = progress.rows if progress else 0
        result.bytes = progress.bytes if progress else 0
    except MigrationError as error:
        result.error = error.message
    except Exception as error:  # a failed copy is reported and the run goes on with the others
        result.error = first_line(error)
    finally:
        client.disconnect()
    if result.error:  # server errors may quote the query, which holds a password in remote()
        for endpoint in (route.source, route.destination):
            result.error = mask_secret(result.error, endpoint.password)
    result.seconds = time.monotonic() - result.started
    return result


@dataclass
class _Pending:
    """Partition results of one object until all are in."""

    expected: int
    parts: list[CopyResult] = field(default_factory=list)

    def merged(self, name: str) -> CopyResult:
        started = min(part.started for part in self.parts)
        finished = max(part.started + part.seconds for part in self.parts)
        errors = [part.error for part in self.parts if part.error]
        return CopyResult(
            name=name,
            rows=sum(part.rows for part in self.parts),
            bytes=sum(part.bytes for part in self.parts),
            seconds=finished - started,
            started=started,
            error="; ".join(errors) if errors else None,
        )


def copy_in_parallel(
    route: CopyRoute,
    tasks: Sequence[CopyTask],
    settings: dict[str, int],
    reporter: Reporter,
    parallelism: int,
) -> list[CopyResult]:
    """Run `tasks` with at most `parallelism` concurrent queries; one result per object."""
    pending: dict[str, _Pending] = {}
    for task in tasks:
        pending.setdefault(task.obj.name, _Pending(expected=0)).expected += 1
    results: list[CopyResult] = []
    # Biggest first, so one large table does not start last and stretch the run.
    ordered = sorted(tasks, key=lambda task: -task.estimated_rows)
    with ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="copy") as pool:
        futures = {pool.submit(copy_task, route, task, settings, reporter): task for task in ordered}
        for future in as_completed(futures):
            task, part = futures[future], future.result()
            entry = pending[task.obj.name]
            entry.parts.append(part)
            if task.partition is not None:
                reporter.event(
                    "partition",
                    object=part.name,
                    partition=task.partition,
                    rows=part.rows,
                    seconds=part.seconds,
                    status="failed" if part.error else "ok",
                )
            if len(entry.parts) == entry.expected:
                results.append(entry.merged(task.obj.name))
                reporter.copied(results[-1], len(results), len(pending))
    return results
