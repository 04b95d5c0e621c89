"""Server-to-server data copy: one `INSERT ... SELECT` per object, run by one of the two servers.

- executed on the destination (pull): INSERT INTO dst.t (cols)
                                       SELECT cols FROM remote('source', db, t, user, pw)
- executed on the source (push):      INSERT INTO FUNCTION remote[Secure]('dest', db, t, user, pw)
                                       SELECT cols FROM src.t
Columns are listed by name (MATERIALIZED ones included: `SELECT *` would leave them out and the target
would recompute them). Rows never pass through this process. A big partitioned MergeTree table is copied
as one query per partition (`... WHERE _partition_id IN ('<id>') AND <part name test>`: each query reads
only its partition's parts), so the bounded pool also parallelizes a database that is mostly one table.
Materialized views with an inner table are copied through the view itself on both sides (reading a
view reads its inner table, inserting into it writes there), so `.inner.<name>` (old servers) and
`.inner_id.<uuid>` (Atomic databases) need no special casing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from clickhouse_driver import Client

from .cancellation import TRACKER
from .catalog import DbObject
from .connection import Endpoint, Identity, Server, first_line, read_identity
from .errors import MigrationError
from .report import CopyResult, Reporter
from .sql import mask_secret, partition_filter, qualified, quote_identifier, quote_string

_INTEGER = re.compile(r"^-?\d+$")

# A MergeTree table sorts every insert block by its sorting key, unless the block is sorted already
# (18.16 counts those in MergeTreeDataWriterBlocksAlreadySorted). The source stores each part in that
# very order (the destination table has the source's DDL), so a copy that reads its rows in one stream
# delivers them part after part, in order, and the destination skips the sort. With the default
# (max_threads streams) the parts' ranges arrive interleaved and about half the blocks must be sorted
# again: measured on 18.16 with `make bench`'s 20M rows on 2 CPUs, destination CPU 10.2 s -> 5.9 s and
# the copy 11.1 s -> 8.0 s. The insert itself is one stream either way (18.16 has no max_insert_threads;
# later servers insert in one stream unless it is set); parallelism comes from concurrent partition
# copies. A user's `--setting max_threads=N` or `max_insert_threads=N` (parallel inserts need parallel
# reads) turns it off.
IN_ORDER_SETTINGS: dict[str, object] = {"max_threads": 1}


@dataclass(frozen=True)
class CopyTask:
    """One INSERT ... SELECT: a whole object, or one partition of a table."""

    obj: DbObject
    columns: tuple[str, ...] = ()  # stored columns, copied by name (empty: the object has none)
    where: str | None = None
    partition: str | None = None  # partition id (as system.parts.partition_id says)
    estimated_rows: int = 0
    target_database: str | None = None  # None: the destination database (else the staging database)


@dataclass(frozen=True)
class CopyRoute:
    """Who runs the copy and how that server reaches the other one."""

    executor: Server  # the server that runs INSERT ... SELECT
    source: Endpoint
    destination: Endpoint
    push: bool  # True: the source pushes with INSERT INTO FUNCTION remote()
    writer: Server | None = None  # the destination server (to count the rows written)

    def statement(self, task: CopyTask) -> str:
        table = task.obj.name
        condition = f" WHERE {task.where}" if task.where else ""
        database = task.target_database or self.destination.database
        columns = ", ".join(quote_identifier(column) for column in task.columns) or "*"
        if self.push:
            # 18.16 takes no column list after INSERT INTO FUNCTION: the order of the remote table is used
            # (MATERIALIZED columns are refused for push in the preflight).
            target = remote_function(self.destination, database, table, secure=self.destination.secure)
            source = qualified(self.source.database, table)
            return f"INSERT INTO FUNCTION {target} SELECT {columns} FROM {source}{condition}"
        origin = remote_function(self.source, self.source.database, table, secure=self.source.secure)
        target_columns = f" ({columns})" if task.columns else ""
        target = qualified(database, table)
        return f"INSERT INTO {target}{target_columns} SELECT {columns} FROM {origin}{condition}"


@dataclass(frozen=True)
class RouteEnd:
    """The server at the far end of a route, as the executing server reaches it through remote().

    Not necessarily the server this tool reached under the same address: a name can resolve to another
    server from where the executing server stands (its own DNS, /etc/hosts, `localhost`, a Kubernetes
    short Service name resolved in the server's namespace instead of the job pod's)."""

    route: CopyRoute

    @property
    def endpoint(self) -> Endpoint:
        return self.route.destination if self.route.push else self.route.source

    @property
    def secure(self) -> bool:
        return self.route.push and self.endpoint.secure

    def system_table(self, table: str) -> str:
        return remote_function(self.endpoint, "system", table, secure=self.secure)

    def identity(self) -> Identity:
        return read_identity(self.route.executor.query, self.system_table)

    def has_running(self, query_id: str) -> bool:
        rows = self.route.executor.query(
            f"SELECT count() FROM {self.system_table('processes')} WHERE query_id = %(id)s", {"id": query_id}
        )
        return bool(rows[0][0])


def remote_function(endpoint: Endpoint, database: str, table: str, *, secure: bool) -> str:
    function = "remoteSecure" if secure else "remote"
    arguments = (endpoint.address, database, table, endpoint.user, endpoint.password)
    return f"{function}({', '.join(quote_string(argument) for argument in arguments)})"


def partition_literal(text: str, type_name: str | None = None) -> str | None:
    """system.parts.partition as an SQL literal of the partition key's type; None when not expressible.

    18.16 prints integers bare, tuples as quoted literals, but single strings/dates unquoted, so the
    text alone cannot tell the String '123' from the number 123: with the key's type, the text is cast
    to it (`CAST('123' AS String)`).
    """
    if "NULL" in text:
        return None  # `key = NULL` matches nothing
    if text.startswith("("):
        return text
    if type_name and not type_name.startswith(("Tuple", "Nullable", "Array")):
        return f"CAST({quote_string(text)} AS {type_name})"
    if _INTEGER.match(text):
        return text
    return quote_string(text)


def partition_condition(
    partition_id: str, *, has_partition_id: bool, key: str, literal: str | None
) -> str | None:
    """WHERE condition for one partition: by `_partition_id` where the server has it (no key evaluation,
    no full scans for non-monotonic keys), else by the typed partition expression."""
    if has_partition_id:
        return partition_filter([partition_id])
    if literal is None or not key:
        return None
    return f"({key}) = {literal}"


def partition_tasks(
    source: Server, database: str, obj: DbObject, min_rows: int, columns: tuple[str, ...]
) -> list[CopyTask]:
    """One task per partition for a big partitioned MergeTree table, else one task for the object."""
    whole = [CopyTask(obj, columns=columns, estimated_rows=obj.estimated_rows or 0)]
    if min_rows <= 0 or not obj.mergetree or (obj.estimated_rows or 0) < min_rows:
        return whole
    partitions = source_partitions(source, database, obj.name)
    if len(partitions) < 2 or any(condition is None for condition, _, _ in partitions.values()):
        return whole
    return [
        CopyTask(obj, columns=columns, where=condition, partition=partition_id, estimated_rows=rows)
        for partition_id, (condition, _, rows) in sorted(partitions.items())
    ]


def source_partitions(source: Server, database: str, table: str) -> dict[str, tuple[str | None, str, int]]:
    """partition_id -> (WHERE condition, printed partition, rows) of a MergeTree table on the source."""
    has_id = supports_partition_id(source, database, table)
    key = ""
    key_type: str | None = None
    if not has_id:
        keys = source.query(
            "SELECT partition_key FROM system.tables WHERE database = %(db)s AND name = %(t)s",
            {"db": database, "t": table},
        )
        key = keys[0][0] if keys else ""
        if key:
            types = source.query(f"SELECT toTypeName(({key})) FROM {qualified(database, table)} LIMIT 1")
            key_type = types[0][0] if types else None
    rows = source.query(
        "SELECT partition_id, any(partition), sum(rows) FROM system.parts"
        " WHERE database = %(db)s AND table = %(t)s AND active GROUP BY partition_id ORDER BY partition_id",
        {"db": database, "t": table},
    )
    return {
        partition_id: (
            partition_condition(
                partition_id, has_partition_id=has_id, key=key, literal=partition_literal(text, key_type)
            ),
            text,
            int(count),
        )
        for partition_id, text, count in rows
    }


def supports_partition_id(server: Server, database: str, table: str) -> bool:
    try:
        server.query(f"SELECT _partition_id FROM {qualified(database, table)} LIMIT 0")
    except MigrationError:
        raise
    except Exception:  # an old server without the virtual column
        return False
    return True


def copy_task(
    route: CopyRoute, task: CopyTask, settings: dict[str, object], reporter: Reporter
) -> CopyResult:
    name = task.obj.name
    result = CopyResult(name=name, started=time.monotonic())
    if TRACKER.cancelled.is_set():
        result.error = "cancelled before it started"
        return result
    client = route.executor.new_client()
    last_report = result.started
    try:
        statement, query_settings = route.statement(task), task_settings(task, settings)
        for rows, total in route.executor.progress_run(client, statement, query_settings):
            now = time.monotonic()
            if now - last_report >= reporter.progress_interval:
                seconds = now - result.started
                current = client.last_query.progress if client.last_query else None
                reporter.event(
                    "progress",
                    object=name,
                    partition=task.partition or "-",
                    rows=rows,
                    total_rows=total,
                    bytes=current.bytes if current else 0,
                    seconds=seconds,
                    rows_per_s=round(rows / seconds) if seconds > 0 else 0,
                    eta_s=round((total - rows) * seconds / rows) if rows and total > rows else "-",
                )
                last_report = now
        progress = client.last_query.progress if client.last_query else None
        result.read_rows = progress.rows if progress else 0
        result.bytes = progress.bytes if progress else 0
        result.rows = rows_written(route, task, client) if route.writer else result.read_rows
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


def task_settings(task: CopyTask, settings: dict[str, object]) -> dict[str, object]:
    """The copy query's settings: a MergeTree table is read in one stream (see IN_ORDER_SETTINGS)."""
    if not task.obj.mergetree or {"max_threads", "max_insert_threads"} & settings.keys():
        return settings
    return {**IN_ORDER_SETTINGS, **settings}


def rows_written(route: CopyRoute, task: CopyTask, executor_client: Client) -> int:
    """Rows the target holds for what this task wrote (its partition, or the whole table).

    Counted on the destination by this task's own connection (pull) or a new one (push): connections are
    not shared between threads. A partition (MergeTree only) is counted from its active parts' metadata:
    exact (every row is in one active part), and a count() with the partition filter read the whole
    partition again (18.16 evaluates the filter per row), which cost the copy as much as a checksum."""
    writer = route.writer
    assert writer is not None
    client = writer.new_client() if route.push else executor_client
    database = task.target_database or route.destination.database
    try:
        if task.partition is not None:
            rows = writer.run(
                client,
                "SELECT sum(rows) FROM system.parts WHERE database = %(db)s AND table = %(t)s AND active"
                " AND partition_id = %(p)s",
                {"db": database, "t": task.obj.name, "p": task.partition},
            )
            return int(rows[0][0] or 0)
        return int(writer.run(client, f"SELECT count() FROM {qualified(database, task.obj.name)}")[0][0])
    finally:
        if client is not executor_client:
            client.disconnect()


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
            read_rows=sum(part.read_rows for part in self.parts),
            seconds=finished - started,
            started=started,
            error="; ".join(errors) if errors else None,
        )


def copy_in_parallel(
    route: CopyRoute,
    tasks: Sequence[CopyTask],
    settings: dict[str, object],
    reporter: Reporter,
    parallelism: int,
    on_done: Callable[[CopyTask, CopyResult], None] | None = None,
) -> list[CopyResult]:
    """Run `tasks` with at most `parallelism` concurrent queries; one result per object.

    on_done: called (in this thread) with each task and its own result as soon as it finishes, so the
    caller can start verifying what is already copied while the rest is still copying."""
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
            if on_done is not None:
                on_done(task, part)
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
