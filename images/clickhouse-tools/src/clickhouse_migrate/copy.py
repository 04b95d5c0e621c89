"""Server-to-server data copy: one `INSERT ... SELECT` per object, run by one of the two servers.

- executed on the destination (pull): INSERT INTO dst.t SELECT * FROM remote('source', db, t, user, pw)
- executed on the source (push):      INSERT INTO FUNCTION remote[Secure]('dest', db, t, user, pw)
                                       SELECT * FROM src.t
Rows never pass through this process. Materialized views with an inner table are copied through the
view itself on both sides (reading a view reads its inner table, inserting into it writes there), so
`.inner.<name>` (old servers) and `.inner_id.<uuid>` (Atomic databases) need no special casing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from .catalog import DbObject
from .connection import Endpoint, Server, first_line
from .errors import MigrationError
from .report import CopyResult, Reporter
from .sql import qualified, quote_string

PROGRESS_INTERVAL_SECONDS = 10.0


@dataclass(frozen=True)
class CopyRoute:
    """Who runs the copy and how that server reaches the other one."""

    executor: Server  # the server that runs INSERT ... SELECT
    source: Endpoint
    destination: Endpoint
    push: bool  # True: the source pushes with INSERT INTO FUNCTION remote()

    def statement(self, table: str) -> str:
        if self.push:
            target = remote_function(self.destination, table, secure=self.destination.secure)
            return f"INSERT INTO FUNCTION {target} SELECT * FROM {qualified(self.source.database, table)}"
        origin = remote_function(self.source, table, secure=self.source.secure)
        return f"INSERT INTO {qualified(self.destination.database, table)} SELECT * FROM {origin}"


def remote_function(endpoint: Endpoint, table: str, *, secure: bool) -> str:
    function = "remoteSecure" if secure else "remote"
    arguments = (endpoint.address, endpoint.database, table, endpoint.user, endpoint.password)
    return f"{function}({', '.join(quote_string(argument) for argument in arguments)})"


def copy_object(route: CopyRoute, obj: DbObject, settings: dict[str, int], reporter: Reporter) -> CopyResult:
    result = CopyResult(name=obj.name)
    client = route.executor.new_client()
    started = time.monotonic()
    last_report = started
    try:
        for rows, total in route.executor.progress_run(client, route.statement(obj.name), settings):
            now = time.monotonic()
            if now - last_report >= PROGRESS_INTERVAL_SECONDS:
                reporter.event(
                    "progress", object=obj.name, rows=rows, total_rows=total, seconds=now - started
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
    result.seconds = time.monotonic() - started
    return result


def copy_in_parallel(
    route: CopyRoute,
    objects: Sequence[DbObject],
    settings: dict[str, int],
    reporter: Reporter,
    parallelism: int,
    on_done: Callable[[CopyResult], None] | None = None,
) -> list[CopyResult]:
    """Copy `objects` with at most `parallelism` concurrent INSERT ... SELECT queries."""
    results: list[CopyResult] = []
    if not objects:
        return results
    # Biggest first, so one large table does not start last and stretch the run.
    ordered = sorted(objects, key=lambda obj: -(obj.estimated_rows or 0))
    with ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="copy") as pool:
        futures = [pool.submit(copy_object, route, obj, settings, reporter) for obj in ordered]
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            reporter.copied(result, len(results), len(ordered))
            if on_done:
                on_done(result)
    return results
